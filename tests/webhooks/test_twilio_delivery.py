"""Outbound SMS and calls through the real Twilio client to the fake provider; what Twilio reports back.

Errors and their outcomes, reconciliation of unknown outcomes, status callbacks out of order, 21610,
busy and unanswered calls, quiet hours in the patient's own time zone, and the channel fallback order.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.channels.base import ChannelEnvironment, SendResult
from bot.channels.sms import SmsAdapter
from bot.followups import due_followups
from bot.models import OutboxMessage
from bot.outbox.dispatcher import Dispatcher
from bot.outbox.queue import enqueue, record_result
from care.followups import schedule_followup
from care.models import FollowUp, StaffTask
from careloop.bot_runtime import bot_for
from careloop.runtime import Runtime
from security.audit import AuditEntry
from tests.conftest import TEST_ACTOR
from tests.webhooks.conftest import TWILIO_FROM, twilio_settings_for

INVITE = "【Careloop 健康管理中心】您有一项健康随访，回复1开始。"  # an SMS opens with the clinic's signature


def outbox_of(db, patient):
    return list(db.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)
                           .order_by(OutboxMessage.created_at)))


def queue_sms(db, patient, text="您好", key="test-sms"):
    row = enqueue(db, idempotency_key=key, channel="sms", kind="text", purpose="reminder", address=patient.phone,
                  payload={"text": text}, patient=patient)
    db.flush()
    return row


def invite(db, services, patient, clock, order, **options):
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), channel_order=order,
                                 actor=TEST_ACTOR, **options)
    db.flush()
    due_followups(db, services)
    db.flush()
    return followup


def status(twilio_post, row, state, *, error_code=None, kind="Message", **extra):
    params = {f"{kind}Sid": row.provider_id, f"{kind}Status": state, "To": row.address, **extra}
    if error_code:
        params["ErrorCode"] = error_code
    response = twilio_post(f"/webhooks/twilio/status?outbox={row.id}", params)
    assert response.status_code == 204, response.get_data(as_text=True)
    return response


# -- sending ---------------------------------------------------------------------------------------------
def test_an_sms_goes_out_through_the_real_client_with_our_callback(db, make_patient, dispatch, twilio_fake, settings):
    patient = make_patient()
    row = queue_sms(db, patient)
    assert dispatch() == 1
    db.refresh(row)
    [message] = twilio_fake.sent_messages()
    assert (message["to"], message["from"], message["body"]) == (patient.phone, TWILIO_FROM, "您好")
    assert message["status_callback"] == f"{settings.public_url}/webhooks/twilio/status?outbox={row.id}"
    assert row.status == "sent"
    assert row.provider_id == message["sid"]
    assert all(request.authorised for request in twilio_fake.requests)


@pytest.mark.parametrize("http_status", [429, 500, 503])
def test_a_transient_failure_is_retried_with_backoff_and_sent_once(db, clock, make_patient, dispatch, twilio_fake,
                                                                     http_status):
    patient = make_patient()
    row = queue_sms(db, patient)
    twilio_fake.fail_next("messages.create", status=http_status, code=20429 if http_status == 429 else None)
    dispatch()
    db.refresh(row)
    assert row.status == "queued"
    assert row.next_attempt_at > clock.now()
    assert twilio_fake.sent_messages() == []
    clock.advance(minutes=2)
    dispatch()
    db.refresh(row)
    assert row.status == "sent"
    assert len(twilio_fake.requests_for("messages.create")) == 2
    assert len(twilio_fake.sent_messages()) == 1


def test_an_invalid_number_is_a_permanent_failure(db, make_patient, dispatch, twilio_fake, clock):
    patient = make_patient()
    row = enqueue(db, idempotency_key="bad-number", channel="sms", kind="text", purpose="reminder",
                  address="12345", payload={"text": "您好"}, patient=patient)
    db.flush()
    dispatch()
    db.refresh(row)
    assert (row.status, row.error_code) == ("failed", "21211")
    clock.advance(hours=2)
    dispatch()
    assert len(twilio_fake.requests_for("messages.create")) == 1


def _short_timeout_dispatcher(runtime: Runtime, services, **settings_changes):
    settings = runtime.settings.with_overrides(**settings_changes)
    environment = ChannelEnvironment(
        config=services.config, clock=runtime.clock, open_session=runtime.db.sessions,
        settings={name: getattr(settings, name) for name in settings.ENVIRONMENT_NAMES}, http_timeout=0.5)
    return Dispatcher(runtime.db.unit_of_work, {"sms": SmsAdapter(environment)}, services.config)


def test_a_timeout_after_sending_is_reconciled_with_twilio_not_sent_again(db, clock, make_patient, twilio_fake,
                                                                         twilio_runtime, twilio_services):
    patient = make_patient()
    row = queue_sms(db, patient, text="第一条")
    queue_sms(db, patient, text="第一条", key="identical-but-earlier")  # the same words, a different message
    dispatcher = _short_timeout_dispatcher(twilio_runtime, twilio_services)
    twilio_fake.time_out_next("messages.create", count=2, delay=1.0)
    dispatcher.tick()
    db.expire_all()
    assert [r.status for r in outbox_of(db, patient)] == ["sending", "sending"]
    assert len(twilio_fake.sent_messages()) == 2  # Twilio took both; we could not hear it
    dispatcher.tick()
    assert len(twilio_fake.requests_for("messages.list")) == 0  # not before the lease runs out
    clock.advance(seconds=twilio_services.config.outbox_lease_seconds + 1)
    dispatcher.tick()
    db.expire_all()
    rows = outbox_of(db, patient)
    assert [r.status for r in rows] == ["sent", "sent"]
    assert {r.provider_id for r in rows} == {m["sid"] for m in twilio_fake.sent_messages()}
    assert len(twilio_fake.requests_for("messages.create")) == 2
    assert row.id in {r.id for r in rows}


def test_a_timeout_before_twilio_took_it_is_sent_after_reconciling(db, clock, make_patient, twilio_fake,
                                                                   twilio_runtime, twilio_services):
    patient = make_patient()
    row = queue_sms(db, patient)
    dispatcher = _short_timeout_dispatcher(twilio_runtime, twilio_services)
    twilio_fake.time_out_next("messages.create", delay=1.0, reached=False)
    dispatcher.tick()
    clock.advance(seconds=twilio_services.config.outbox_lease_seconds + 1)
    dispatcher.tick()
    db.refresh(row)
    assert row.status == "sent"
    assert len(twilio_fake.requests_for("messages.list")) == 1
    assert len(twilio_fake.sent_messages()) == 1


def test_a_connection_that_never_opened_is_retried(db, make_patient, twilio_runtime, twilio_services):
    patient = make_patient()
    row = queue_sms(db, patient)
    dispatcher = _short_timeout_dispatcher(twilio_runtime, twilio_services, twilio_api_base="http://127.0.0.1:9")
    dispatcher.tick()
    db.refresh(row)
    assert (row.status, row.error_code, row.sending_started_at) == ("queued", "connect", None)


# -- status callbacks -----------------------------------------------------------------------------------
def test_status_callbacks_out_of_order_end_in_delivered(db, make_patient, dispatch, twilio_post):
    patient = make_patient()
    row = queue_sms(db, patient)
    dispatch()
    db.refresh(row)
    for state in ("delivered", "sent", "queued", "undelivered"):
        status(twilio_post, row, state)
    db.refresh(row)
    assert row.status == "delivered"
    assert row.delivered_at is not None


def test_a_callback_that_overtakes_the_dispatcher_is_kept(db, make_patient, twilio_post, twilio_services):
    patient = make_patient()
    row = queue_sms(db, patient)
    row.status = "sending"  # the dispatcher has sent it and not yet written down the SID
    db.flush()
    response = twilio_post(f"/webhooks/twilio/status?outbox={row.id}",
                           {"MessageSid": "SM" + "d" * 32, "MessageStatus": "delivered", "To": patient.phone})
    assert response.status_code == 204
    record_result(db, row.id, SendResult("sent", provider_id="SM" + "d" * 32), twilio_services.config)
    db.refresh(row)
    assert (row.status, row.provider_id) == ("delivered", "SM" + "d" * 32)


@pytest.mark.parametrize("params", [{"MessageSid": "SM1", "MessageStatus": "sent"},
                                    {"MessageSid": "SM" + "e" * 32, "MessageStatus": "Sent!"},
                                    {"CallSid": "CA" + "e" * 32},
                                    {"Body": "neither"}])
def test_a_malformed_status_callback_is_400(twilio_post, params):
    assert twilio_post("/webhooks/twilio/status", params).status_code == 400


def test_an_unsigned_status_callback_is_403(db, make_patient, dispatch, twilio_post):
    patient = make_patient()
    row = queue_sms(db, patient)
    dispatch()
    db.refresh(row)
    response = twilio_post("/webhooks/twilio/status", {"MessageSid": row.provider_id, "MessageStatus": "failed"},
                           signature=None)
    assert response.status_code == 403
    db.refresh(row)
    assert row.status == "sent"


# -- 21610: the recipient opted out at Twilio -------------------------------------------------------------
def test_21610_at_send_opts_the_channel_out_and_is_never_retried(db, clock, make_patient, dispatch, twilio_fake,
                                                                  twilio_services):
    patient = make_patient()
    twilio_fake.opt_out(patient.phone)
    followup = invite(db, twilio_services, patient, clock, ["sms", "voice"])
    dispatch()
    sms_row = outbox_of(db, patient)[0]
    assert (sms_row.status, sms_row.error_code) == ("failed", "21610")
    db.refresh(patient)
    assert patient.consent_for("sms").opted_out
    audit = db.scalars(select(AuditEntry).where(AuditEntry.action == "consent.opt_out",
                                                AuditEntry.patient_id == patient.id)).one()
    assert json.loads(audit.details)["reason"] == "provider:21610"
    # The follow-up moves on to the next channel at once; SMS is never tried again.
    due_followups(db, twilio_services)
    db.flush()
    clock.advance(hours=3)
    dispatch()
    db.refresh(followup)
    assert followup.current_channel == "voice"
    assert len(twilio_fake.requests_for("messages.create")) == 1
    assert [call["to"] for call in twilio_fake.calls.values()] == [patient.phone]


def test_21610_in_a_status_callback_opts_the_channel_out(db, clock, make_patient, dispatch, twilio_post,
                                                         twilio_services, twilio_fake):
    patient = make_patient()
    followup = invite(db, twilio_services, patient, clock, ["sms", "voice"])
    dispatch()
    row = outbox_of(db, patient)[0]
    status(twilio_post, row, "undelivered", error_code="21610")
    db.refresh(row)
    db.refresh(patient)
    db.refresh(followup)
    assert (row.status, row.error_code) == ("failed", "21610")
    assert patient.consent_for("sms").opted_out
    assert (followup.status, followup.channel_index) == ("scheduled", 1)
    due_followups(db, twilio_services)
    db.flush()
    dispatch()
    assert len(twilio_fake.calls) == 1
    assert len(twilio_fake.requests_for("messages.create")) == 1


# -- calls that reach no one -------------------------------------------------------------------------------
def test_busy_then_no_answer_retries_then_moves_on_then_escalates(db, clock, make_patient, dispatch, twilio_post,
                                                                  twilio_services, twilio_fake):
    patient = make_patient()
    followup = invite(db, twilio_services, patient, clock, ["voice", "sms"])
    dispatch()
    first = outbox_of(db, patient)[0]
    status(twilio_post, first, "busy", kind="Call")
    db.refresh(followup)
    db.refresh(first)
    assert (first.status, first.error_code) == ("failed", "busy")
    assert (followup.status, followup.channel_index) == ("scheduled", 0)
    assert followup.next_action_at == clock.now() + timedelta(minutes=30)
    clock.advance(minutes=30)
    due_followups(db, twilio_services)
    db.flush()
    dispatch()
    assert len(twilio_fake.calls) == 2
    second = outbox_of(db, patient)[1]
    status(twilio_post, second, "no-answer", kind="Call")
    db.refresh(followup)
    assert followup.channel_index == 1  # two calls were the voice channel's share
    due_followups(db, twilio_services)
    db.flush()
    dispatch()
    assert twilio_fake.bodies_to(patient.phone) == [INVITE]
    clock.advance(hours=followup.answer_window_hours + 1)
    due_followups(db, twilio_services)
    db.flush()
    db.refresh(followup)
    assert followup.status == "unanswered"
    task = db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)).one()
    assert (task.kind, task.priority) == ("followup_unanswered", "high")


def test_a_late_report_about_an_older_call_does_not_disturb_the_current_one(db, clock, make_patient, dispatch,
                                                                           twilio_post, twilio_services):
    patient = make_patient()
    followup = invite(db, twilio_services, patient, clock, ["voice", "sms"], max_attempts_per_channel=3)
    dispatch()
    first = outbox_of(db, patient)[0]
    status(twilio_post, first, "busy", kind="Call")
    clock.advance(minutes=30)
    due_followups(db, twilio_services)
    db.flush()
    dispatch()
    status(twilio_post, first, "no-answer", kind="Call")  # Twilio repeats itself about the first call
    db.refresh(followup)
    assert (followup.status, followup.attempts) == ("invited", 2)


# -- quiet hours and the channel order ----------------------------------------------------------------------
@pytest.mark.parametrize(("zone", "waits_until"), [
    ("Asia/Shanghai", datetime(2026, 11, 30, 0, 0, tzinfo=UTC)),  # 22:00 there: wait for 08:00
    ("America/New_York", None),  # 09:00 there: go now
])
def test_quiet_hours_hold_an_invitation_until_they_end_in_the_patients_zone(db, clock, make_patient, dispatch,
                                                                           twilio_services, twilio_fake, zone,
                                                                           waits_until):
    clock.set(datetime(2026, 11, 29, 14, 0, tzinfo=UTC))
    patient = make_patient()
    patient.timezone = zone
    db.flush()
    followup = invite(db, twilio_services, patient, clock, ["sms"])
    dispatch()
    db.refresh(followup)
    if waits_until is None:
        assert twilio_fake.bodies_to(patient.phone) == [INVITE]
        return
    assert twilio_fake.sent_messages() == []
    assert (followup.status, followup.next_action_at) == ("scheduled", waits_until)
    clock.set(waits_until - timedelta(minutes=1))
    due_followups(db, twilio_services)
    db.flush()
    dispatch()
    assert twilio_fake.sent_messages() == []
    clock.set(waits_until)
    due_followups(db, twilio_services)
    db.flush()
    dispatch()
    assert twilio_fake.bodies_to(patient.phone) == [INVITE]


@pytest.fixture
def all_channels_runtime(settings, twilio_fake, wechat_fake, database, key_ring, clock) -> Runtime:
    """WeChat, SMS and voice all live (WeChat against its own fake)."""
    live = twilio_settings_for(settings, twilio_fake, channels=("wechat", "sms", "voice")).with_overrides(
        wechat_token="token", wechat_appid=wechat_fake.appid, wechat_secret=wechat_fake.secret,
        wechat_api_base=wechat_fake.base_url)
    return Runtime(settings=live, key_ring=key_ring, db=database, clock=clock)


@pytest.mark.parametrize(("openid", "opted_out", "expected"), [
    (None, ["sms"], "voice"),  # WeChat unbound, SMS opted out: the phone rings
    ("oFallbackOpenId0001", ["wechat"], "sms"),  # WeChat bound but opted out: a text
])
def test_the_fallback_order_skips_unbound_and_opted_out_channels(db, clock, make_patient, all_channels_runtime,
                                                                 twilio_fake, wechat_fake, openid, opted_out,
                                                                 expected):
    bot = bot_for(all_channels_runtime)
    assert set(bot.services.adapters) == {"wechat", "sms", "voice"}
    patient = make_patient(wechat_openid=openid)
    for channel in opted_out:
        patient.consent_for(channel).opted_out = True
    db.flush()
    followup = invite(db, bot.services, patient, clock, ["wechat", "sms", "voice"])
    bot.dispatcher.tick()
    db.refresh(followup)
    assert followup.current_channel == expected
    assert len(twilio_fake.calls) == (1 if expected == "voice" else 0)
    assert twilio_fake.bodies_to(patient.phone) == ([INVITE] if expected == "sms" else [])
    assert db.scalar(select(func.count()).select_from(FollowUp).where(FollowUp.patient_id == patient.id)) == 1
