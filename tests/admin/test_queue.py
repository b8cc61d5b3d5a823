"""The dashboard's work queue: urgent first, who it concerns (an audited look at PHI), acknowledge.

A nurse sees the tasks of her care teams' patients (``in_team`` puts them there); that she sees no
other is shown in ``tests/security/test_simulator_and_care_teams.py``.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from care import care_teams
from care.care_teams import EVERY_PATIENT
from care.models import TaskStatus
from care.tasks import acknowledge_task, create_task, work_queue
from security.audit import Actor, AuditEntry
from tests.admin.conftest import page_token
from tests.conftest import TEST_ACTOR


def make_task(db, patient, priority, reason="gad7_positive", **details):
    task = create_task(db, patient, kind="flow_alert", priority=priority, reason=reason, details=details,
                       actor=TEST_ACTOR)
    db.flush()
    return task


@pytest.fixture
def in_team(db):
    """Put ``patients`` in a care team of ``member``'s."""

    def put(member, *patients):
        team = care_teams.create_team(db, f"Team of {member.email}", actor=TEST_ACTOR)
        care_teams.add_member(db, team, member.user, actor=TEST_ACTOR)
        for patient in patients:
            care_teams.add_patient(db, team, patient, actor=TEST_ACTOR)
        db.flush()
        return patients[0] if len(patients) == 1 else patients

    return put


def test_the_queue_shows_urgent_first_with_card_number_and_name(client, signed_in, make_patient, db, clock, in_team):
    member = signed_in("nurse")
    calm, worried = in_team(member, make_patient(name="王秀英"), make_patient(name="李建华"))
    make_task(db, calm, "normal", reason="followup_unanswered")
    clock.advance(minutes=5)
    make_task(db, worried, "urgent", reason="phq9_item9", note={"zh": "请立即致电", "en": "Call now"})
    page = client.get("/admin/").get_data(as_text=True)
    assert page.index("李建华") < page.index("王秀英")
    assert worried.card_no in page
    assert calm.card_no in page
    assert "请立即致电" in page
    assert "紧急" in page


def test_looking_at_the_queue_is_audited_per_patient_as_the_staff_member(client, signed_in, make_patient, db,
                                                                        in_team):
    member = signed_in("nurse")
    patient = in_team(member, make_patient())
    make_task(db, patient, "high")
    make_task(db, patient, "normal", reason="followup_unanswered")
    client.get("/admin/")
    views = db.scalars(select(AuditEntry).where(AuditEntry.action == "patient.view")).all()
    assert len(views) == 1
    assert (views[0].actor_kind, views[0].actor_id) == ("user", str(member.user.id))
    assert views[0].patient_id == patient.id
    assert views[0].source == "127.0.0.1"
    assert patient.name not in views[0].details


def test_acknowledging_a_task_records_who_and_when(client, signed_in, make_patient, db, clock, in_team):
    member = signed_in("nurse")
    task = make_task(db, in_team(member, make_patient()), "high")
    response = client.post(f"/admin/tasks/{task.id}/acknowledge", data={"csrf_token": page_token(client, "/admin/")})
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    db.refresh(task)
    assert task.status == TaskStatus.ACKNOWLEDGED.value
    assert task.acknowledged_by == member.user.id
    assert task.acknowledged_at == clock.now()
    page = client.get("/admin/").get_data(as_text=True)
    assert "已认领该任务" in page
    assert "已有人处理" in page
    [entry] = db.scalars(select(AuditEntry).where(AuditEntry.action == "task.acknowledge")).all()
    assert entry.actor_id == str(member.user.id)
    assert entry.resource_id == str(task.id)


def test_acknowledging_an_unknown_task_is_404(client, signed_in):
    signed_in("nurse")
    response = client.post(f"/admin/tasks/{uuid.uuid4()}/acknowledge",
                           data={"csrf_token": page_token(client, "/admin/")})
    assert response.status_code == 404


def test_acknowledging_a_done_task_says_so_and_changes_nothing(client, signed_in, make_patient, db, in_team):
    member = signed_in("nurse")
    task = make_task(db, in_team(member, make_patient()), "high")
    task.status = TaskStatus.DONE.value
    db.flush()
    client.post(f"/admin/tasks/{task.id}/acknowledge", data={"csrf_token": page_token(client, "/admin/")})
    db.refresh(task)
    assert task.status == TaskStatus.DONE.value
    assert task.acknowledged_by is None


def test_a_second_acknowledgement_keeps_the_first(db, make_patient):
    task = make_task(db, make_patient(), "high")
    first, second = uuid.uuid4(), uuid.uuid4()
    acknowledge_task(db, task.id, user_id=first, actor=Actor("user", str(first)), scope=EVERY_PATIENT)
    acknowledge_task(db, task.id, user_id=second, actor=Actor("user", str(second)), scope=EVERY_PATIENT)
    assert task.acknowledged_by == first
    assert len(db.scalars(select(AuditEntry).where(AuditEntry.action == "task.acknowledge")).all()) == 1


def test_work_queue_service_decrypts_and_orders(db, make_patient):
    patient = make_patient(name="赵淑珍")
    make_task(db, patient, "normal", reason="a")
    make_task(db, patient, "urgent", reason="b")
    items = work_queue(db, actor=Actor("user", "u1"), scope=EVERY_PATIENT)
    assert [item.task.priority for item in items] == ["urgent", "normal"]
    assert {item.name for item in items} == {"赵淑珍"}


def test_a_card_number_on_the_queue_opens_the_patients_page(client, signed_in, make_patient, db, in_team):
    member = signed_in("nurse")
    patient = in_team(member, make_patient(name="钱桂英"))
    make_task(db, patient, "high")
    page = client.get("/admin/").get_data(as_text=True)
    assert f'href="/admin/patients/{patient.id}"' in page
    opened = client.get(f"/admin/patients/{patient.id}").get_data(as_text=True)
    assert "钱桂英" in opened
    assert patient.card_no in opened
    assert f"Team of {member.email}" in opened


def test_a_test_patients_task_is_marked_as_a_test(client, signed_in, db):
    member = signed_in("health_manager")
    from care.test_patients import own_test_patient

    make_task(db, own_test_patient(db, member.user, actor=TEST_ACTOR), "high")
    page = client.get("/admin/").get_data(as_text=True)
    assert "测试患者</span>" in page


# -- what a task shows, and closing or moving it (issue 17) ----------------------------------------------
def test_a_task_shows_whom_to_call_how_and_why(client, signed_in, make_patient, db, in_team, clock):
    from care.observations import record_observation
    from care.tasks import create_task as raise_task

    member = signed_in("nurse")
    patient = in_team(member, make_patient(name="孙丽华", phone="13700001234", language="en"))
    reading = record_observation(db, patient, code="sbp", value=186, unit="mmHg", effective_at=clock.now(),
                                 source="report:csv", actor=TEST_ACTOR)
    db.flush()
    raise_task(db, patient, kind="red_flag", priority="urgent", reason="bp_crisis",
               details={"observation_id": str(reading.id)}, actor=TEST_ACTOR)
    raise_task(db, patient, kind="patient_message", priority="normal", reason="patient_message",
               details={"messages": [{"channel": "sms", "message": "我头很晕", "at": clock.now().isoformat()}]},
               actor=TEST_ACTOR)
    db.flush()
    page = client.get("/admin/").get_data(as_text=True)
    assert 'href="tel:13700001234"' in page
    assert "English" in page  # the patient's language
    assert "短信" in page  # enrolment consents to every channel; no WeChat bound: SMS first
    assert "收缩压 186 mmHg" in page
    assert "“我头很晕”" in page
    assert page.index("bp_crisis") < page.index("patient_message")


def test_every_page_counts_the_urgent_tasks_of_ones_teams(client, signed_in, make_patient, db, in_team):
    member = signed_in("nurse")
    mine = in_team(member, make_patient())
    make_task(db, mine, "urgent")
    make_task(db, mine, "urgent", reason="phq9_item9")
    make_task(db, mine, "high")
    make_task(db, make_patient(), "urgent")  # another team's
    for path in ("/admin/", "/admin/patients", "/admin/account", f"/admin/patients/{mine.id}"):
        assert "紧急：2" in client.get(path).get_data(as_text=True), path


def test_the_auditor_sees_no_urgent_count(client, signed_in):
    signed_in("auditor")
    assert 'id="urgent-count"' not in client.get("/admin/account").get_data(as_text=True)


def test_a_nurse_closes_a_task_with_an_outcome_and_notes(client, signed_in, make_patient, db, in_team, clock):
    member = signed_in("nurse")
    patient = in_team(member, make_patient())
    task = make_task(db, patient, "urgent", reason="phq9_item9")
    token = page_token(client, "/admin/")
    response = client.post(f"/admin/tasks/{task.id}/close",
                           data={"csrf_token": token, "outcome": "emergency_advised", "notes": "已嘱其家属陪同就医"})
    assert response.status_code == 302
    db.refresh(task)
    assert (task.status, task.outcome, task.notes) == (TaskStatus.DONE.value, "emergency_advised", "已嘱其家属陪同就医")
    assert task.closed_by == member.user.id
    assert task.done_at == clock.now()
    page = client.get("/admin/").get_data(as_text=True)
    assert "任务已关闭" in page
    assert f'data-task="{task.id}"' not in page
    # The closed task stays on the patient's timeline, with its outcome and notes.
    timeline = client.get(f"/admin/patients/{patient.id}").get_data(as_text=True).split('id="task-timeline"')[1]
    assert "已建议立即就医" in timeline
    assert "已嘱其家属陪同就医" in timeline
    [entry] = db.scalars(select(AuditEntry).where(AuditEntry.action == "task.close")).all()
    assert "已嘱其家属" not in entry.details


@pytest.mark.parametrize("fields", [{}, {"outcome": "made_up"}, {"outcome": "resolved", "notes": "x" * 4001}])
def test_closing_without_a_known_outcome_or_with_too_long_notes_changes_nothing(client, signed_in, make_patient, db,
                                                                               in_team, fields):
    member = signed_in("nurse")
    task = make_task(db, in_team(member, make_patient()), "high")
    client.post(f"/admin/tasks/{task.id}/close", data={"csrf_token": page_token(client, "/admin/"), **fields})
    db.refresh(task)
    assert task.status == TaskStatus.OPEN.value
    assert "任务未关闭" in client.get("/admin/").get_data(as_text=True)


def test_closing_needs_the_csrf_token_and_another_teams_task_is_refused(client, signed_in, make_patient, db, in_team):
    member = signed_in("nurse")
    in_team(member, make_patient())
    other = make_task(db, make_patient(), "high")
    assert client.post(f"/admin/tasks/{other.id}/close", data={"outcome": "resolved"}).status_code == 400
    refused = client.post(f"/admin/tasks/{other.id}/close",
                          data={"csrf_token": page_token(client, "/admin/"), "outcome": "resolved"})
    assert refused.status_code == 403
    db.refresh(other)
    assert other.status == TaskStatus.OPEN.value


def test_a_nurse_moves_a_task_to_tomorrow_in_the_clinics_time_zone(client, signed_in, make_patient, db, in_team, clock):
    from datetime import UTC, datetime

    member = signed_in("nurse")
    task = make_task(db, in_team(member, make_patient()), "high")
    # The test clock is 2026-11-29 02:00 UTC = 10:00 in Shanghai; 09:30 the next morning there is 01:30 UTC.
    response = client.post(f"/admin/tasks/{task.id}/reschedule",
                           data={"csrf_token": page_token(client, "/admin/"), "due": "2026-11-30T09:30"})
    assert response.status_code == 302
    db.refresh(task)
    assert task.due_at == datetime(2026, 11, 30, 1, 30, tzinfo=UTC)
    assert task.status == TaskStatus.OPEN.value
    assert "任务已改到" in client.get("/admin/").get_data(as_text=True)


@pytest.mark.parametrize("due", ["", "tomorrow", "2026-11-28T09:00"])
def test_a_bad_or_past_due_time_changes_nothing(client, signed_in, make_patient, db, in_team, due):
    member = signed_in("nurse")
    task = make_task(db, in_team(member, make_patient()), "high")
    before = task.due_at
    client.post(f"/admin/tasks/{task.id}/reschedule", data={"csrf_token": page_token(client, "/admin/"), "due": due})
    db.refresh(task)
    assert task.due_at == before
    assert "任务未改期" in client.get("/admin/").get_data(as_text=True)
