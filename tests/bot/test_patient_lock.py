"""Work on one patient from different doors at once: a call's callbacks, timers and messages.

Each test runs two transactions on a database of its own: the first holds the patient's lock,
uncommitted, while the second starts; then the first commits. On PostgreSQL the second decides
by what the first committed, or steps aside; SQLite's single writer serialises them whole.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.calls import CallEvent, call_answered, call_input, call_status
from bot.consent import recording_notice_version
from bot.conversations import BotServices, invite, lock_patient
from bot.followups import due_followups, invitation_failed
from bot.messages import InboundMessage, Reply
from bot.models import ConversationSession, SessionStatus
from bot.outbox.queue import enqueue
from bot.router import handle_inbound
from bot.timers import due_timers
from care.consents import record_consent
from care.followups import schedule_followup
from care.models import FlowResult, FollowUp, FollowUpStatus, Patient
from care.patients import EnrolmentRequest, enroll
from careloop.bot_runtime import bot_for
from careloop.runtime import Runtime
from tests.bot.conftest import while_held
from tests.conftest import TEST_ACTOR

CALL_SID = "CA0000000000000000000000000000lock"


def _enrol(runtime: Runtime) -> Patient:
    with runtime.db.unit_of_work() as session:
        patient = enroll(session, EnrolmentRequest(card_no="C0000077", name="锁测试", gender="F",
                                                   birth_date=date(1955, 4, 9), phone="+8613900000077",
                                                   language="zh"), actor=TEST_ACTOR).patient
        record_consent(session, patient, channel="voice", purpose="call_recording", granted=True,
                       wording_version=recording_notice_version(), source="staff", actor=TEST_ACTOR)
    return patient


def _results(runtime: Runtime, patient: Patient) -> dict[str, float | None]:
    with runtime.db.unit_of_work() as session:
        return {row.name: row.value for row in session.scalars(select(FlowResult)
                                                               .where(FlowResult.patient_id == patient.id))}


def _conversation(runtime: Runtime, patient: Patient) -> tuple[str, str | None]:
    with runtime.db.unit_of_work() as session:
        row = session.scalars(select(ConversationSession).where(ConversationSession.patient_id == patient.id)).one()
        return row.status, row.end_status


@dataclass
class Call:
    patient: Patient
    conversation_id: object
    outbox_id: object

    def event(self) -> CallEvent:
        return CallEvent(call_sid=CALL_SID, session_id=self.conversation_id,  # type: ignore[arg-type]
                         patient_number=self.patient.phone or "", inbound=False, answered_by="human")


def _answered_follow_up_call(runtime: Runtime, services: BotServices) -> Call:
    """A follow-up's call, placed and answered: PHQ-9's first question asked by voice."""
    patient = _enrol(runtime)
    with runtime.db.unit_of_work() as session:
        patient = session.get(Patient, patient.id)
        followup = schedule_followup(session, patient, flow_id="phq9", due_at=runtime.clock.now(),
                                     channel_order=["voice"], actor=TEST_ACTOR)
        session.flush()
        conversation = invite(session, services, patient, "phq9", channel="voice", followup=followup)
        session.flush()
        followup.session_id, followup.status = conversation.id, FollowUpStatus.INVITED.value
        row = enqueue(session, idempotency_key=f"call:{followup.id}", channel="voice", kind="call",
                      purpose="invitation", address=patient.phone or "", payload={}, patient=patient,
                      session_id=conversation.id, followup_id=followup.id)
        row.provider_id = CALL_SID  # what the dispatcher writes down when Twilio takes the call
        session.flush()
        call = Call(patient, conversation.id, row.id)
    with runtime.db.unit_of_work() as session:
        call_answered(session, services, call.event())
    assert _conversation(runtime, patient) == (SessionStatus.WAITING.value, None)
    return call


def test_a_call_that_ended_while_its_answer_waited_for_the_patient_is_not_answered(live_runtime: Runtime):
    services = bot_for(live_runtime).services
    call = _answered_follow_up_call(live_runtime, services)
    replies: list[Reply] = []

    def answer_the_first_question() -> None:
        with live_runtime.db.unit_of_work() as session:
            replies.append(call_input(session, services, call.event(), step=1, digits="2"))

    def report_the_call_completed(first: Session) -> None:  # the patient hung up
        call_status(first, call_sid=CALL_SID, status="completed", answered_by=None, outbox_id=call.outbox_id)  # type: ignore[arg-type]
        first.flush()

    # Twilio reports the call completed while the keypad answer the patient gave just before arrives.
    while_held(live_runtime, report_the_call_completed, answer_the_first_question)
    # The answer was read against the conversation as the status left it: ended, nothing saved,
    # the caller hears goodbye instead of the next question.
    assert _conversation(live_runtime, call.patient) == (SessionStatus.ENDED.value, "no_input")
    assert _results(live_runtime, call.patient) == {}
    assert replies[0].voice is not None
    assert "（2/9）" not in str(replies[0].voice)


def _assert_steps_aside_for_a_busy_patient(runtime: Runtime, patient: Patient, job: Callable[[Session], int],
                                           write: Callable[[Session], None]) -> None:
    """Run ``job`` in a unit of work of its own while a message's transaction holds the patient's lock
    and has not yet written (then writes with ``write`` and commits); then run ``job`` once more.

    PostgreSQL: the job finishes at once, handling nothing, and handles the item at the next run.
    SQLite: its single writer runs the job first and whole, and the next run finds nothing due.
    """
    runs: list[int] = []

    def tick() -> None:
        with runtime.db.unit_of_work() as session:
            runs.append(job(session))

    first = runtime.db.sessions()
    try:
        lock_patient(first, first.get(Patient, patient.id))  # type: ignore[arg-type]
        worker = threading.Thread(target=tick)
        worker.start()
        worker.join(timeout=10 if runtime.db.dialect == "postgresql" else 1)  # SQLite: it waits for the writer
        finished_meanwhile = not worker.is_alive()
        # With the job waiting for the patient while holding rows this write needs, this would deadlock.
        write(first)
        first.commit()
    finally:
        first.close()
    worker.join(timeout=30)
    assert not worker.is_alive()
    tick()
    if runtime.db.dialect == "postgresql":
        assert finished_meanwhile, "the job waited for the patient's lock"
        assert runs == [0, 1]  # stepped aside, then handled at the next run
    else:
        assert runs == [1, 0]


def test_a_due_reminder_steps_aside_for_a_patient_whose_message_is_being_handled(live_runtime: Runtime):
    services = bot_for(live_runtime).services
    clock = live_runtime.clock
    patient = _enrol(live_runtime)
    with live_runtime.db.unit_of_work() as session:
        handle_inbound(session, services, InboundMessage(channel="console", provider_key="lock:start",
                                                         sender=patient.card_no or "", kind="text", text="问卷",
                                                         received_at=clock.now()))
    clock.advance(hours=25)  # the reminder is due

    def write_the_conversation(session: Session) -> None:
        conversation = session.scalars(select(ConversationSession)
                                       .where(ConversationSession.patient_id == patient.id)).one()
        conversation.channel = "console"

    _assert_steps_aside_for_a_busy_patient(live_runtime, patient, lambda session: due_timers(session, services),
                                           write_the_conversation)


def test_a_due_follow_up_steps_aside_for_a_patient_whose_message_is_being_handled(live_runtime: Runtime):
    services = bot_for(live_runtime).services
    clock = live_runtime.clock
    patient = _enrol(live_runtime)
    with live_runtime.db.unit_of_work() as session:
        followup = schedule_followup(session, session.get(Patient, patient.id), flow_id="phq9", due_at=clock.now(),
                                     channel_order=["console"], actor=TEST_ACTOR)
        session.flush()
        followup_id = followup.id

    def write_the_follow_up(session: Session) -> None:  # as a reply to an invitation moves it on
        session.execute(update(FollowUp).where(FollowUp.id == followup_id).values(attempts=FollowUp.attempts))

    _assert_steps_aside_for_a_busy_patient(live_runtime, patient, lambda session: due_followups(session, services),
                                           write_the_follow_up)
    with live_runtime.db.unit_of_work() as session:
        assert session.get(FollowUp, followup_id).status == FollowUpStatus.INVITED.value  # type: ignore[union-attr]


def test_an_invitation_reported_failed_while_the_patients_reply_to_it_is_handled_stays_answered(
        live_runtime: Runtime):
    services = bot_for(live_runtime).services
    clock = live_runtime.clock
    patient = _enrol(live_runtime)
    with live_runtime.db.unit_of_work() as session:
        invited = session.get(Patient, patient.id)
        followup = schedule_followup(session, invited, flow_id="phq9", due_at=clock.now(),
                                     channel_order=["console", "sms"], actor=TEST_ACTOR)
        session.flush()
        conversation = invite(session, services, invited, "phq9", channel="console", followup=followup)
        session.flush()
        followup.session_id, followup.status = conversation.id, FollowUpStatus.INVITED.value
        followup_id, conversation_id = followup.id, conversation.id
    told: list[bool] = []

    def report_the_invitation_failed() -> None:  # as a late delivery report or the dispatcher would
        with live_runtime.db.unit_of_work() as session:
            told.append(invitation_failed(session, followup_id, retryable=True, invitation=conversation_id))

    def reply_to_the_invitation(first: Session) -> Reply:  # the flow begins ...
        return handle_inbound(first, services, InboundMessage(
            channel="console", provider_key="lock:reply", sender=patient.card_no or "", kind="text", text="好",
            received_at=clock.now()))

    # ... while a report that the invitation failed comes in.
    reply = while_held(live_runtime, reply_to_the_invitation, report_the_invitation_failed)
    assert "（1/9）" in "".join(reply.texts)
    assert told == [False]  # the follow-up had moved on: nothing to retry
    assert _conversation(live_runtime, patient) == (SessionStatus.WAITING.value, None)
    with live_runtime.db.unit_of_work() as session:
        assert session.get(FollowUp, followup_id).status == FollowUpStatus.IN_PROGRESS.value
