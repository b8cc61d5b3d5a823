"""Plans (自动随访): definitions checked with their lines, enrolment by hand, tag and event, re-timing in place."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.jobs import tag_rule_jobs
from bot.tag_rules import rule_engine
from care import plans
from care.errors import ConflictError
from care.imports.report_formats import FORMATS, ReportSource
from care.imports.reports import import_document
from care.models import FollowUp, Patient, PlanEnrolment
from care.plans.definition import parse_plan
from care.plans.timing import due_at
from care.tag_rules import add_rule, run_chunk
from care.tags import add_tag, remove_tag
from careloop.runtime import Runtime
from careloop.worker import Worker
from flows.registry import FlowLibrary
from security.clock import FixedClock
from tests.care.imports.samples import csv_bytes
from tests.conftest import TEST_ACTOR

Maker = Callable[..., Patient]
FLOWS = set(FlowLibrary.builtin().ids())
SHANGHAI = ZoneInfo("Asia/Shanghai")


def plan_text(plan_id: str = "monthly", version: int = 1, *, when: str = '{every: {months: 1}, at: "09:30"}',
              extra: str = "", channels: str = "[console]", flow: str = "home_monitoring") -> str:
    return (f"id: {plan_id}\nversion: {version}\ntitle: {{zh: 每月随访, en: Monthly}}\n{extra}"
            f"steps:\n  - flow: {flow}\n    when: {when}\n    channels: {channels}\n")


def publish(db: Session, text: str) -> plans.service.Published:
    published = plans.add_plan(db, text, flow_ids=FLOWS, actor=TEST_ACTOR)
    db.flush()
    return published


def rows_of(db: Session, patient: Patient) -> list[FollowUp]:
    return list(db.scalars(select(FollowUp).where(FollowUp.patient_id == patient.id)
                           .order_by(FollowUp.step_index, FollowUp.occurrence)))


# -- definitions ------------------------------------------------------------------------------------------
def test_every_builtin_plan_is_valid():
    for path in sorted(plans.LIBRARY_DIR.glob("*.yaml")):
        definition = parse_plan(path.read_text(encoding="utf-8"), flow_ids=FLOWS, source=str(path))
        assert definition.steps


def test_a_bad_plan_lists_each_problem_with_its_line_and_field():
    text = ("id: Bad-Id\nversion: 0\ntitle: {zh: 计划}\nsteps:\n  - flow: no_such_flow\n"
            "    when: {every: {}, at: '25:00', anchor: somewhere}\n    channels: [fax]\n    start_mode: later\n")
    with pytest.raises(plans.PlanInvalidError) as raised:
        parse_plan(text, flow_ids=FLOWS, source="bad.yaml")
    shown = {problem.shown("bad.yaml") for problem in raised.value.problems}
    assert "bad.yaml:1: id: is required: lower-case letters, digits and _, starting with a letter (at most 64)" in shown
    assert "bad.yaml:2: version: must be a whole number from 1 to 1000000" in shown
    assert any(line.startswith("bad.yaml:3: title.en:") for line in shown)
    assert "bad.yaml:5: steps[0].flow: no flow 'no_such_flow' in the library (careloop flows list)" in shown
    assert any(line.startswith("bad.yaml:6: steps[0].when.every:") for line in shown)
    assert any(line.startswith("bad.yaml:6: steps[0].when.at:") for line in shown)
    assert any(line.startswith("bad.yaml:6: steps[0].when.anchor:") for line in shown)
    assert any(line.startswith("bad.yaml:7: steps[0].channels:") for line in shown)
    assert any(line.startswith("bad.yaml:8: steps[0].start_mode:") for line in shown)


def test_broken_yaml_names_its_line():
    with pytest.raises(plans.PlanInvalidError) as raised:
        parse_plan("id: x\nsteps: [\n", source="broken.yaml")
    assert raised.value.problems[0].field == "yaml"
    assert raised.value.problems[0].line is not None


def test_a_monthly_step_keeps_the_local_time_and_the_last_day_of_short_months():
    when = parse_plan(plan_text(), flow_ids=FLOWS).steps[0].when
    anchor = datetime(2026, 1, 31, 2, 0, tzinfo=UTC)  # 10:00 on 31 January in Shanghai
    moments = [due_at(when, anchor, n, SHANGHAI).astimezone(SHANGHAI) for n in (1, 2, 3)]
    assert [(m.month, m.day, m.hour, m.minute) for m in moments] == [(2, 28, 9, 30), (3, 31, 9, 30), (4, 30, 9, 30)]


# -- publishing and enrolment ------------------------------------------------------------------------------
def test_adding_a_plan_stores_its_versions_and_refuses_a_lower_one(db):
    assert publish(db, plan_text()).change == "added"
    assert publish(db, plan_text()).change == "unchanged"
    with pytest.raises(ConflictError, match="higher version"):
        publish(db, plan_text(when="{every: {weeks: 2}}"))
    assert publish(db, plan_text(version=2, when="{every: {weeks: 2}}")).change == "new version"
    plan, definition = plans.get_plan(db, "monthly")
    assert (plan.version, definition.steps[0].when.every.weeks) == (2, 2)
    assert [row.version for row in plans.service.plan_versions(db, plan)] == [1, 2]


def test_enrolling_by_hand_schedules_the_first_occurrence_once(db, make_patient, clock):
    publish(db, plan_text())
    patient = make_patient()
    enrolment = plans.enrol(db, patient, "monthly", actor=TEST_ACTOR)
    assert enrolment is not None
    assert plans.enrol(db, patient, "monthly", actor=TEST_ACTOR) is None  # already in: nothing again
    db.flush()
    [row] = rows_of(db, patient)
    assert (row.plan_key, row.plan_version, row.step_index, row.occurrence, row.fire_version) == \
        ("monthly", 1, 0, 1, 1)
    assert row.due_at.astimezone(SHANGHAI) == datetime(2026, 12, 29, 9, 30, tzinfo=SHANGHAI)
    assert plans.leave(db, patient, "monthly", actor=TEST_ACTOR)
    db.flush()
    assert [row.status for row in rows_of(db, patient)] == ["cancelled"]
    assert not plans.leave(db, patient, "monthly", actor=TEST_ACTOR)


def test_a_tag_enrols_once_and_removing_it_ends_the_enrolment(db, make_patient):
    publish(db, plan_text(extra="enrol_on_tag: 高血压\n"))
    patient = make_patient()
    add_tag(db, patient, "高血压", source="flow:intake", actor=TEST_ACTOR)
    add_tag(db, patient, "高血压", source="flow:intake", actor=TEST_ACTOR)  # already set: no transition
    db.flush()
    assert db.scalar(select(func.count()).select_from(PlanEnrolment)) == 1
    remove_tag(db, patient, "高血压", actor=TEST_ACTOR)
    db.flush()
    assert [row.status for row in rows_of(db, patient)] == ["cancelled"]
    assert plans.enrolments_of(db, patient.id) == []


def test_a_tag_set_by_an_import_enrols_the_patient_once_and_a_normal_value_ends_it(
        db, make_patient, runtime: Runtime, clock: FixedClock):
    publish(db, plan_text(extra="enrol_on_tag: 高血压\n"))
    engine = rule_engine(FlowLibrary.builtin())
    add_rule(db, engine, "高血压风险", tag="高血压", expression="latest.sbp >= 140", actor=TEST_ACTOR)
    while run_chunk(db, engine):
        pass
    patient = make_patient()
    worker = Worker(runtime, tag_rule_jobs(FlowLibrary.builtin()))

    def import_csv(rows: list[list[Any]]) -> None:
        import_document(db, ReportSource.from_bytes("r.csv", csv_bytes(rows)), FORMATS["csv"], source_name="centre",
                        actor=TEST_ACTOR)
        db.flush()

    import_csv([[patient.card_no, "R1", "2026-11-20", "sbp", "152", "mmHg"]])
    worker.run_once()
    clock.advance(days=1)
    import_csv([[patient.card_no, "R2", "2026-11-21", "sbp", "160", "mmHg"]])  # still high: no new transition
    worker.run_once()
    db.expire_all()
    enrolments = db.scalars(select(PlanEnrolment).where(PlanEnrolment.patient_id == patient.id)).all()
    assert [(row.status, row.source) for row in enrolments] == [("active", "tag")]
    assert [row.status for row in rows_of(db, patient)] == ["scheduled"]

    clock.advance(days=1)
    import_csv([[patient.card_no, "R3", "2026-11-22", "sbp", "121", "mmHg"]])
    worker.run_once()
    db.expire_all()
    assert [row.status for row in db.scalars(select(PlanEnrolment).where(PlanEnrolment.patient_id == patient.id))] \
        == ["left"]
    assert [row.status for row in rows_of(db, patient)] == ["cancelled"]


def test_an_imported_report_enrols_a_plan_timed_from_the_checkup_and_a_new_report_moves_it(db, make_patient, clock):
    publish(db, plan_text("after_checkup", when='{anchor: checkup, offset: {days: 7}, at: "10:00"}',
                          extra="enrol_on_events: [report_imported]\n", flow="post_checkup"))
    patient = make_patient()

    def import_csv(ref: str, day: str) -> None:
        rows = [[patient.card_no, ref, day, "sbp", "120", "mmHg"]]
        import_document(db, ReportSource.from_bytes("r.csv", csv_bytes(rows)), FORMATS["csv"], source_name="centre",
                        actor=TEST_ACTOR)
        db.flush()

    import_csv("R1", "2026-11-25")
    [row] = rows_of(db, patient)
    assert row.due_at.astimezone(SHANGHAI) == datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI)
    import_csv("R2", "2026-11-28")  # a later checkup: the same row moves, nothing is added
    db.expire_all()
    [moved] = rows_of(db, patient)
    assert moved.id == row.id
    assert moved.due_at.astimezone(SHANGHAI) == datetime(2026, 12, 5, 10, 0, tzinfo=SHANGHAI)
    assert moved.fire_version == 2


def test_a_new_time_zone_moves_the_patients_rows(db, make_patient):
    publish(db, plan_text())
    patient = make_patient()
    plans.enrol(db, patient, "monthly", actor=TEST_ACTOR)
    db.flush()
    patient.timezone = "Europe/London"
    assert plans.retime_patient(db, patient) == 1
    [row] = rows_of(db, patient)
    assert row.due_at.astimezone(ZoneInfo("Europe/London")).time().isoformat() == "09:30:00"


# -- editing a plan ----------------------------------------------------------------------------------------
def test_editing_a_plan_with_1000_scheduled_rows_moves_them_in_place(db, make_patient, clock):
    publish(db, plan_text())
    patients = [make_patient() for _ in range(1000)]
    db.flush()
    assert plans.enrol_many(db, [patient.id for patient in patients], "monthly", actor=TEST_ACTOR) == 1000
    db.flush()
    before = {row.id: row.due_at for row in db.scalars(select(FollowUp))}
    assert len(before) == 1000
    published = publish(db, plan_text(version=2, when='{every: {weeks: 2}, at: "10:00"}'))
    assert published.moved == 1000
    db.expire_all()
    after = list(db.scalars(select(FollowUp)))
    assert {row.id for row in after} == set(before)  # none deleted, none added
    assert {(row.plan_version, row.fire_version, row.status) for row in after} == {(2, 2, "scheduled")}
    assert {row.due_at.astimezone(SHANGHAI) for row in after} == {datetime(2026, 12, 13, 10, 0, tzinfo=SHANGHAI)}


def test_enrolling_many_leaves_those_in_the_plan_as_they_are_and_takes_the_others(db, make_patient, clock):
    publish(db, plan_text())
    publish(db, plan_text("other"))
    inside, elsewhere, gone = make_patient(), make_patient(), make_patient()
    plans.enrol(db, inside, "monthly", actor=TEST_ACTOR)
    plans.enrol(db, elsewhere, "other", actor=TEST_ACTOR)
    plans.enrol(db, gone, "monthly", actor=TEST_ACTOR)
    plans.leave(db, gone, "monthly", actor=TEST_ACTOR)
    db.flush()
    assert plans.enrol_many(db, [inside.id, elsewhere.id, gone.id], "monthly", actor=TEST_ACTOR) == 2
    db.flush()
    active = [(enrolment.patient_id, enrolment.plan_key) for enrolment in
              db.scalars(select(PlanEnrolment).where(PlanEnrolment.status == "active"))]
    assert sorted(active, key=str) == sorted([(inside.id, "monthly"), (elsewhere.id, "other"),
                                              (elsewhere.id, "monthly"), (gone.id, "monthly")], key=str)
    assert len([row for row in rows_of(db, inside) if row.status == "scheduled"]) == 1  # not scheduled twice


def test_a_new_version_that_puts_rows_past_the_grace_marks_them_missed_and_schedules_the_next(db, make_patient,
                                                                                             clock):
    publish(db, plan_text(when='{every: {months: 1}, at: "09:30"}'))
    patient = make_patient()
    plans.enrol(db, patient, "monthly", actor=TEST_ACTOR)
    db.flush()
    clock.advance(days=20)
    # Every 5 days: the first occurrence was 15 days ago (missed), the next not sent twice.
    publish(db, plan_text(version=2, when='{every: {days: 5}, at: "09:30"}'))
    db.expire_all()
    rows = rows_of(db, patient)
    assert [(row.occurrence, row.status, row.outcome) for row in rows] == [(1, "skipped", "missed"),
                                                                           (4, "scheduled", None)]
    assert rows[1].due_at >= clock.now() - timedelta(hours=24)


def test_a_plan_step_may_send_a_message_of_the_content_library():
    text = ("id: tips\nversion: 1\ntitle: {zh: 小贴士, en: Tips}\nsteps:\n"
            "  - message: diet_salt\n    when: {offset: {days: 2}, at: '10:00'}\n")
    definition = parse_plan(text, flow_ids=FLOWS, content_ids={"diet_salt"})
    [step] = definition.steps
    assert (step.message, step.flow, step.channels, step.followup_flow_id) == (
        "diet_salt", "", ("wechat", "sms"), "content:diet_salt")
    assert plans.definition.from_dict(definition.as_dict()) == definition


def test_a_bad_message_step_names_its_line_and_field():
    text = ("id: tips\nversion: 1\ntitle: {zh: 小贴士, en: Tips}\nsteps:\n"
            "  - message: no_such_tip\n    when: {offset: {days: 2}}\n    channels: [voice]\n"
            "    start_mode: interrupt\n"
            "  - message: diet_salt\n    flow: home_monitoring\n    when: {offset: {days: 2}}\n")
    with pytest.raises(plans.PlanInvalidError) as raised:
        parse_plan(text, flow_ids=FLOWS, content_ids={"diet_salt"}, source="tips.yaml")
    shown = {problem.shown("tips.yaml") for problem in raised.value.problems}
    assert ("tips.yaml:5: steps[0].message: no message 'no_such_tip' in the content library "
            "(careloop interventions programs --content)") in shown
    assert any(line.startswith("tips.yaml:7: steps[0].channels: must list text channels") for line in shown)
    assert "tips.yaml:8: steps[0].start_mode: must be wait or skip (a message never interrupts a conversation)" \
        in shown
    assert "tips.yaml:9: steps[1].message: a step has a flow or a message, not both" in shown
