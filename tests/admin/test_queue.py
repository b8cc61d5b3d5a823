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
