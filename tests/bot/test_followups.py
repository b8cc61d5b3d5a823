"""Follow-ups that run by themselves: invitations, quiet hours, channels in order, silence (bot/followups)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from bot.channels.base import SendResult
from bot.consent import in_quiet_hours, opt_out, quiet_hours_end
from bot.conversations import BotServices
from bot.followups import due_followups
from bot.models import ConversationSession, OutboxMessage
from care.followups import schedule_followup
from care.models import FollowUp, Patient, StaffTask
from care.patients import EnrolmentRequest, enroll
from careloop.bot_runtime import build_bot
from careloop.runtime import Runtime
from tests.bot.scripted import at_shanghai
from tests.clinic import with_clinic
from tests.conftest import TEST_ACTOR


def test_a_due_followup_invites_on_the_first_usable_channel(db, make_patient, services, clock):
    patient = make_patient()  # no WeChat openid: wechat is skipped; sms and voice are not live here
    at_shanghai(clock, 10)
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), actor=TEST_ACTOR,
                                 channel_order=["wechat", "sms", "console"])
    db.flush()
    assert due_followups(db, services) == 1
    assert followup.status == "invited"
    assert followup.current_channel == "console"
    invitation = db.scalars(select(OutboxMessage).where(OutboxMessage.followup_id == followup.id)).one()
    assert invitation.payload["text"] == "Careloop 健康管理中心：您有一项健康随访，回复1开始。"
    conversation = db.get(ConversationSession, followup.session_id)
    assert conversation is not None
    assert conversation.status == "invited"


def test_the_reply_to_an_invitation_starts_the_flow(db, make_patient, services, clock, say_as):
    patient = make_patient()
    at_shanghai(clock, 10)
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), actor=TEST_ACTOR,
                                 channel_order=["console"])
    db.flush()
    due_followups(db, services)
    reply = say_as(patient.card_no, "1")
    assert "做事时提不起劲" in "\n".join(reply.texts)
    assert followup.status == "in_progress"


def test_quiet_hours_make_the_invitation_wait_until_morning_in_the_patients_zone(db, make_patient, services,
                                                                                  clock):
    patient = make_patient()
    at_shanghai(clock, 22)
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), actor=TEST_ACTOR,
                                 channel_order=["console"])
    db.flush()
    due_followups(db, services)
    assert followup.status == "scheduled"
    assert followup.next_action_at == datetime(2026, 12, 2, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    assert db.scalars(select(OutboxMessage).where(OutboxMessage.followup_id == followup.id)).first() is None


@pytest.fixture
def clinic_services(settings, database, key_ring, clock) -> BotServices:
    """The bot of a clinic with its own zone (Asia/Urumqi, UTC+6) and quiet hours (22:30-07:15)."""
    return build_bot(Runtime(settings=with_clinic(settings), key_ring=key_ring, db=database, clock=clock)).services


def enrol_in_the_clinics_zone(db, services) -> Patient:
    """Enrol as the front desk does: the new patient lives in the clinic's zone (CARELOOP_TIMEZONE)."""
    request = EnrolmentRequest(card_no="Z0000001", name="时区测试", gender="F", birth_date=date(1961, 2, 3),
                               phone="+8613800000991", language="zh")
    patient = enroll(db, request, actor=TEST_ACTOR, timezone=services.config.timezone).patient
    db.flush()
    return patient


@pytest.mark.parametrize(("utc_hour", "waits_until"), [
    (17, datetime(2026, 12, 2, 1, 15, tzinfo=UTC)),  # 23:00 in Urumqi: quiet until 07:15 there
    (16, None),  # 22:00 there: the clinic's quiet hours start at 22:30 (not the default 21:00)
    (1, datetime(2026, 12, 1, 1, 15, tzinfo=UTC)),  # 07:00 there: still quiet for a quarter of an hour
])
def test_quiet_hours_are_the_clinics_own_in_the_clinics_zone(db, clinic_services, clock, utc_hour, waits_until):
    patient = enrol_in_the_clinics_zone(db, clinic_services)
    assert patient.timezone == "Asia/Urumqi"
    clock.set(datetime(2026, 12, 1, utc_hour, 0, tzinfo=UTC))
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), actor=TEST_ACTOR,
                                 channel_order=["console"])
    db.flush()
    due_followups(db, clinic_services)
    if waits_until is None:
        assert followup.status == "invited"
    else:
        assert (followup.status, followup.next_action_at) == ("scheduled", waits_until)


def test_a_patient_without_a_zone_of_their_own_keeps_the_clinics_quiet_hours(db, clinic_services, clock):
    patient = enrol_in_the_clinics_zone(db, clinic_services)
    patient.timezone = ""
    clock.set(datetime(2026, 12, 1, 17, 0, tzinfo=UTC))  # 23:00 in Urumqi, 01:00 in Shanghai
    assert in_quiet_hours(clinic_services.config, patient, clock.now())
    assert quiet_hours_end(clinic_services.config, patient, clock.now()) == datetime(2026, 12, 2, 1, 15, tzinfo=UTC)


def test_an_opted_out_channel_is_never_used(db, make_patient, services, clock):
    patient = make_patient()
    opt_out(db, patient, "console", actor=TEST_ACTOR, reason="test")
    at_shanghai(clock, 10)
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), actor=TEST_ACTOR,
                                 channel_order=["console"])
    db.flush()
    due_followups(db, services)
    assert followup.status == "unanswered"
    task = db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)).one()
    assert task.kind == "followup_unanswered"


def test_silence_moves_on_then_escalates_to_a_staff_call(db, make_patient, services, clock):
    patient = make_patient()
    at_shanghai(clock, 10)
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), actor=TEST_ACTOR,
                                 channel_order=["console"], answer_window_hours=24)
    db.flush()
    due_followups(db, services)
    clock.advance(hours=25)
    due_followups(db, services)
    assert followup.status == "unanswered"
    assert db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)).one().priority == "high"
    invited = db.scalars(select(ConversationSession).where(ConversationSession.patient_id == patient.id)).one()
    assert invited.status == "ended"



def test_failed_invitation_falls_back_to_the_next_channel(db, make_patient, services, clock, dispatcher, provider):
    patient = make_patient()
    services.adapters["sms"] = provider
    at_shanghai(clock, 10)
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), actor=TEST_ACTOR,
                                 channel_order=["sms", "console"])
    db.flush()
    due_followups(db, services)
    assert followup.current_channel == "sms"
    provider.script = [SendResult("failed", error_code="21211")]
    dispatcher.tick()
    assert followup.status == "scheduled"
    due_followups(db, services)
    assert followup.current_channel == "console"
    assert isinstance(db.get(FollowUp, followup.id), FollowUp)
