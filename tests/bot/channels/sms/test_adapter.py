"""bot/channels/sms/adapter.py: texts through Twilio's ``messages.create``, and reconciling an attempt whose outcome
was unknown by looking the message up instead of sending it again; counted at the fake Twilio API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.outbox.queue import enqueue
from tests.bot.channels.conftest import outgoing
from tests.webhooks.conftest import TWILIO_FROM

NUMBER = "+8613800000001"


@pytest.fixture
def sms(twilio_services):
    return twilio_services.adapters["sms"]


def test_a_text_goes_out_from_our_number_with_our_status_callback(sms, twilio_fake, settings):
    message = outgoing("sms", NUMBER, payload={"text": "您好"})
    result = sms.send(message)
    [sent] = twilio_fake.sent_messages()
    assert (sent["to"], sent["from"], sent["body"]) == (NUMBER, TWILIO_FROM, "您好")
    assert sent["status_callback"] == f"{settings.public_url}/webhooks/twilio/status?outbox={message.id}"
    assert (result.outcome, result.provider_id) == ("sent", sent["sid"])


@pytest.mark.parametrize(("address", "payload"), [(NUMBER, {"text": ""}), ("", {"text": "您好"})])
def test_no_text_or_no_number_fails_and_nothing_reaches_twilio(sms, twilio_fake, address, payload):
    result = sms.send(outgoing("sms", address, payload=payload))
    assert (result.outcome, result.error_code) == ("failed", "empty")
    assert twilio_fake.requests == []


def test_a_number_that_replied_stop_at_twilio_opts_out(sms, twilio_fake):
    twilio_fake.opt_out(NUMBER)
    result = sms.send(outgoing("sms", NUMBER))
    assert (result.outcome, result.error_code, result.opted_out) == ("failed", "21610", True)


@pytest.mark.parametrize(("status", "code", "outcome"), [(500, None, "retry"), (429, 20429, "retry"),
                                                        (400, 21614, "failed")])
def test_twilios_refusals_map_to_the_dispatchers_outcomes(sms, twilio_fake, status, code, outcome):
    twilio_fake.fail_next("messages.create", status=status, code=code)
    assert sms.send(outgoing("sms", NUMBER)).outcome == outcome


def test_a_message_twilio_took_is_found_again_by_its_body(sms, twilio_fake, clock):
    started = clock.now()
    sms.send(outgoing("sms", NUMBER, payload={"text": "另一条"}))
    sms.send(outgoing("sms", NUMBER, payload={"text": "这一条"}))
    result = sms.reconcile(outgoing("sms", NUMBER, payload={"text": "这一条"}, sending_started_at=started))
    (ours,) = [m for m in twilio_fake.sent_messages() if m["body"] == "这一条"]
    assert (result.outcome, result.provider_id) == ("sent", ours["sid"])
    assert len(twilio_fake.requests_for("messages.create")) == 2  # looked up, not sent again


def test_an_identical_message_another_row_owns_is_not_ours(db, make_patient, sms, twilio_fake, clock):
    started = clock.now()
    earlier = sms.send(outgoing("sms", NUMBER, payload={"text": "您好"}))
    row = enqueue(db, idempotency_key="earlier-invitation", channel="sms", kind="text", purpose="reminder",
                  address=NUMBER, payload={"text": "您好"}, patient=make_patient())
    row.provider_id = earlier.provider_id
    db.flush()
    result = sms.reconcile(outgoing("sms", NUMBER, payload={"text": "您好"}, sending_started_at=started))
    assert (result.outcome, result.error_code) == ("retry", "not_found")  # it never reached Twilio: send it


def test_a_message_sent_before_the_attempt_started_is_not_ours(sms, twilio_fake, clock):
    sms.send(outgoing("sms", NUMBER, payload={"text": "您好"}))
    clock.advance(minutes=30)
    result = sms.reconcile(outgoing("sms", NUMBER, payload={"text": "您好"}, sending_started_at=clock.now()))
    assert result.outcome == "retry"


def test_a_message_just_within_the_clock_skew_is_ours(sms, twilio_fake, clock):
    sms.send(outgoing("sms", NUMBER, payload={"text": "您好"}))
    started = clock.now() + timedelta(minutes=9)  # our clock is ahead of Twilio's by nine minutes
    assert sms.reconcile(outgoing("sms", NUMBER, payload={"text": "您好"}, sending_started_at=started)).outcome \
        == "sent"


def test_a_look_up_that_fails_says_nothing_and_asks_again_later(sms, twilio_fake, clock):
    twilio_fake.fail_next("messages.list", status=500)
    result = sms.reconcile(outgoing("sms", NUMBER, sending_started_at=clock.now()))
    assert result.outcome == "unknown"
    assert twilio_fake.requests_for("messages.create") == []
