"""Conversations over the phone: an answered call, each keypad or speech answer, and what Twilio reports.

A call runs the same conversation code as the text channels (:mod:`bot.conversations`): the
answered call hears the clinic's recording-consent notice (without the recording sentence when the
patient gave no recording consent), then the flow's prompts; every answer is one engine step. What
the caller must hear next is returned as neutral voice instructions in ``Reply.voice``::

    {"language": "zh-CN", "session_id": "...", "actions": [
        {"kind": "say", "text": "..."},
        {"kind": "gather", "text": "...", "input": "dtmf speech", "finish_on_key": "#", "num_digits": 1,
         "hints": ["好几天", ...], "step": 3},
        {"kind": "record", "text": "...", "step": 4, "node": "comment"},
        {"kind": "redirect", "step": 3, "silent": true},
        {"kind": "hangup"}]}

which the Twilio webhook turns into TwiML. Steps number the prompts of one call; each answer is
deduplicated by CallSid + step, so a repeated delivery is answered with the same instructions and
processed once. A question is asked again once when nothing is heard; then the call says goodbye
and the follow-up stays open to be retried per its policy.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import consent, identity
from bot.channels.sms import fail_invitation
from bot.conversations import (
    BotServices,
    ConversationError,
    Turn,
    answer,
    as_now,
    begin,
    close,
    lock_patient,
    log_inbound,
    open_conversation,
)
from bot.effects import log_message
from bot.followups import invitation_failed
from bot.messages import InboundMessage, Reply
from bot.models import ConversationSession, Direction, InboundReceipt, OutboxMessage, SessionStatus
from bot.outbox import advance_delivery
from bot.router import claim_delivery
from bot.texts import say
from care.models import FollowUp, FollowUpStatus, Patient, PatientStatus
from flows.outputs import Output
from flows.render import SPEECH_LANGUAGES, render
from security.audit import Actor
from security.fields import clock_of

logger = logging.getLogger("careloop.calls")

CHANNEL = "voice"
MACHINE_ANSWERS = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax")
CALL_FAILED_STATUSES = ("busy", "no-answer", "failed", "canceled")
CALL_PROGRESS_STATUSES = ("queued", "initiated", "ringing", "in-progress", "answered")
MAX_STEP = 10_000


class CallRefusedError(Exception):
    """The request does not belong to a call we know (unknown conversation, another call's session)."""


@dataclass(frozen=True)
class CallEvent:
    """What Twilio tells us about a call, in neutral words.

    ``session_id`` comes from the URL we gave Twilio (it is part of what Twilio signs); ``patient_number``
    is the patient's side of the call (``To`` of an outbound call, ``From`` of an inbound one).
    """

    call_sid: str
    session_id: uuid.UUID | None
    patient_number: str
    inbound: bool
    answered_by: str | None = None


def is_machine(answered_by: str | None) -> bool:
    return bool(answered_by) and str(answered_by).lower() in MACHINE_ANSWERS


def _language(lang: str) -> str:
    return SPEECH_LANGUAGES.get(lang, "zh-CN")


def _voice(lang: str, session_id: uuid.UUID | None, actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"language": _language(lang), "session_id": str(session_id) if session_id else None, "actions": actions}


def _goodbye(services: BotServices, lang: str, key: str = "voice_goodbye") -> list[dict[str, Any]]:
    config = services.config
    return [{"kind": "say", "text": say(key, lang, clinic=config.clinic_name, phone=config.clinic_phone)},
            {"kind": "hangup"}]


def recording_allowed(patient: Patient) -> bool:
    voice = patient.consent_for(CHANNEL)
    return bool(voice and voice.recording_consent and not voice.opted_out)


def script(outputs: list[Output], lang: str, *, step: int, record_answers: bool) -> list[dict[str, Any]]:
    """The flow's outputs as voice actions; the question (always last) is gathered, asked again once."""
    actions: list[dict[str, Any]] = []
    for output in outputs:
        prompt = render(output, "voice", lang)
        if prompt.gather is None:
            actions.append({"kind": "say", "text": prompt.text})
            continue
        if prompt.record and record_answers:
            actions.append({"kind": "record", "text": prompt.text, "step": step, "node": output.node_id})
            actions.append({"kind": "redirect", "step": step, "silent": True})
            continue
        gather = prompt.gather
        ask = {
            "kind": "gather", "text": prompt.text,
            # Free text without recording consent is taken as speech; "#" still ends it from the keypad.
            "input": "dtmf speech" if prompt.record else gather.input,
            "finish_on_key": gather.finish_on_key or "#", "num_digits": gather.num_digits,
            "hints": list(gather.hints), "step": step,
        }
        again = {**ask, "text": f"{say('voice_reprompt', lang)} {prompt.text}"}
        actions.extend([ask, again, {"kind": "redirect", "step": step, "silent": True}])
    return actions


def _turn_actions(services: BotServices, turn: Turn, *, step: int, record_answers: bool) -> list[dict[str, Any]]:
    actions = script(list(turn.outputs), turn.lang, step=step, record_answers=record_answers)
    if turn.ended or not any(action["kind"] in ("gather", "record") for action in actions):
        actions.extend(_goodbye(services, turn.lang))
    return actions


# -- finding the call's conversation -----------------------------------------------------------------
def _conversation_of(session: Session, call: CallEvent) -> ConversationSession:
    if call.session_id is None:
        raise CallRefusedError("no session in the call's URL")
    conversation = session.get(ConversationSession, call.session_id)
    if conversation is None:
        raise CallRefusedError("unknown conversation")
    return _of_this_call(conversation, call)


def _of_this_call(conversation: ConversationSession, call: CallEvent) -> ConversationSession:
    if conversation.call_sid not in (None, call.call_sid):
        raise CallRefusedError("the conversation belongs to another call")
    return conversation


def _lock(session: Session, patient: Patient, conversation: ConversationSession, call: CallEvent) -> None:
    """Take the patient's lock and read the conversation again under it (a status callback of the
    same call, or a message, may have changed it since it was read to find the patient)."""
    lock_patient(session, patient)
    _of_this_call(as_now(session, conversation), call)


def _active_patient(session: Session, patient_id: uuid.UUID) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None or patient.status != PatientStatus.ACTIVE.value:
        raise CallRefusedError("the patient is not active")
    return patient


def _finish(reply: Reply, receipt: InboundReceipt | None, patient: Patient | None) -> Reply:
    """Keep the reply on the delivery's receipt, so a repeated delivery gets the same TwiML."""
    if receipt is not None:
        receipt.patient_id = patient.id if patient else None
        receipt.reply = reply.to_dict()
    return reply


def _claim(session: Session, call: CallEvent, key: str, text: str = "") -> tuple[InboundReceipt | None, Reply | None]:
    message = InboundMessage(channel=CHANNEL, provider_key=f"{call.call_sid}:{key}", sender=call.patient_number,
                             kind="text" if text else "event", text=text, received_at=clock_of(session).now())
    return claim_delivery(session, message)


# -- the answered call -------------------------------------------------------------------------------
def call_answered(session: Session, services: BotServices, call: CallEvent) -> Reply:
    """Answer a call that was picked up: the consent notice, then the flow's first prompts.

    Raises:
        CallRefusedError: the call names a conversation we do not know, or another call's.
    """
    if call.inbound:
        return _inbound_call(session, services, call)
    conversation = _conversation_of(session, call)
    patient = _active_patient(session, conversation.patient_id)
    receipt, previous = _claim(session, call, "answered")
    if previous is not None:
        return previous
    _lock(session, patient, conversation, call)
    lang = conversation.lang or patient.language
    if is_machine(call.answered_by):
        _machine_answered(session, conversation, call.call_sid)
        return _finish(Reply(patient_id=str(patient.id), voice=_voice(lang, conversation.id, [{"kind": "hangup"}])),
                       receipt, patient)
    return _finish(_start_by_voice(session, services, patient, conversation, call.call_sid), receipt, patient)


def _start_by_voice(session: Session, services: BotServices, patient: Patient, conversation: ConversationSession,
                    call_sid: str) -> Reply:
    lang = conversation.lang or patient.language
    reply = Reply(patient_id=str(patient.id), session_id=str(conversation.id))
    if not consent.channel_usable(patient, CHANNEL):
        reply.voice = _voice(lang, conversation.id, _goodbye(services, lang))
        return reply
    if conversation.status == SessionStatus.WAITING.value and conversation.channel != CHANNEL:
        # The patient is already answering by message; the call must not ask the same questions twice.
        reply.voice = _voice(lang, conversation.id, _goodbye(services, lang, "voice_continue_in_messages"))
        return reply
    if conversation.status != SessionStatus.INVITED.value:
        reply.voice = _voice(lang, conversation.id, _goodbye(services, lang))
        return reply
    record_answers = recording_allowed(patient)
    notice = say("voice_consent" if record_answers else "voice_consent_no_recording", lang,
                 clinic=services.config.clinic_name)
    log_message(session, patient=patient, conversation_id=conversation.id, channel=CHANNEL, direction=Direction.OUT,
                text=notice)
    conversation.call_sid = call_sid
    actor = Actor("patient", str(patient.id), CHANNEL)
    try:
        turn = begin(session, services, patient, conversation.flow_id, channel=CHANNEL, actor=actor,
                     conversation=conversation)
    except ConversationError:
        logger.warning("call could not start the flow of conversation %s", conversation.id)
        reply.voice = _voice(lang, conversation.id, _goodbye(services, lang))
        return reply
    turn.conversation.call_sid = call_sid
    actions = [{"kind": "say", "text": notice}, *_turn_actions(services, turn, step=1, record_answers=record_answers)]
    reply.voice = _voice(turn.lang, turn.conversation.id, actions)
    return reply


def _inbound_call(session: Session, services: BotServices, call: CallEvent) -> Reply:
    """A patient rang the clinic's number: take up an invitation waiting for them, if any."""
    receipt, previous = _claim(session, call, "answered")
    if previous is not None:
        return previous
    patient = identity.find_patient(session, CHANNEL, call.patient_number)
    if patient is None:
        return _finish(Reply(voice=_voice("zh", None, _goodbye(services, "zh", "voice_not_registered"))),
                       receipt, None)
    lock_patient(session, patient)
    conversation = open_conversation(session, patient)
    if conversation is not None:
        as_now(session, conversation)  # loaded with the patient, before the lock
    if conversation is None or conversation.call_sid not in (None, call.call_sid):
        voice = _voice(patient.language, None, _goodbye(services, patient.language, "voice_nothing_open"))
        return _finish(Reply(patient_id=str(patient.id), voice=voice), receipt, patient)
    return _finish(_start_by_voice(session, services, patient, conversation, call.call_sid), receipt, patient)


# -- an answer -----------------------------------------------------------------------------------------
def call_input(session: Session, services: BotServices, call: CallEvent, *, step: int, digits: str = "",
               speech: str = "", recording_sid: str | None = None, silent: bool = False) -> Reply:
    """Take the caller's answer to prompt ``step`` (keypad, speech or a recording) and say what comes next.

    Raises:
        CallRefusedError: the call names a conversation we do not know, or another call's.
    """
    if not 0 < step <= MAX_STEP:
        raise CallRefusedError("step out of range")
    conversation = _conversation_of(session, call)
    if conversation.call_sid is None:
        raise CallRefusedError("the call was never answered")
    patient = _active_patient(session, conversation.patient_id)
    lang = conversation.lang or patient.language
    text = _answer_text(lang, digits=digits, speech=speech, recording_sid=recording_sid)
    receipt, previous = _claim(session, call, f"{step}:silent" if silent or not text else str(step), text)
    if previous is not None:
        return previous
    _lock(session, patient, conversation, call)
    reply = Reply(patient_id=str(patient.id), session_id=str(conversation.id))
    if conversation.status == SessionStatus.ENDED.value:
        reply.voice = _voice(lang, conversation.id, _goodbye(services, lang))
        return _finish(reply, receipt, patient)
    if silent or not text:
        give_up_call(session, conversation, retryable=True)
        reply.voice = _voice(lang, conversation.id, _goodbye(services, lang, "voice_no_input"))
        return _finish(reply, receipt, patient)
    actor = Actor("patient", str(patient.id), CHANNEL)
    log_inbound(session, patient, conversation, CHANNEL, text)
    word = consent.keyword(text)
    if word in consent.STOP_WORDS:
        consent.opt_out(session, patient, CHANNEL, actor=actor, reason=f"keyword:{word}")
        give_up_call(session, conversation, retryable=False)  # the follow-up goes on by another channel
        reply.voice = _voice(lang, conversation.id, [{"kind": "say", "text": say("opted_out", lang)},
                                                     {"kind": "hangup"}])
        return _finish(reply, receipt, patient)
    try:
        turn = answer(session, services, patient, conversation, text, actor=actor)
    except ConversationError:
        logger.warning("call could not continue conversation %s", conversation.id)
        reply.voice = _voice(lang, conversation.id, _goodbye(services, lang))
        return _finish(reply, receipt, patient)
    turn.conversation.call_sid = call.call_sid
    actions = _turn_actions(services, turn, step=step + 1, record_answers=recording_allowed(patient))
    reply.session_id = str(turn.conversation.id)
    reply.voice = _voice(turn.lang, turn.conversation.id, actions)
    return _finish(reply, receipt, patient)


def _answer_text(lang: str, *, digits: str, speech: str, recording_sid: str | None) -> str:
    if recording_sid:
        return say("voice_answer_recorded", lang, sid=recording_sid)
    keyed = digits.strip().rstrip("#")
    if keyed:
        return keyed
    return " ".join(speech.split())


# -- when the call did not reach the patient ---------------------------------------------------------
def give_up_call(session: Session, conversation: ConversationSession, *, retryable: bool) -> None:
    """The caller went silent, hung up mid-way or said STOP: end this call's conversation.

    The follow-up is treated as an unanswered invitation: ``retryable``, the same channel again after
    a pause, up to its attempts per channel; then (or at once when not retryable) the next channel,
    then the staff queue. A conversation without a follow-up stays open until it expires: the
    patient may take it up again by message.
    """
    if conversation.status == SessionStatus.ENDED.value or conversation.followup_id is None:
        return
    followup = session.get(FollowUp, conversation.followup_id)
    if followup is None or followup.session_id != conversation.id or followup.status not in (
            FollowUpStatus.IN_PROGRESS.value, FollowUpStatus.INVITED.value):
        return
    conversation.followup_id = None  # the follow-up goes on; only this call's conversation ends
    close(session, conversation, "no_input")
    followup.status = FollowUpStatus.INVITED.value
    invitation_failed(session, followup.id, retryable=retryable)


def _call_row(session: Session, call_sid: str, outbox_id: uuid.UUID | None = None,
              conversation: ConversationSession | None = None) -> OutboxMessage | None:
    """The outbox row of a call, by our id (from the callback URL), its CallSid, or its conversation."""
    row = session.get(OutboxMessage, outbox_id) if outbox_id is not None else None
    if row is None:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.provider_id == call_sid)).first()
    if row is None and conversation is not None:
        row = session.scalars(select(OutboxMessage).where(
            OutboxMessage.session_id == conversation.id, OutboxMessage.channel == CHANNEL)
            .order_by(OutboxMessage.created_at.desc())).first()
    if row is not None and row.channel != CHANNEL:
        return None
    if row is not None and row.provider_id is None:
        # Twilio may report before the dispatcher has written down the CallSid it got back.
        row.provider_id = call_sid
    return row


def _machine_answered(session: Session, conversation: ConversationSession, call_sid: str) -> None:
    row = _call_row(session, call_sid, conversation=conversation)
    if row is None or row.provider_id != call_sid:
        return
    advance_delivery(session, call_sid, "failed", error_code="machine", at=clock_of(session).now())
    fail_invitation(session, row, retryable=True)


def call_status(session: Session, *, call_sid: str, status: str, answered_by: str | None,
                outbox_id: uuid.UUID | None) -> OutboxMessage | None:
    """Apply a call status callback; a call that reached no one drives the follow-up's retry policy.

    Busy, no answer, failed, cancelled and answering machines are unanswered invitations; a call
    that completed while its conversation still waited for an answer (the caller hung up) is too.
    """
    status = status.lower()
    row = _call_row(session, call_sid, outbox_id)
    if row is None or row.provider_id != call_sid:
        logger.info("status %s for unknown call %s", status, call_sid)
        return None
    patient = session.get(Patient, row.patient_id) if row.patient_id is not None else None
    if patient is not None:
        lock_patient(session, patient)  # the call's last answer may be being handled; what follows reads after it
    now = clock_of(session).now()
    if status in CALL_FAILED_STATUSES or (status == "completed" and is_machine(answered_by)):
        advance_delivery(session, call_sid, "failed", error_code="machine" if status == "completed" else status,
                         at=now)
        fail_invitation(session, row, retryable=True)
        return row
    if status in CALL_PROGRESS_STATUSES:
        return advance_delivery(session, call_sid, "sent", at=now)
    if status == "completed":
        advance_delivery(session, call_sid, "completed", at=now)
        conversation = session.scalars(select(ConversationSession).where(
            ConversationSession.call_sid == call_sid)).first()
        if conversation is None and row.session_id is not None:
            conversation = session.get(ConversationSession, row.session_id)
        if conversation is not None and conversation.status == SessionStatus.INVITED.value:
            fail_invitation(session, row, retryable=True)  # completed without ever reaching the flow
        elif conversation is not None and conversation.status == SessionStatus.WAITING.value \
                and conversation.channel == CHANNEL and conversation.call_sid == call_sid:
            give_up_call(session, conversation, retryable=True)
    return row
