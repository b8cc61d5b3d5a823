"""A staff account can neither speak as a real patient in the simulator nor see patients outside its care teams.

The simulator speaks only as test patients (``patients.is_test``): each staff member has their own,
made at their first message, reached on the console channel only, so nothing a simulation starts
(a follow-up, a reminder) ever goes out over WeChat, SMS or a call, even with every provider live.
The work queue, the patient list and the patient page show a staff member only the patients of
their care teams (and their own test patient); administrators and the clinic lead see everyone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.followups import due_followups
from bot.models import ConversationMessage, ConversationSession, InboundReceipt, OutboxMessage, OutboxStatus
from bot.outbox.queue import enqueue
from care import care_teams
from care.models import ChannelConsent, FollowUp, Patient, StaffTask, TaskStatus
from care.tasks import create_task
from careloop.bot_runtime import BotRuntime, bot_for
from careloop.db import Database
from careloop.runtime import Runtime
from careloop.settings import Settings
from security.audit import AuditEntry
from security.clock import FixedClock
from security.keys import KeyRing
from tests.admin.conftest import Staff, page_token
from tests.conftest import TEST_ACTOR, flask_app_for
from tests.fakes.twilio_server import FakeTwilio
from tests.fakes.wechat_server import SEND_PATHS, FakeWeChat
from tests.webhooks.conftest import (
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    TWILIO_FROM,
    WECHAT_APPID,
    WECHAT_SECRET,
    twilio_settings_for,
    wechat_settings_for,
)

# A GAD-7 with every answer "nearly every day": 21, severe; the flow raises a task and books a rescreen.
GAD7 = ["焦虑"] + ["4"] * 7


def simulate(client: FlaskClient, body: dict[str, Any]) -> Any:
    token = page_token(client, "/admin/simulator")
    return client.post("/admin/simulator/messages", json=body, headers={"X-CSRFToken": token})


def written_for(db: Session, patient: Patient) -> dict[str, int]:
    """How many rows of what a turn writes name the patient."""
    db.expire_all()
    counts = {}
    for model in (ConversationMessage, ConversationSession, InboundReceipt, OutboxMessage, StaffTask, FollowUp):
        counts[model.__tablename__] = db.scalar(
            select(func.count()).select_from(model).where(model.patient_id == patient.id)) or 0
    counts["simulator.message"] = db.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "simulator.message", AuditEntry.patient_id == patient.id)) or 0
    return counts


NOTHING = {"conversation_messages": 0, "conversation_sessions": 0, "inbound_receipts": 0, "outbox": 0,
           "staff_tasks": 0, "followups": 0, "simulator.message": 0}


# -- the simulator speaks only as test patients --------------------------------------------------------------
@pytest.mark.parametrize("role", ["admin", "health_manager", "clinic_lead"])
def test_no_staff_member_can_simulate_a_real_patient_by_card_number(client, signed_in, make_patient, db, role):
    member = signed_in(role)
    real = make_patient()
    team = care_teams.create_team(db, "Hypertension", actor=TEST_ACTOR)
    care_teams.add_member(db, team, member.user, actor=TEST_ACTOR)
    care_teams.add_patient(db, team, real, actor=TEST_ACTOR)  # in their own team: still not theirs to speak for
    db.flush()
    response = simulate(client, {"card_no": real.card_no, "text": "焦虑"})
    assert response.status_code == 403
    assert response.get_json()["error"] == "not_a_test_patient"
    assert "测试患者" in response.get_json()["reason"]
    assert written_for(db, real) == NOTHING


def test_a_request_naming_a_real_patients_id_is_refused_and_audited(client, signed_in, make_patient, db):
    member = signed_in("admin")
    real = make_patient()
    response = simulate(client, {"patient_id": str(real.id), "text": "焦虑"})
    assert response.status_code == 403
    assert response.get_json()["error"] == "not_a_test_patient"
    assert written_for(db, real) == NOTHING
    [refusal] = db.scalars(select(AuditEntry).where(AuditEntry.action == "simulator.refused")).all()
    assert (refusal.actor_id, refusal.resource_id) == (str(member.user.id), str(real.id))


def test_a_nurse_cannot_open_the_simulator_at_all(client, signed_in, make_patient, db):
    signed_in("nurse")
    real = make_patient()
    response = client.post("/admin/simulator/messages", json={"card_no": real.card_no, "text": "焦虑"},
                           headers={"X-CSRFToken": page_token(client, "/admin/account")})
    assert response.status_code == 403
    assert written_for(db, real) == NOTHING


def test_a_staff_member_speaks_as_a_test_patient_of_their_own(client, signed_in, db):
    member = signed_in("health_manager")
    reply = simulate(client, {"text": "你好"})
    assert reply.status_code == 200, reply.get_json()
    mine = db.scalars(select(Patient).where(Patient.test_owner_id == member.user.id)).one()
    assert mine.is_test is True
    assert reply.get_json()["patient"]["card_no"] == mine.card_no
    again = simulate(client, {"text": "你好"})
    assert again.get_json()["patient"]["card_no"] == mine.card_no  # the same one, not a new one each time
    assert written_for(db, mine)["simulator.message"] == 2


def test_a_test_patient_of_someone_else_outside_my_teams_is_refused(app, make_staff, sign_in, db):
    owner, stranger = make_staff("health_manager"), make_staff("health_manager")
    owner_browser, stranger_browser = app.test_client(), app.test_client()
    assert sign_in(owner, on=owner_browser).status_code == 302
    assert sign_in(stranger, on=stranger_browser).status_code == 302
    card = simulate(owner_browser, {"text": "你好"}).get_json()["patient"]["card_no"]
    theirs = db.scalars(select(Patient).where(Patient.test_owner_id == owner.user.id)).one()
    before = written_for(db, theirs)
    response = simulate(stranger_browser, {"card_no": card, "text": "焦虑"})
    assert response.status_code == 403
    assert response.get_json()["error"] == "outside_care_team"
    assert written_for(db, theirs) == before
    mine = simulate(stranger_browser, {"text": "你好"}).get_json()["patient"]["card_no"]
    assert mine != card


# -- nothing a simulation starts leaves over a real channel ------------------------------------------------
@pytest.fixture
def live_fakes() -> Iterator[tuple[FakeWeChat, FakeTwilio]]:
    with FakeWeChat(WECHAT_APPID, WECHAT_SECRET) as wechat, \
            FakeTwilio(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM) as twilio:
        yield wechat, twilio


@pytest.fixture
def every_channel_runtime(settings: Settings, live_fakes: tuple[FakeWeChat, FakeTwilio], database: Database,
                          key_ring: KeyRing, clock: FixedClock) -> Runtime:
    wechat, twilio = live_fakes
    live = twilio_settings_for(wechat_settings_for(settings, wechat), twilio,
                               channels=("console", "wechat", "sms", "voice"))
    return Runtime(settings=live, key_ring=key_ring, db=database, clock=clock)


@pytest.fixture
def live_bot(every_channel_runtime: Runtime) -> BotRuntime:
    return bot_for(every_channel_runtime)


@pytest.fixture
def live_client(every_channel_runtime: Runtime) -> FlaskClient:
    return flask_app_for(every_channel_runtime).test_client()


def run_worker(bot: BotRuntime, db: Session) -> None:
    """What the worker does at one tick: due follow-ups (committed as the worker would), then the outbox."""
    due_followups(db, bot.services)
    db.flush()
    while bot.dispatcher.tick() > 0:
        pass
    db.expire_all()


def test_nothing_a_simulation_starts_goes_out_over_wechat_sms_or_voice(
        live_client, live_bot, live_fakes, make_staff, sign_in, db, clock):
    wechat, twilio = live_fakes
    member = make_staff("health_manager")
    assert sign_in(member, on=live_client).status_code == 302
    assert simulate(live_client, {"text": "你好"}).status_code == 200
    patient = db.scalars(select(Patient).where(Patient.test_owner_id == member.user.id)).one()
    # Even a test patient someone gave a real openid, a phone and consents is reached on the console only.
    patient.wechat_openid = "oRealLookingOpenId0000000001"
    patient.phone = "+8613800000099"
    for channel in ("wechat", "sms", "voice"):
        patient.consents.append(ChannelConsent(channel=channel, consented=True, consented_at=clock.now(),
                                               recording_consent=False, opted_out=False, created_at=clock.now(),
                                               updated_at=clock.now()))
    db.flush()
    for text in GAD7:
        assert simulate(live_client, {"text": text}).status_code == 200
    # The rescreen falls due, goes unanswered on the console, and ends as a task: never another channel.
    for days in (15, 3, 3, 3, 3):
        clock.advance(days=days)
        run_worker(live_bot, db)
    assert wechat.calls(SEND_PATHS[0]) == []
    assert wechat.calls(SEND_PATHS[1]) == []
    assert twilio.sent_messages() == []
    assert twilio.placed_calls() == []
    sent = db.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient.id,
                                                  OutboxMessage.status != OutboxStatus.CANCELLED.value)).all()
    assert {row.channel for row in sent} == {"console"}
    [followup] = db.scalars(select(FollowUp).where(FollowUp.patient_id == patient.id)).all()
    assert followup.channel_order == ["console"]
    assert (followup.status, followup.attempts) == ("unanswered", 1)  # one console invitation, then the queue


def test_a_message_queued_for_a_test_patient_on_a_real_channel_is_cancelled_not_sent(
        live_bot, live_fakes, make_staff, db):
    wechat, _twilio = live_fakes
    member = make_staff("health_manager")
    from care.test_patients import own_test_patient

    patient = own_test_patient(db, member.user, actor=TEST_ACTOR)
    patient.wechat_openid = "oRealLookingOpenId0000000002"
    row = enqueue(db, idempotency_key="test-patient-wechat", channel="wechat", kind="text", purpose="staff_message",
                  address=patient.wechat_openid, payload={"text": "hello"}, patient=patient)
    db.flush()
    assert row.status == OutboxStatus.CANCELLED.value
    assert row.error_code == "test_patient"
    while live_bot.dispatcher.tick() > 0:
        pass
    assert wechat.delivered() == []


# -- care teams: what a staff member sees -----------------------------------------------------------------
@pytest.fixture
def two_teams(db: Session, make_staff: Callable[..., Staff], make_patient: Callable[..., Patient]) -> dict[str, Any]:
    """Team A (a nurse, a patient), team B (a nurse, a patient), and a patient in no team; a task for each."""
    nurse_a, nurse_b = make_staff("nurse"), make_staff("nurse")
    patient_a, patient_b = make_patient(name="甲队病人"), make_patient(name="乙队病人")
    nobody = make_patient(name="无队病人")
    team_a = care_teams.create_team(db, "Team A", actor=TEST_ACTOR)
    team_b = care_teams.create_team(db, "Team B", actor=TEST_ACTOR)
    care_teams.add_member(db, team_a, nurse_a.user, actor=TEST_ACTOR)
    care_teams.add_member(db, team_b, nurse_b.user, actor=TEST_ACTOR)
    care_teams.add_patient(db, team_a, patient_a, actor=TEST_ACTOR)
    care_teams.add_patient(db, team_b, patient_b, actor=TEST_ACTOR)
    tasks = {}
    for key, patient in (("a", patient_a), ("b", patient_b), ("none", nobody)):
        tasks[key] = create_task(db, patient, kind="flow_alert", priority="high", reason="gad7_positive",
                                 actor=TEST_ACTOR)
    db.flush()
    return {"nurse_a": nurse_a, "nurse_b": nurse_b, "a": patient_a, "b": patient_b, "none": nobody, "tasks": tasks}


def test_a_nurse_sees_only_her_teams_tasks_on_the_work_queue(client, sign_in, two_teams):
    assert sign_in(two_teams["nurse_a"]).status_code == 302
    page = client.get("/admin/").get_data(as_text=True)
    assert two_teams["a"].card_no in page
    assert "甲队病人" in page
    assert two_teams["b"].card_no not in page
    assert "乙队病人" not in page
    assert two_teams["none"].card_no not in page
    assert "无队病人" not in page


def test_a_nurse_sees_only_her_teams_patients_on_the_patient_list(client, sign_in, two_teams):
    assert sign_in(two_teams["nurse_a"]).status_code == 302
    page = client.get("/admin/patients").get_data(as_text=True)
    assert "甲队病人" in page
    assert "乙队病人" not in page
    assert "无队病人" not in page
    token = page_token(client, "/admin/patients")
    own = client.post("/admin/patients", data={"csrf_token": token, "q": two_teams["a"].card_no})
    assert "甲队病人" in own.get_data(as_text=True)
    for search in (two_teams["b"].card_no, "乙队病人"):
        searched = client.post("/admin/patients", data={"csrf_token": token, "q": search})
        assert searched.status_code == 200
        assert f'data-patient="{two_teams["b"].id}"' not in searched.get_data(as_text=True)
        assert 'id="patients-empty"' in searched.get_data(as_text=True)


def test_a_nurse_cannot_open_another_teams_patient_page_by_its_url(client, sign_in, two_teams, db):
    nurse = two_teams["nurse_a"]
    assert sign_in(nurse).status_code == 302
    assert client.get(f"/admin/patients/{two_teams['a'].id}").status_code == 200
    for other in (two_teams["b"], two_teams["none"]):
        response = client.get(f"/admin/patients/{other.id}")
        assert response.status_code == 403
        page = response.get_data(as_text=True)
        assert other.name not in page
        assert other.card_no not in page
        assert "护理团队" in page
    refusals = db.scalars(select(AuditEntry).where(AuditEntry.action == "access.denied",
                                                   AuditEntry.actor_id == str(nurse.user.id))).all()
    assert {entry.resource_id for entry in refusals} >= {str(two_teams["b"].id), str(two_teams["none"].id)}
    views = db.scalars(select(AuditEntry).where(AuditEntry.action == "patient.view",
                                                AuditEntry.actor_id == str(nurse.user.id))).all()
    assert {entry.patient_id for entry in views} == {two_teams["a"].id}


def test_a_nurse_cannot_acknowledge_another_teams_task_by_its_url(client, sign_in, two_teams, db):
    assert sign_in(two_teams["nurse_a"]).status_code == 302
    token = page_token(client, "/admin/")
    task = two_teams["tasks"]["b"]
    response = client.post(f"/admin/tasks/{task.id}/acknowledge", data={"csrf_token": token})
    assert response.status_code == 403
    db.refresh(task)
    assert task.status == TaskStatus.OPEN.value
    assert task.acknowledged_by is None
    own = two_teams["tasks"]["a"]
    assert client.post(f"/admin/tasks/{own.id}/acknowledge", data={"csrf_token": token}).status_code == 302
    db.refresh(own)
    assert own.status == TaskStatus.ACKNOWLEDGED.value


@pytest.mark.parametrize("role", ["admin", "clinic_lead"])
def test_admins_and_the_clinic_lead_see_every_patient(client, signed_in, two_teams, role):
    signed_in(role)
    queue = client.get("/admin/").get_data(as_text=True)
    patients = client.get("/admin/patients").get_data(as_text=True)
    for key in ("a", "b", "none"):
        assert two_teams[key].card_no in queue
        assert two_teams[key].name in patients
        assert client.get(f"/admin/patients/{two_teams[key].id}").status_code == 200


def test_leaving_a_team_takes_its_patients_off_the_nurses_pages_at_once(client, sign_in, two_teams, db):
    nurse = two_teams["nurse_a"]
    assert sign_in(nurse).status_code == 302
    care_teams.remove_member(db, care_teams.get_team(db, "Team A"), nurse.user, actor=TEST_ACTOR)
    db.flush()
    assert two_teams["a"].card_no not in client.get("/admin/").get_data(as_text=True)
    assert client.get(f"/admin/patients/{two_teams['a'].id}").status_code == 403
