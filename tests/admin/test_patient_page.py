"""The patient page (issue 17): profile, cards, tags with their origin, observations, trend charts,
follow-up records and the tasks' timeline; the front desk sees no clinical data; another team's patient is 403."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from care import care_teams
from care.followups import record_followup_outcome, schedule_followup
from care.models import AuditEntry, HealthProfile, TagRule
from care.observations import record_observation
from care.tags import TagOrigin, add_tag, staff_tag
from care.tasks import close_task, create_task
from security.audit import Actor
from tests.conftest import TEST_ACTOR


@pytest.fixture
def team_of(db):
    def put(member, *patients):
        team = care_teams.create_team(db, f"team {member.email}", actor=TEST_ACTOR)
        care_teams.add_member(db, team, member.user, actor=TEST_ACTOR)
        for patient in patients:
            care_teams.add_patient(db, team, patient, actor=TEST_ACTOR)
        db.flush()

    return put


@pytest.fixture
def recorded(db, make_patient, make_staff, clock):
    """A patient with a card, a profile, three kinds of tag, five years of blood pressure, a follow-up and tasks."""
    patient = make_patient(name="陈美玲", package="金卡套餐", phone="13600001111")
    patient.profile = HealthProfile(patient_id=patient.id, created_at=clock.now(), updated_at=clock.now())
    patient.profile.allergies = {"penicillin": "rash"}
    rule = TagRule(name="BP high", name_key="bp high", tag="hypertension", expression="sbp >= 140", version=3,
                   enabled=True, created_at=clock.now(), updated_at=clock.now())
    db.add(rule)
    db.flush()
    add_tag(db, patient, "hypertension", source=TagOrigin.rule(rule.id, 3).source, actor=TEST_ACTOR)
    add_tag(db, patient, "anxiety", source="flow:gad7", actor=TEST_ACTOR)
    colleague = make_staff("doctor", email="dr.li@clinic.test")
    staff_tag(db, patient, "vip", staff_id=str(colleague.user.id), actor=TEST_ACTOR)
    for years_ago, sbp in enumerate((152, 148, 141, 135, 131)):
        record_observation(db, patient, code="sbp", value=sbp, unit="mmHg",
                           effective_at=datetime(2026 - years_ago, 6, 1, 2, tzinfo=UTC), source="report:csv",
                           actor=TEST_ACTOR)
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now() - timedelta(days=3), actor=TEST_ACTOR)
    db.flush()
    record_followup_outcome(db, followup.id, outcome="completed_by_phone", notes="说心情好多了",
                            staff_id=colleague.user.id, actor=TEST_ACTOR, scope=care_teams.EVERY_PATIENT)
    done = create_task(db, patient, kind="flow_alert", priority="high", reason="gad7_positive", actor=TEST_ACTOR)
    db.flush()
    close_task(db, done.id, outcome="reached_advised", notes="已电话沟通", user_id=colleague.user.id,
               actor=Actor("user", str(colleague.user.id)), scope=care_teams.EVERY_PATIENT)
    create_task(db, patient, kind="red_flag", priority="urgent", reason="sbp_red_flag", actor=TEST_ACTOR)
    db.flush()
    return patient


def test_a_doctor_sees_the_whole_record(client, signed_in, team_of, recorded):
    member = signed_in("doctor")
    team_of(member, recorded)
    page = client.get(f"/admin/patients/{recorded.id}").get_data(as_text=True)
    assert "陈美玲" in page
    assert 'href="tel:13600001111"' in page
    assert "金卡套餐" in page
    assert "penicillin: rash" in page
    # Each tag names where it came from.
    assert "规则 BP high，第3版" in page
    assert "工作人员 Test doctor" in page
    assert "对话 gad7" in page
    # The observations, newest first, and a chart of the trend.
    rows = page.split('id="observations"')[1]
    assert rows.index(">152<") < rows.index(">131<")  # 2026 before 2022
    assert f'src="/admin/patients/{recorded.id}/trends/sbp.svg"' in page
    # Follow-up record, with its outcome and notes; the tasks, closed and open, on one timeline.
    assert "电话随访完成" in page
    assert "说心情好多了" in page
    timeline = page.split('id="task-timeline"')[1]
    assert "sbp_red_flag" in timeline
    assert "gad7_positive" in timeline
    assert "已联系，已给建议" in timeline
    assert "已电话沟通" in timeline


def test_the_page_in_english(client, signed_in, team_of, recorded):
    member = signed_in("doctor")
    team_of(member, recorded)
    page = client.get(f"/admin/patients/{recorded.id}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Rule BP high, version 3" in page
    assert "Completed by phone" in page
    assert "Reached, advice given" in page


def test_the_trend_chart_is_an_svg_drawn_on_the_server(client, signed_in, team_of, recorded, db):
    member = signed_in("nurse")
    team_of(member, recorded)
    response = client.get(f"/admin/patients/{recorded.id}/trends/sbp.svg")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.data.lstrip().startswith(b"<?xml")
    assert b"<script" not in response.data
    assert response.headers["Cache-Control"] == "no-store"
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "patient.view")
                       .order_by(AuditEntry.occurred_at.desc())).first()
    assert entry is not None
    assert "trend_chart" in entry.details
    assert client.get(f"/admin/patients/{recorded.id}/trends/hba1c.svg").status_code == 404
    assert client.get(f"/admin/patients/{recorded.id}/trends/x%20y.svg").status_code == 404


def test_the_front_desk_sees_the_patient_but_not_the_record(client, signed_in, team_of, recorded):
    member = signed_in("front_desk")
    team_of(member, recorded)
    page = client.get(f"/admin/patients/{recorded.id}").get_data(as_text=True)
    assert "陈美玲" in page
    assert 'id="no-clinical"' in page
    for clinical in ("hypertension", "penicillin", "说心情好多了", "sbp_red_flag", "trends/sbp.svg"):
        assert clinical not in page
    assert client.get(f"/admin/patients/{recorded.id}/trends/sbp.svg").status_code == 403


def test_another_teams_patient_and_chart_are_refused_and_audited(client, signed_in, team_of, recorded, make_patient,
                                                                 db):
    member = signed_in("doctor")
    team_of(member, make_patient())
    page = client.get(f"/admin/patients/{recorded.id}")
    assert page.status_code == 403
    assert "陈美玲" not in page.get_data(as_text=True)
    chart = client.get(f"/admin/patients/{recorded.id}/trends/sbp.svg")
    assert chart.status_code == 403
    assert b"<svg" not in chart.data
    refusals = db.scalars(select(AuditEntry).where(AuditEntry.action == "access.denied")).all()
    assert len(refusals) == 2
