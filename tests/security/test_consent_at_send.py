"""A patient who says stop is not contacted again: consent and opt-outs are checked just before each send.

The outbox row was queued while the patient still agreed, and a worker had already claimed it (it
then died, or was only slow) when the patient opted out over the channel itself: STOP by SMS,
unsubscribing on WeChat, STOP said on a call. The next worker that takes the row must not hand it to
the provider: the fake provider receives nothing and the row ends ``cancelled`` with a reason code.
"""

from __future__ import annotations

import threading
import uuid
from datetime import date

from defusedxml import ElementTree
from sqlalchemy import select

from bot.consent import opt_out
from bot.followups import due_followups
from bot.models import OutboxMessage
from bot.outbox.dispatcher import Dispatcher
from bot.outbox.queue import claim
from care.followups import schedule_followup
from care.models import Patient
from care.patients import EnrolmentRequest, enroll
from careloop.bot_runtime import BotRuntime, bot_for
from careloop.runtime import Runtime
from security.fields import clock_of
from tests.conftest import TEST_ACTOR
from tests.fakes.twilio_server import FakeTwilio
from tests.fakes.wechat_server import SEND_PATHS
from tests.webhooks.conftest import TWILIO_FROM, twilio_settings_for

GONE = "worker-that-died"


def invite(db, services, patient, channel):
    """A follow-up due now over ``channel``: its invitation is queued in the outbox; returns the row."""
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock_of(db).now(), channel_order=[channel],
                                 actor=TEST_ACTOR)
    db.flush()
    assert due_followups(db, services) == 1
    db.flush()
    return db.scalars(select(OutboxMessage).where(OutboxMessage.followup_id == followup.id)).one()


def claimed_by_a_worker_that_died(db, services, channel):
    """A worker takes the due rows of ``channel`` (sending, leased to it) and stops before any provider call."""
    rows = claim(db, worker_id=GONE, limit=10, config=services.config, channels=[channel])
    db.flush()
    assert rows
    return rows


def cancelled_for(db, row, reason):
    db.expire_all()
    row = db.get(OutboxMessage, row.id)
    assert (row.status, row.error_code) == ("cancelled", reason)
    assert (row.attempts, row.sending_started_at) == (0, None)  # never handed to a provider


def test_sms_stop_after_the_claim_stops_the_message(db, make_patient, twilio_services, twilio_sms, twilio_fake,
                                                    dispatch):
    patient = make_patient()
    row = invite(db, twilio_services, patient, "sms")
    claimed_by_a_worker_that_died(db, twilio_services, "sms")
    twilio_sms(patient.phone, "STOP")
    dispatch()
    assert twilio_fake.bodies_to(patient.phone) == []
    assert twilio_fake.requests_for("messages.create") == []
    cancelled_for(db, row, "opted_out")


def test_wechat_unsubscribe_after_the_claim_stops_the_message(db, wechat_patient, wechat_services, wechat_bot,
                                                              wechat_post, wechat_peer, wechat_fake):
    patient = wechat_patient()
    row = invite(db, wechat_services, patient, "wechat")
    claimed_by_a_worker_that_died(db, wechat_services, "wechat")
    assert wechat_post(wechat_peer.event_xml(patient.wechat_openid, "unsubscribe")).status_code == 200
    db.expire_all()
    assert wechat_bot.dispatcher.tick() == 1
    assert [request for request in wechat_fake.requests if request.path in SEND_PATHS] == []
    cancelled_for(db, row, "opted_out")


def test_stop_said_on_a_call_stops_the_call_already_claimed(db, make_patient, twilio_services, twilio_post,
                                                            twilio_fake, dispatch):
    patient = make_patient()
    row = invite(db, twilio_services, patient, "voice")
    claimed_by_a_worker_that_died(db, twilio_services, "voice")
    # The patient rings the clinic back before our call goes out, and says 退订 (STOP) at the first question.
    call = {"CallSid": "CA" + uuid.uuid4().hex, "From": patient.phone, "To": TWILIO_FROM, "Direction": "inbound",
            "CallStatus": "in-progress"}
    answered = ElementTree.fromstring(twilio_post("/webhooks/twilio/voice", call).data)
    action = answered.find("Gather").get("action").removeprefix("https://clinic.example.test")
    said = ElementTree.fromstring(twilio_post(action, {**call, "SpeechResult": "退订", "Confidence": "0.9"}).data)
    assert said.find("Hangup") is not None
    db.expire_all()
    assert db.get(Patient, patient.id).consent_for("voice").opted_out
    dispatch()
    assert twilio_fake.placed_calls() == []
    cancelled_for(db, row, "opted_out")


def test_two_workers_racing_for_rows_never_send_one_that_was_opted_out(live_runtime: Runtime, twilio_fake: FakeTwilio):
    """Several workers on one database (PostgreSQL: SKIP LOCKED claims): rows claimed before the opt-out
    are checked by whichever worker takes them; each consented row goes out once, no opted-out one at all."""
    runtime = Runtime(settings=twilio_settings_for(live_runtime.settings, twilio_fake), key_ring=live_runtime.key_ring,
                      db=live_runtime.db, clock=live_runtime.clock)
    bot: BotRuntime = bot_for(runtime)
    now = runtime.clock.now()
    with runtime.db.unit_of_work() as session:
        patients = [enroll(session, EnrolmentRequest(card_no=f"R{n:06d}", name=f"测试{n}", gender="F",
                                                     birth_date=date(1958, 3, 1), phone=f"+8613900{n:06d}"),
                           actor=TEST_ACTOR).patient for n in range(12)]
        session.flush()
        for patient in patients:
            schedule_followup(session, patient, flow_id="phq9", due_at=now, channel_order=["sms"], actor=TEST_ACTOR)
        session.flush()
        assert due_followups(session, bot.services) == len(patients)
        ids = [patient.id for patient in patients]
        phones = {patient.id: patient.phone for patient in patients}
    with runtime.db.unit_of_work() as session:
        assert len(claim(session, worker_id=GONE, limit=100, config=bot.services.config, channels=["sms"])) == 12
    stopped, kept = ids[::2], ids[1::2]
    with runtime.db.unit_of_work() as session:
        for patient_id in stopped:
            opt_out(session, session.get(Patient, patient_id), "sms", actor=TEST_ACTOR, reason="keyword:stop")
    workers = [Dispatcher(runtime.db.unit_of_work, bot.dispatcher.adapters, bot.services.config,
                          worker_id=f"racer-{n}") for n in range(2)]
    barrier = threading.Barrier(len(workers))

    def race(worker: Dispatcher) -> None:
        barrier.wait()
        while worker.tick(limit=3):
            pass

    threads = [threading.Thread(target=race, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    sent_to = sorted(message["to"] for message in twilio_fake.sent_messages())
    assert sent_to == sorted(phones[patient_id] for patient_id in kept)  # each once, none of the stopped
    with runtime.db.unit_of_work() as session:
        rows = {row.patient_id: row for row in session.scalars(select(OutboxMessage))}
        assert {(rows[patient_id].status, rows[patient_id].error_code) for patient_id in stopped} == {
            ("cancelled", "opted_out")}
        assert {rows[patient_id].status for patient_id in kept} == {"sent"}
