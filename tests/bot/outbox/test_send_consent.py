"""Consent decides again at the moment of sending, by the same rule that decided when the message was queued.

A row whose consent was withdrawn (in the consent ledger) or whose channel the patient opted out of
after it was queued ends ``cancelled`` with a reason code, and the provider gets nothing. A message
that exists to obtain consent (the binding code) needs none, but an opt-out stops it too; a decision
about one purpose or channel leaves the others alone.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import select

from bot.channels.base import SendResult
from bot.consent import channel_usable, opt_out, recording_notice_version
from bot.followups import due_followups
from bot.identity import continue_binding
from bot.models import OutboxMessage
from bot.outbox.dispatcher import Dispatcher, RateLimiter
from bot.outbox.queue import claim, enqueue
from care.consents import contact_refusal, record_consent
from care.followups import schedule_followup
from tests.bot.scripted import NoLookupProvider, ScriptedProvider, at_shanghai, configured
from tests.conftest import TEST_ACTOR

OPENID = "oConsentAtSend0000000000001"


@pytest.fixture
def providers() -> dict[str, ScriptedProvider]:
    return {"sms": ScriptedProvider(name="sms"), "voice": ScriptedProvider(name="voice", kind="voice"),
            "wechat": NoLookupProvider(name="wechat", looks_up=False)}


@pytest.fixture
def dispatcher(db, providers) -> Dispatcher:
    @contextmanager
    def unit_of_work():
        yield db
        db.flush()

    return Dispatcher(unit_of_work, dict(providers), configured(outbox_lease_seconds=60, retry_base_seconds=30),
                      worker_id="w1", limiter=RateLimiter({}, sleep=lambda _s: None))


def queue(db, patient, *, channel="sms", purpose="followup_invite", key=None, kind="text"):
    address = patient.wechat_openid if channel == "wechat" else patient.phone
    payload = {"session_id": "s"} if kind == "call" else {"text": "您好"}
    row = enqueue(db, idempotency_key=key or f"{channel}:{purpose}", channel=channel, kind=kind, purpose=purpose,
                  address=address, payload=payload, patient=patient)
    db.flush()
    return row


def decide(db, patient, *, channel="sms", purpose="messages", granted):
    record_consent(db, patient, channel=channel, purpose=purpose, granted=granted, wording_version="staff-note:1",
                   source="staff", actor=TEST_ACTOR)
    db.flush()


def test_consent_withdrawn_after_queueing_cancels_the_message(db, make_patient, dispatcher, providers):
    patient = make_patient()
    row = queue(db, patient)
    decide(db, patient, granted=False)  # the patient told the nurse: no more messages by SMS
    assert dispatcher.tick() == 1
    assert providers["sms"].delivered == []
    assert (row.status, row.error_code, row.attempts) == ("cancelled", "consent_withdrawn", 0)


def test_an_opt_out_after_the_claim_cancels_the_message(db, make_patient, dispatcher, providers, clock):
    patient = make_patient()
    row = queue(db, patient)
    claim(db, worker_id="stalled", limit=10, config=configured(), channels=["sms"])  # claimed, then the worker died
    opt_out(db, patient, "sms", actor=TEST_ACTOR, reason="keyword:stop")
    assert row.status == "sending"  # an opt-out cancels what is still queued; this one was taken already
    dispatcher.tick()
    assert providers["sms"].delivered == []
    assert (row.status, row.error_code) == ("cancelled", "opted_out")


def test_an_opt_out_cancels_what_is_still_queued_with_the_same_reason(db, make_patient, dispatcher, providers):
    patient = make_patient()
    row = queue(db, patient)
    opt_out(db, patient, "sms", actor=TEST_ACTOR, reason="keyword:stop")
    assert dispatcher.tick() == 0
    db.refresh(row)  # written by one UPDATE of every queued row
    assert (row.status, row.error_code) == ("cancelled", "opted_out")
    assert providers["sms"].delivered == []


def test_consent_given_again_lets_the_message_go(db, make_patient, dispatcher, providers):
    patient = make_patient()
    row = queue(db, patient)
    decide(db, patient, granted=False)
    decide(db, patient, granted=True)
    dispatcher.tick()
    assert providers["sms"].delivered == ["sms:followup_invite"]
    assert row.status == "sent"


def test_a_binding_code_still_goes_where_messages_were_withdrawn(db, make_patient, services, dispatcher, providers):
    patient = make_patient(card_no="B0000001")
    decide(db, patient, granted=False)
    continue_binding(db, services.config, OPENID, "B0000001", actor=TEST_ACTOR)  # queued by the same rule ...
    db.flush()
    [row] = db.scalars(select(OutboxMessage).where(OutboxMessage.purpose == "binding_code")).all()
    dispatcher.tick()  # ... and sent by it: the code is how consent is asked for in the first place
    assert row.status == "sent"
    assert providers["sms"].delivered == [row.idempotency_key]


def test_a_binding_code_to_a_number_opted_out_after_it_was_queued_is_cancelled(db, make_patient, services,
                                                                                dispatcher, providers):
    patient = make_patient(card_no="B0000002")
    continue_binding(db, services.config, OPENID, "B0000002", actor=TEST_ACTOR)
    db.flush()
    [row] = db.scalars(select(OutboxMessage).where(OutboxMessage.purpose == "binding_code")).all()
    claim(db, worker_id="stalled", limit=10, config=configured(), channels=["sms"])
    opt_out(db, patient, "sms", actor=TEST_ACTOR, reason="keyword:stop")
    dispatcher.tick()
    assert providers["sms"].delivered == []
    assert (row.status, row.error_code) == ("cancelled", "opted_out")


def test_withdrawn_recording_consent_does_not_cancel_the_call(db, make_patient, dispatcher, providers):
    patient = make_patient()
    record_consent(db, patient, channel="voice", purpose="call_recording", granted=True,
                   wording_version=recording_notice_version(), source="staff", actor=TEST_ACTOR)
    row = queue(db, patient, channel="voice", kind="call")
    decide(db, patient, channel="voice", purpose="call_recording", granted=False)
    dispatcher.tick()
    assert providers["voice"].delivered == ["voice:followup_invite"]  # the call goes, unrecorded
    assert row.status == "sent"


def test_withdrawing_messages_on_one_channel_leaves_the_others(db, make_patient, dispatcher, providers):
    patient = make_patient(wechat_openid=OPENID)
    by_sms = queue(db, patient, channel="sms")
    by_wechat = queue(db, patient, channel="wechat")
    by_call = queue(db, patient, channel="voice", kind="call")
    decide(db, patient, channel="sms", granted=False)
    dispatcher.tick()
    assert (by_sms.status, by_sms.error_code) == ("cancelled", "consent_withdrawn")
    assert (by_wechat.status, by_call.status) == ("sent", "sent")


def test_a_reply_to_the_patients_own_message_needs_no_messages_consent_but_stops_at_an_opt_out(
        db, make_patient, dispatcher, providers):
    patient = make_patient(wechat_openid=OPENID)
    reply = queue(db, patient, channel="wechat", purpose="reply", key="r1")
    decide(db, patient, channel="wechat", granted=False)
    dispatcher.tick()
    assert reply.status == "sent"  # they wrote to us: the answer is theirs
    later = queue(db, patient, channel="wechat", purpose="reply", key="r2")
    claim(db, worker_id="stalled", limit=10, config=configured(), channels=["wechat"])
    opt_out(db, patient, "wechat", actor=TEST_ACTOR, reason="wechat_unsubscribe")
    dispatcher.tick()
    assert (later.status, later.error_code) == ("cancelled", "opted_out")


def test_an_unknown_send_is_not_resent_after_an_opt_out(db, make_patient, dispatcher, providers, clock):
    patient = make_patient(wechat_openid=OPENID)
    row = queue(db, patient, channel="wechat", purpose="reminder")
    providers["wechat"].script = [SendResult("unknown", error="read timeout")]
    dispatcher.tick()
    opt_out(db, patient, "wechat", actor=TEST_ACTOR, reason="wechat_unsubscribe")
    clock.advance(seconds=61)  # the lease runs out: a reminder would be resent once
    dispatcher.tick()
    assert providers["wechat"].delivered == ["wechat:reminder"]  # the first attempt only
    assert (row.status, row.error_code, row.resends) == ("unconfirmed", "opted_out", 0)


def test_the_rule_at_enqueue_is_the_rule_at_send(db, make_patient, services, clock):
    patient = make_patient()
    decide(db, patient, channel="console", granted=False)
    assert contact_refusal(db, patient, "console", "followup_invite") == "consent_withdrawn"
    assert not channel_usable(db, patient, "console", "followup_invite")
    assert contact_refusal(db, patient, "console", "binding_code") is None
    at_shanghai(clock, 10)
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), actor=TEST_ACTOR,
                                 channel_order=["console"])
    db.flush()
    due_followups(db, services)
    assert followup.status == "unanswered"  # the one channel was passed over: nothing was queued
    assert db.scalars(select(OutboxMessage).where(OutboxMessage.followup_id == followup.id)).all() == []
