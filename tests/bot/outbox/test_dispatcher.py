"""The outbox's delivery rules: claims, leases, retries, reconciling, each purpose's guarantee (bot/outbox)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.channels.base import SendResult
from bot.followups import due_followups
from bot.models import ConversationMessage, OutboxMessage
from bot.outbox.dispatcher import Dispatcher, RateLimiter
from bot.outbox.queue import (
    DELIVERY_BY_PURPOSE,
    Delivery,
    advance_delivery,
    beat,
    claim,
    delivery_of,
    enqueue,
    mark_attempt_started,
    record_result,
    retire,
)
from care.followups import schedule_followup
from tests.bot.scripted import NoLookupProvider, at_shanghai, configured, queue_sms
from tests.conftest import TEST_ACTOR


def test_a_sent_message_is_recorded_with_the_provider_id(db, make_patient, dispatcher, provider):
    patient = make_patient()
    row = queue_sms(db, patient)
    assert dispatcher.tick() == 1
    assert row.status == "sent"
    assert row.provider_id == "SM0"
    assert provider.delivered == ["m1"]
    assert dispatcher.tick() == 0


def test_a_transient_failure_is_retried_later_with_backoff(db, make_patient, dispatcher, provider, clock):
    patient = make_patient()
    row = queue_sms(db, patient)
    provider.script = [SendResult("retry", error_code="503")]
    dispatcher.tick()
    assert row.status == "queued"
    assert row.attempts == 1
    assert row.next_attempt_at > clock.now() + timedelta(seconds=20)
    assert dispatcher.tick() == 0
    clock.advance(seconds=60)
    dispatcher.tick()
    assert row.status == "sent"


def test_a_permanent_opt_out_at_the_provider_stops_the_channel(db, make_patient, dispatcher, provider):
    patient = make_patient()
    row = queue_sms(db, patient)
    queue_sms(db, patient, key="m2")
    provider.script = [SendResult("failed", error_code="21610", opted_out=True)]
    dispatcher.tick(limit=1)
    assert row.status == "failed"
    consent = patient.consent_for("sms")
    assert consent is not None
    assert consent.opted_out
    second = db.scalars(select(OutboxMessage).where(OutboxMessage.idempotency_key == "m2")).one()
    assert second.status == "cancelled"
    assert provider.delivered == []


def test_an_unknown_outcome_is_reconciled_not_resent(db, make_patient, dispatcher, provider, clock):
    patient = make_patient()
    row = queue_sms(db, patient)
    provider.script = [SendResult("unknown", error="read timeout")]
    dispatcher.tick()
    assert row.status == "sending"
    clock.advance(seconds=61)
    dispatcher.tick()
    assert provider.reconciled == ["m1"]
    assert provider.delivered == ["m1"]  # once
    assert row.status == "sent"


def test_a_row_left_sending_by_a_dead_worker_is_sent_if_it_never_left(db, make_patient, dispatcher, provider,
                                                                        clock):
    patient = make_patient()
    row = queue_sms(db, patient)
    beat(db, "dead")
    claim(db, worker_id="dead", limit=10, config=configured(outbox_lease_seconds=60))
    row.sending_started_at = clock.now()  # it died after marking the attempt, before the provider call
    assert dispatcher.tick() == 0  # leased to a worker that still looks alive
    clock.advance(seconds=7)  # its heartbeat is stale now, but the attempt is younger than a live call can be
    assert dispatcher.tick() == 0
    clock.advance(seconds=4)  # well before the 60 s lease: the provider can be asked
    dispatcher.tick()
    assert provider.reconciled == ["m1"]
    assert provider.delivered == ["m1"]
    assert row.status == "sent"


def test_rows_a_dead_worker_claimed_but_never_attempted_go_to_the_next_worker_at_once(db, make_patient, dispatcher,
                                                                                     provider, clock):
    patient = make_patient()
    rows = [queue_sms(db, patient, key=f"m{n}", text=f"hello {n}") for n in range(3)]
    beat(db, "dead")
    assert len(claim(db, worker_id="dead", limit=10, config=configured(outbox_lease_seconds=120))) == 3
    clock.advance(seconds=5)
    assert dispatcher.tick() == 0  # its last beat is 5 s old: alive, the rows are its own
    clock.advance(seconds=2)  # 7 s of silence (dead after 6 s), 113 s before the lease would run out
    assert dispatcher.tick() == 3
    assert {row.status for row in rows} == {"sent"}
    assert sorted(provider.delivered) == ["m0", "m1", "m2"]
    assert provider.reconciled == []  # never attempted: nothing to ask the provider about


def test_a_beating_worker_keeps_its_rows(db, make_patient, dispatcher, clock):
    patient = make_patient()
    row = queue_sms(db, patient)
    claim(db, worker_id="busy", limit=10, config=configured(outbox_lease_seconds=120))
    for _ in range(10):
        beat(db, "busy")
        clock.advance(seconds=2)
        assert dispatcher.tick() == 0
    assert row.leased_by == "busy"
    retire(db, "busy")  # it stops cleanly: whatever it still held is free at once
    assert dispatcher.tick() == 1


def test_a_row_taken_from_a_worker_believed_dead_is_not_sent_by_it(db, make_patient, dispatcher, provider, clock):
    patient = make_patient()
    row = queue_sms(db, patient)
    slow = claim(db, worker_id="slow", limit=10, config=configured())[0]
    clock.advance(seconds=7)
    assert dispatcher.tick() == 1  # "slow" never beat: dead to the others, its row is sent by w1
    assert not mark_attempt_started(db, slow.id, "slow", configured())  # the slow worker must not send it
    assert record_result(db, slow.id, SendResult("retry"), configured(), worker_id="slow") is None
    assert row.status == "sent"
    assert provider.delivered == ["m1"]


# -- WeChat: the provider cannot be asked, the purpose's guarantee decides --------------------------------------
@pytest.fixture
def wechat_like() -> NoLookupProvider:
    return NoLookupProvider(name="wechat", looks_up=False)


@pytest.fixture
def wechat_dispatcher(db, wechat_like, provider) -> Dispatcher:
    @contextmanager
    def unit_of_work():
        yield db
        db.flush()

    return Dispatcher(unit_of_work, {"wechat": wechat_like, "sms": provider},
                      configured(outbox_lease_seconds=60, retry_base_seconds=30), worker_id="w1",
                      limiter=RateLimiter({}, sleep=lambda _s: None))


def queue_wechat(db, patient, *, key="w1", purpose="reminder", session_id=None, followup_id=None):
    return enqueue(db, idempotency_key=key, channel="wechat", kind="text", purpose=purpose,
                   address=patient.wechat_openid, payload={"text": "您好"}, patient=patient, session_id=session_id,
                   followup_id=followup_id)


def test_each_purpose_has_a_stated_delivery_guarantee():
    assert {purpose for purpose, guarantee in DELIVERY_BY_PURPOSE.items() if guarantee is Delivery.AT_MOST_ONCE} \
        == {"reply", "expiry"}
    for purpose in ("followup_invite", "reminder", "result", "staff_message", "binding_code", "anything_else"):
        assert delivery_of(purpose) is Delivery.AT_LEAST_ONCE


def test_an_unconfirmed_reminder_is_resent_once_after_the_lease(db, make_patient, wechat_dispatcher, wechat_like,
                                                                clock):
    patient = make_patient(wechat_openid="oNoLookup000000000000000001")
    row = queue_wechat(db, patient)
    wechat_like.script = [SendResult("unknown", error="read timeout")]
    wechat_dispatcher.tick()
    assert row.status == "sending"
    clock.advance(seconds=30)
    assert wechat_dispatcher.tick() == 0  # WeChat cannot be asked: the lease runs out first
    clock.advance(seconds=31)
    assert wechat_dispatcher.tick() == 1
    assert wechat_like.delivered == ["w1", "w1"]  # perhaps twice: never lost
    assert (row.status, row.resends) == ("sent", 1)


def test_a_reminder_whose_resend_is_unconfirmed_too_ends_unconfirmed(db, make_patient, wechat_dispatcher,
                                                                     wechat_like, clock):
    patient = make_patient(wechat_openid="oNoLookup000000000000000002")
    row = queue_wechat(db, patient)
    wechat_like.script = [SendResult("unknown"), SendResult("unknown")]
    wechat_dispatcher.tick()
    clock.advance(seconds=61)
    wechat_dispatcher.tick()
    clock.advance(seconds=61)
    wechat_dispatcher.tick()
    assert (row.status, row.error_code, row.resends) == ("unconfirmed", "resent_once", 1)
    assert wechat_like.delivered == ["w1", "w1"]
    clock.advance(hours=1)
    assert wechat_dispatcher.tick() == 0


def test_an_unconfirmed_message_is_not_resent_once_the_patient_has_written(db, make_patient, wechat_dispatcher,
                                                                           wechat_like, clock):
    patient = make_patient(wechat_openid="oNoLookup000000000000000003")
    row = queue_wechat(db, patient)
    wechat_like.script = [SendResult("unknown")]
    wechat_dispatcher.tick()
    clock.advance(seconds=20)
    db.add(ConversationMessage(patient_id=patient.id, channel="wechat", direction="in", text="1",
                               created_at=clock.now()))
    clock.advance(seconds=41)
    wechat_dispatcher.tick()
    assert (row.status, row.error_code, row.resends) == ("unconfirmed", "patient_wrote", 0)
    assert wechat_like.delivered == ["w1"]


def test_an_unconfirmed_reply_is_never_resent(db, make_patient, wechat_dispatcher, wechat_like, clock):
    patient = make_patient(wechat_openid="oNoLookup000000000000000004")
    row = queue_wechat(db, patient, purpose="reply")
    wechat_like.script = [SendResult("unknown")]
    wechat_dispatcher.tick()
    clock.advance(seconds=61)
    wechat_dispatcher.tick()
    assert (row.status, row.error_code) == ("unconfirmed", "at_most_once")
    assert wechat_like.delivered == ["w1"]  # at most once


def test_an_unconfirmed_invitation_never_falls_back_to_the_next_channel(db, make_patient, services, clock,
                                                                        wechat_dispatcher, wechat_like, provider):
    patient = make_patient(wechat_openid="oNoLookup000000000000000005")
    services.adapters.update(wechat=wechat_like, sms=provider)
    at_shanghai(clock, 10)
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), actor=TEST_ACTOR,
                                 channel_order=["wechat", "sms"])
    db.flush()
    due_followups(db, services)
    wechat_like.script = [SendResult("unknown"), SendResult("unknown")]
    wechat_dispatcher.tick()
    for _ in range(2):
        clock.advance(seconds=61)
        wechat_dispatcher.tick()
        due_followups(db, services)
    invitation = db.scalars(select(OutboxMessage).where(OutboxMessage.followup_id == followup.id)).one()
    assert invitation.status == "unconfirmed"
    assert (followup.status, followup.current_channel) == ("invited", "wechat")
    assert provider.delivered == []  # no second invitation by SMS because of it


def test_a_refused_resend_is_a_definite_failure_and_falls_back(db, make_patient, services, clock, wechat_dispatcher,
                                                               wechat_like, provider):
    patient = make_patient(wechat_openid="oNoLookup000000000000000006")
    services.adapters.update(wechat=wechat_like, sms=provider)
    at_shanghai(clock, 10)
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), actor=TEST_ACTOR,
                                 channel_order=["wechat", "sms"])
    db.flush()
    due_followups(db, services)
    wechat_like.script = [SendResult("unknown"), SendResult("failed", error_code="43004", opted_out=True)]
    wechat_dispatcher.tick()
    clock.advance(seconds=61)
    wechat_dispatcher.tick()
    due_followups(db, services)
    assert followup.current_channel == "sms"
    wechat_dispatcher.tick()
    assert len(provider.delivered) == 1


def test_delivery_reports_only_move_forward(db, make_patient, dispatcher, clock):
    patient = make_patient()
    row = queue_sms(db, patient)
    dispatcher.tick()
    advance_delivery(db, "SM0", "delivered", at=clock.now())
    advance_delivery(db, "SM0", "sent", at=clock.now())
    advance_delivery(db, "SM0", "queued", at=clock.now())
    assert row.status == "delivered"
    advance_delivery(db, "SM0", "failed", at=clock.now())
    assert row.status == "delivered"


def test_the_same_idempotency_key_queues_once(db, make_patient):
    patient = make_patient()
    assert queue_sms(db, patient).id == queue_sms(db, patient).id


def test_rate_limiter_spaces_sends():
    waited: list[float] = []
    limiter = RateLimiter({"sms": 1.0}, sleep=waited.append)
    limiter.acquire("sms")
    limiter.acquire("sms")
    assert waited
    assert 0.5 < waited[0] <= 1.0

