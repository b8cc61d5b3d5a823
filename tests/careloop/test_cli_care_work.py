"""``careloop followups ...`` and ``careloop tasks ...``: the follow-up record and the work queue from a terminal."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from bot.followups import due_followups
from bot.messages import InboundMessage
from bot.router import handle_inbound
from care.followups import schedule_followup
from care.models import AuditEntry, FollowUp, StaffTask
from care.patients import get_patient
from care.tasks import create_task
from careloop.bot_runtime import bot_for
from careloop.cli.system import DEFAULT_ADMIN_EMAIL
from careloop.runtime import Runtime, build_runtime
from careloop.settings import Settings
from security.clock import FixedClock
from tests.conftest import TEST_ACTOR

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def clinic(run_cli: Cli, fresh_settings: Settings, tmp_path: Path) -> Iterator[Runtime]:
    assert run_cli("init")[0] == 0
    patients = tmp_path / "patients.csv"
    patients.write_text("card_no,name,gender,birth_date,phone\nC001,王秀英,F,1958-03-02,13800000001\n"
                        "C002,李建华,M,1961-07-12,13800000002\n", encoding="utf-8")
    assert run_cli("import", "patients", str(patients))[0] == 0
    # Ten in the morning in Shanghai, outside quiet hours (the CLI's own commands read the real clock).
    runtime = build_runtime(fresh_settings, clock=FixedClock(datetime(2026, 12, 3, 2, 0, tzinfo=UTC)))
    yield runtime
    runtime.close()


def ok(run_cli: Cli, *argv: str) -> str:
    code, out, err = run_cli(*argv)
    assert (code, err) == (0, ""), (argv, out, err)
    return out


def answered_followup(runtime: Runtime) -> uuid.UUID:
    """A PHQ-9 follow-up of C001 over the console, invited and answered twice."""
    services = bot_for(runtime).services
    with runtime.db.unit_of_work() as session:
        followup = schedule_followup(session, get_patient(session, "C001"), flow_id="phq9",
                                     due_at=runtime.clock.now() - timedelta(minutes=1), actor=TEST_ACTOR,
                                     channel_order=["console"])
        followup_id = followup.id
    with runtime.db.unit_of_work() as session:
        due_followups(session, services)
    for text in ("好的", "2"):
        with runtime.db.unit_of_work() as session:
            handle_inbound(session, services, InboundMessage(
                channel="console", provider_key=f"t:{uuid.uuid4()}", sender="C001", kind="text", text=text,
                received_at=runtime.clock.now()))
    return followup_id


def test_a_followup_record_shows_its_answers_and_messages_and_keeps_the_staff_outcome(run_cli: Cli, clinic: Runtime):
    followup_id = answered_followup(clinic)
    listed = ok(run_cli, "followups", "list", "--patient", "C001")
    assert str(followup_id) in listed
    assert "phq9" in listed
    assert "C002" not in listed
    shown = ok(run_cli, "followups", "show", str(followup_id))
    assert "phq9_q1" in shown  # the answer to the first question
    assert "<- 好的" in shown  # what the patient said, in order
    assert "outcome -" in shown
    ok(run_cli, "--as", DEFAULT_ADMIN_EMAIL, "followups", "record", str(followup_id), "--outcome",
       "completed_by_phone", "--notes", "电话补全其余问题")
    shown = ok(run_cli, "followups", "show", str(followup_id))
    assert "outcome completed_by_phone" in shown
    assert f"staff {DEFAULT_ADMIN_EMAIL}" in shown
    assert "电话补全其余问题" in shown
    with clinic.db.unit_of_work() as session:
        followup = session.get(FollowUp, followup_id)
        assert followup is not None
        assert followup.status == "completed"
        actions = [row.action for row in session.scalars(select(AuditEntry).where(
            AuditEntry.resource_id == str(followup_id)))]
    assert "followup.record" in actions
    assert "patient.view" in actions  # reading the record is audited
    assert ok(run_cli, "followups", "list", "--due") == "no follow-ups due\n"


def test_bad_followup_commands_name_what_is_wrong_and_change_nothing(run_cli: Cli, clinic: Runtime):
    followup_id = answered_followup(clinic)
    code, _, err = run_cli("followups", "record", str(followup_id), "--outcome", "great")
    assert code == 2
    assert "--outcome" in err
    code, _, err = run_cli("followups", "record", str(uuid.uuid4()), "--outcome", "no_response")
    assert (code, err.startswith("error: no follow-up")) == (1, True)
    code, _, err = run_cli("followups", "show", "not-an-id")
    assert (code, "FOLLOWUP_ID" in err) == (2, True)
    with clinic.db.unit_of_work() as session:
        followup = session.get(FollowUp, followup_id)
        assert followup is not None
        assert followup.outcome is None


def test_tasks_are_listed_urgent_first_closed_with_an_outcome_and_rescheduled(run_cli: Cli, clinic: Runtime):
    with clinic.db.unit_of_work() as session:
        patient = get_patient(session, "C002")
        normal = create_task(session, patient, kind="call", priority="normal", reason="回访", actor=TEST_ACTOR).id
        urgent = create_task(session, patient, kind="red_flag", priority="urgent", reason="血压 185/112",
                             actor=TEST_ACTOR).id
    listed = ok(run_cli, "tasks", "list").splitlines()
    assert [line.split()[0] for line in listed[1:]] == [str(urgent), str(normal)]
    assert "185" not in "".join(listed)  # the reason (clinical) is not printed
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    ok(run_cli, "tasks", "reschedule", str(normal), "--due", later)
    ok(run_cli, "--as", DEFAULT_ADMIN_EMAIL, "tasks", "close", str(urgent), "--outcome", "emergency_advised",
       "--notes", "已建议立即去急诊")
    assert [line.split()[0] for line in ok(run_cli, "tasks", "list").splitlines()[1:]] == [str(normal)]
    code, _, err = run_cli("tasks", "close", str(urgent), "--outcome", "resolved")
    assert (code, err) == (1, "error: the task is already closed\n")
    code, _, err = run_cli("tasks", "reschedule", str(normal), "--due", "2020-01-01T09:00+08:00")
    assert code == 2
    assert "must not be in the past" in err
    code, _, err = run_cli("tasks", "reschedule", str(normal), "--due", "tomorrow")
    assert (code, "ISO 8601" in err) == (2, True)
    with clinic.db.unit_of_work() as session:
        closed = session.get(StaffTask, urgent)
        assert closed is not None
        assert (closed.status, closed.outcome, closed.notes) == ("done", "emergency_advised", "已建议立即去急诊")
        assert closed.closed_by is not None
        moved = session.get(StaffTask, normal)
        assert moved is not None
        assert moved.due_at is not None
        assert moved.due_at.isoformat()[:16] == later[:16]


def test_the_followup_export_holds_the_records_and_no_cell_runs_as_a_formula(run_cli: Cli, clinic: Runtime,
                                                                            tmp_path: Path):
    followup_id = answered_followup(clinic)
    ok(run_cli, "followups", "record", str(followup_id), "--outcome", "completed_by_phone", "--notes",
       "=HYPERLINK(\"http://example.invalid\")")
    out = tmp_path / "followups.xlsx"
    assert "1 follow-up(s) written" in ok(run_cli, "export", "followups", "--out", str(out), "--lang", "en")
    assert out.stat().st_mode & 0o077 == 0
    rows = list(load_workbook(out, read_only=True).active.iter_rows(values_only=True))
    assert rows[0][:3] == ("card", "flow", "due")
    card, flow, *_rest, outcome, _staff, notes, answers = rows[1]
    assert (card, flow, outcome) == ("C001", "phq9", "Completed by phone")
    assert notes == "'=HYPERLINK(\"http://example.invalid\")"
    assert "phq9_q1=" in answers
