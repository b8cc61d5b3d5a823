"""Conversations over the phone: an answered call, each keypad or speech answer, and what Twilio reports.

A call runs the same conversation code as the text channels (:mod:`bot.conversations`). The
answered call first settles recording consent, in the patient's language:

- consent stands from before (the latest ``call_recording`` row of the consent ledger is a grant):
  the whole-call recording starts at once and the greeting says the call is recorded and how to
  stop it; the flow's first prompts follow;
- otherwise the greeting asks for it (prompt 0): keypad 1 or "同意"/"yes" grants, and the recording
  starts; keypad 2, "不同意"/"no", any other answer or silence refuse (never assumed). The answer
  goes into the ledger (silence is no answer: nothing is written), then the flow begins (prompt 1).

While the recording runs, "停止录音"/"stop recording" or the star key, at any prompt, stops it at
once at Twilio, writes the withdrawal to the ledger, and asks the same question again. Free-text
answers are recorded (``<Record>``) only while consent stands; otherwise they are taken as speech.

Every answer is one engine step. What the caller must hear next is returned as neutral voice
instructions in ``Reply.voice``::

    {"language": "zh-CN", "session_id": "...", "actions": [
        {"kind": "say", "text": "..."},
        {"kind": "gather", "text": "...", "input": "dtmf speech", "finish_on_key": "#", "num_digits": 1,
         "hints": ["好几天", ...], "step": 3},
        {"kind": "record", "text": "...", "step": 4, "node": "comment", "finish_on_key": "#*"},
        {"kind": "redirect", "step": 3, "silent": true},
        {"kind": "hangup"}]}

which the Twilio webhook turns into TwiML. Steps number the prompts of one call (0: the consent
question); each answer is deduplicated by CallSid + step, so a repeated delivery is answered with the
same instructions and processed once. A question is asked again once when nothing is heard; then
the call says goodbye and the follow-up stays open to be retried per its policy.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import consent, failures, identity
from bot.channels.sms import fail_invitation
from bot.channels.voice import RecordingControlError, VoiceAdapter
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
from bot.followups import invitation_failed
from bot.messages import InboundMessage, Reply
from bot.models import ConversationSession, Direction, InboundReceipt, OutboxMessage, SessionStatus
from bot.outbox.queue import advance_delivery
from bot.recordings import active_recording, recording_started, recording_stopped
from bot.texts import say
from bot.turns.delivery import claim_delivery
from bot.turns.effects import log_message
from bot.turns.scene import Scene
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
CONSENT_STEP = 0
RECORD_FINISH_KEYS = "#*"  # "#" ends a spoken answer; the star key ends it too, and stops the recording
CONSENT_HINTS = {"zh": ["同意", "不同意"], "en": ["yes", "no"]}


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


def recording_allowed(session: Session, patient: Patient) -> bool:
    """Whether this patient's calls may be recorded now: calls not opted out, and the consent standing."""
    voice = patient.consent_for(CHANNEL)
    return bool(voice and not voice.opted_out) and consent.recording_consented(session, patient, CHANNEL)


def _ask(text: str, lang: str, *, step: int, listen: str, finish_on_key: str, num_digits: int | None,
         hints: list[str]) -> list[dict[str, Any]]:
    """A question gathered (``listen``: Twilio's input, "dtmf speech"), asked again once when nothing is heard,
    then the silent redirect."""
    ask = {"kind": "gather", "text": text, "input": listen, "finish_on_key": finish_on_key,
           "num_digits": num_digits, "hints": hints, "step": step}
    again = {**ask, "text": f"{say('voice_reprompt', lang)} {text}"}
    return [ask, again, {"kind": "redirect", "step": step, "silent": True}]


def _speech_instead(text: str, lang: str, *, step: int) -> list[dict[str, Any]]:
    # Free text without recording consent is taken as speech; "#" still ends it from the keypad.
    return _ask(text, lang, step=step, listen="dtmf speech", finish_on_key="#", num_digits=None, hints=[])


def script(outputs: list[Output], lang: str, *, step: int, record_answers: bool) -> list[dict[str, Any]]:
    """The flow's outputs as voice actions; the question (always last) is gathered, asked again once."""
    actions: list[dict[str, Any]] = []
    for output in outputs:
        prompt = render(output, "voice", lang)
        if prompt.gather is None:
            actions.append({"kind": "say", "text": prompt.text})
            continue
        if prompt.record and record_answers:
            actions.append({"kind": "record", "text": prompt.text, "step": step, "node": output.node_id,
                            "finish_on_key": RECORD_FINISH_KEYS})
            actions.append({"kind": "redirect", "step": step, "silent": True})
            continue
        if prompt.record:
            actions.extend(_speech_instead(prompt.text, lang, step=step))
            continue
        gather = prompt.gather
        actions.extend(_ask(prompt.text, lang, step=step, listen=gather.input,
                            finish_on_key=gather.finish_on_key or "#", num_digits=gather.num_digits,
                            hints=list(gather.hints)))
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
def _guarded(session: Session, services: BotServices, call: CallEvent, what: str, work: Callable[[], Reply]) -> Reply:
    """Run one step of a call; if it fails inside, roll it back and say sorry instead of failing the webhook.

    Twilio would otherwise play its own error message and hang up, and nobody would know.
    """
    try:
        return work()
    except CallRefusedError:
        raise
    except Exception as failure:  # noqa: BLE001 - a failed step is answered, never turned into a 500
        session.rollback()
        failures.log_failure(failure, channel=CHANNEL, what=what)
        conversation = session.get(ConversationSession, call.session_id) if call.session_id else None
        patient = session.get(Patient, conversation.patient_id) if conversation is not None else \
            identity.find_patient(session, CHANNEL, call.patient_number)
        if patient is None:
            return Reply(voice=_voice("zh", None, _goodbye(services, "zh")))
        text = failures.leave_failed_turn(session, services, patient, conversation, CHANNEL,
                                          {"call_sid": call.call_sid}, source_ref=call.call_sid)
        return Reply(patient_id=str(patient.id),
                     voice=_voice(patient.language, conversation.id if conversation else None,
                                  [{"kind": "say", "text": text}, {"kind": "hangup"}]))


def call_answered(session: Session, services: BotServices, call: CallEvent) -> Reply:
    """Answer a call that was picked up (see :func:`_answer_call`); a failure inside is answered with an apology."""
    return _guarded(session, services, call, "a call's answer", lambda: _answer_call(session, services, call))


def _answer_call(session: Session, services: BotServices, call: CallEvent) -> Reply:
    """Answer a call that was picked up: the greeting and the recording-consent question; or, when consent
    stands, the recording started, its notice and the flow's first prompts.

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


def _cannot_start(session: Session, services: BotServices, patient: Patient, conversation: ConversationSession,
                  lang: str) -> list[dict[str, Any]] | None:
    """The goodbye of a call whose conversation cannot begin by voice now, or None when it can."""
    if not consent.channel_usable(session, patient, CHANNEL, "followup_invite"):
        return _goodbye(services, lang)
    if conversation.status == SessionStatus.WAITING.value and conversation.channel != CHANNEL:
        # The patient is already answering by message; the call must not ask the same questions twice.
        return _goodbye(services, lang, "voice_continue_in_messages")
    if conversation.status != SessionStatus.INVITED.value:
        return _goodbye(services, lang)
    return None


def _recorder(services: BotServices) -> VoiceAdapter | None:
    adapter = services.adapters.get(CHANNEL)
    return adapter if isinstance(adapter, VoiceAdapter) else None


def _start_recording(session: Session, services: BotServices, conversation: ConversationSession,
                     call_sid: str) -> bool:
    """Start the whole-call recording at Twilio (once per call); False when it could not be started."""
    if active_recording(session, call_sid) is not None:
        return True
    recorder = _recorder(services)
    if recorder is None:
        return False
    try:
        recording_sid = recorder.start_recording(call_sid, session_id=str(conversation.id))
    except RecordingControlError as failure:
        logger.warning("call %s of conversation %s goes on unrecorded: %s", call_sid, conversation.id, failure)
        return False
    recording_started(session, conversation=conversation, call_sid=call_sid, recording_sid=recording_sid)
    return True


def _start_by_voice(session: Session, services: BotServices, patient: Patient, conversation: ConversationSession,
                    call_sid: str) -> Reply:
    lang = conversation.lang or patient.language
    reply = Reply(patient_id=str(patient.id), session_id=str(conversation.id))
    refusal = _cannot_start(session, services, patient, conversation, lang)
    if refusal is not None:
        reply.voice = _voice(lang, conversation.id, refusal)
        return reply
    conversation.call_sid = call_sid
    clinic = services.config.clinic_name
    if _recorder(services) is None:  # no recording on this install: there is nothing to ask
        return _begin_call(session, services, patient, conversation, call_sid,
                           [say("voice_consent_no_recording", lang, clinic=clinic)])
    if recording_allowed(session, patient):
        recorded = _start_recording(session, services, conversation, call_sid)
        notice = say("voice_recording_on" if recorded else "voice_consent_no_recording", lang, clinic=clinic)
        return _begin_call(session, services, patient, conversation, call_sid, [notice])
    greeting = say("voice_consent_no_recording", lang, clinic=clinic)
    question = say("voice_recording_ask", lang)
    log_message(Scene.of(session, patient.id), conversation_id=conversation.id, channel=CHANNEL,
                direction=Direction.OUT, text=f"{greeting} {question}")
    ask = _ask(question, lang, step=CONSENT_STEP, listen="dtmf speech", finish_on_key="#", num_digits=1,
               hints=CONSENT_HINTS.get(lang, CONSENT_HINTS["zh"]))
    reply.voice = _voice(lang, conversation.id, [{"kind": "say", "text": greeting}, *ask])
    return reply


def _begin_call(session: Session, services: BotServices, patient: Patient, conversation: ConversationSession,
                call_sid: str, lead: list[str]) -> Reply:
    """Say ``lead``, then begin the flow: its first prompts are prompt 1 of the call."""
    lang = conversation.lang or patient.language
    reply = Reply(patient_id=str(patient.id), session_id=str(conversation.id))
    for text in lead:
        log_message(Scene.of(session, patient.id), conversation_id=conversation.id, channel=CHANNEL,
                    direction=Direction.OUT, text=text)
    said = [{"kind": "say", "text": text} for text in lead]
    actor = Actor("patient", str(patient.id), CHANNEL)
    try:
        turn = begin(session, services, patient, conversation.flow_id, channel=CHANNEL, actor=actor,
                     conversation=conversation)
    except ConversationError:
        logger.warning("call could not start the flow of conversation %s", conversation.id)
        reply.voice = _voice(lang, conversation.id, [*said, *_goodbye(services, lang)])
        return reply
    turn.conversation.call_sid = call_sid
    actions = [*said, *_turn_actions(services, turn, step=1, record_answers=recording_allowed(session, patient))]
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
    """Take the caller's answer to prompt ``step`` (see :func:`_take_input`); a failure inside is answered
    with an apology.

    Raises:
        CallRefusedError: the call names a conversation we do not know, or another call's.
    """
    return _guarded(session, services, call, "a call's step", lambda: _take_input(
        session, services, call, step=step, digits=digits, speech=speech, recording_sid=recording_sid,
        silent=silent))


def _take_input(session: Session, services: BotServices, call: CallEvent, *, step: int, digits: str = "",
                speech: str = "", recording_sid: str | None = None, silent: bool = False) -> Reply:
    """Take the caller's answer to prompt ``step`` (keypad, speech or a recording) and say what comes next.

    Raises:
        CallRefusedError: the call names a conversation we do not know, or another call's.
    """
    if not CONSENT_STEP <= step <= MAX_STEP:
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
    actor = Actor("patient", str(patient.id), CHANNEL)
    if step == CONSENT_STEP and (silent or not text):
        reply = _consent_answer(session, services, patient, conversation, call, digits="", speech="", heard=False)
        return _finish(reply, receipt, patient)
    if silent or not text:
        give_up_call(session, conversation, retryable=True)
        reply.voice = _voice(lang, conversation.id, _goodbye(services, lang, "voice_no_input"))
        return _finish(reply, receipt, patient)
    log_inbound(session, patient.id, conversation, CHANNEL, text)
    word = consent.keyword(text)
    if word in consent.STOP_WORDS:
        consent.opt_out(session, patient, CHANNEL, actor=actor, reason=f"keyword:{word}")
        give_up_call(session, conversation, retryable=False)  # the follow-up goes on by another channel
        reply.voice = _voice(lang, conversation.id, [{"kind": "say", "text": say("opted_out", lang)},
                                                     {"kind": "hangup"}])
        return _finish(reply, receipt, patient)
    if step == CONSENT_STEP:
        reply = _consent_answer(session, services, patient, conversation, call, digits=digits, speech=speech,
                                heard=True)
        return _finish(reply, receipt, patient)
    asked_to_stop = consent.stop_recording_asked(digits=digits, speech=speech)
    if asked_to_stop is not None:
        reply = _withdraw_recording(session, services, patient, conversation, call, step=step, source=asked_to_stop)
        return _finish(reply, receipt, patient)
    try:
        turn = answer(session, services, conversation, text, actor=actor)
    except ConversationError:
        logger.warning("call could not continue conversation %s", conversation.id)
        reply.voice = _voice(lang, conversation.id, _goodbye(services, lang))
        return _finish(reply, receipt, patient)
    turn.conversation.call_sid = call.call_sid
    actions = _turn_actions(services, turn, step=step + 1, record_answers=recording_allowed(session, patient))
    reply.session_id = str(turn.conversation.id)
    reply.voice = _voice(turn.lang, turn.conversation.id, actions)
    return _finish(reply, receipt, patient)


# -- recording consent -------------------------------------------------------------------------------------
def _consent_answer(session: Session, services: BotServices, patient: Patient, conversation: ConversationSession,
                    call: CallEvent, *, digits: str, speech: str, heard: bool) -> Reply:
    """The answer to "may we record this call?": into the ledger, the recording started if granted, then the flow.

    Silence (not ``heard``) refuses too, but is no answer: nothing is written, and the next call asks again.
    """
    lang = conversation.lang or patient.language
    refusal = _cannot_start(session, services, patient, conversation, lang)
    if refusal is not None:  # the conversation went on by message meanwhile, or calls were turned off
        return Reply(patient_id=str(patient.id), session_id=str(conversation.id),
                     voice=_voice(lang, conversation.id, refusal))
    if not heard:
        return _begin_call(session, services, patient, conversation, call.call_sid,
                           [say("voice_recording_not_heard", lang)])
    granted, source = consent.recording_answer(digits=digits, speech=speech)
    consent.decide_recording(session, patient, granted=granted, source=source, call_sid=call.call_sid,
                             actor=Actor("patient", str(patient.id), CHANNEL))
    if not granted:
        lead = "voice_recording_refused"
    elif _start_recording(session, services, conversation, call.call_sid):
        lead = "voice_recording_granted"
    else:
        lead = "voice_recording_unavailable"
    return _begin_call(session, services, patient, conversation, call.call_sid, [say(lead, lang)])


def _withdraw_recording(session: Session, services: BotServices, patient: Patient,
                        conversation: ConversationSession, call: CallEvent, *, step: int, source: str) -> Reply:
    """The caller asked to stop the recording: stop it now, write the withdrawal, ask the same question again.

    When Twilio cannot stop it, the call is ended (which ends the recording) and the follow-up retried.
    """
    lang = conversation.lang or patient.language
    reply = Reply(patient_id=str(patient.id), session_id=str(conversation.id))
    actor = Actor("patient", str(patient.id), CHANNEL)
    running = active_recording(session, call.call_sid)
    consented = consent.recording_consented(session, patient, CHANNEL)
    if consented:
        consent.decide_recording(session, patient, granted=False, source=source, call_sid=call.call_sid, actor=actor)
    if running is not None:
        recorder = _recorder(services)
        try:
            if recorder is None:
                raise RecordingControlError("stop: the voice channel is not live")
            recorder.stop_recording(call.call_sid, running.provider_sid)
        except RecordingControlError as failure:
            logger.error("recording %s of call %s could not be stopped (%s); the call is ended",
                         running.id, call.call_sid, failure)
            give_up_call(session, conversation, retryable=True)
            reply.voice = _voice(lang, conversation.id, [
                {"kind": "say", "text": say("voice_recording_stop_failed", lang)}, {"kind": "hangup"}])
            return reply
        recording_stopped(session, running, actor=actor)
    notice = say("voice_recording_stopped" if consented or running is not None else "voice_not_recording", lang)
    log_message(Scene.of(session, patient.id), conversation_id=conversation.id, channel=CHANNEL,
                direction=Direction.OUT, text=notice)
    again = _asked_again(session, call.call_sid, step, lang)
    if again is None:
        logger.warning("call %s: prompt %d could not be found to ask again", call.call_sid, step)
        give_up_call(session, conversation, retryable=True)
        reply.voice = _voice(lang, conversation.id, [{"kind": "say", "text": notice}, *_goodbye(services, lang)])
        return reply
    reply.voice = _voice(lang, conversation.id, [{"kind": "say", "text": notice}, *again])
    return reply


def _asked_again(session: Session, call_sid: str, step: int, lang: str) -> list[dict[str, Any]] | None:
    """Prompt ``step`` of this call asked again as prompt ``step + 1`` (a spoken answer now, never recorded).

    The prompt is read from the reply kept on the delivery that asked it (the answer to the prompt
    before it, or the answered call), so the engine is not stepped for an answer that was no answer.
    """
    keys = ([f"{call_sid}:answered", f"{call_sid}:{CONSENT_STEP}", f"{call_sid}:{CONSENT_STEP}:silent"]
            if step == 1 else [f"{call_sid}:{step - 1}"])
    receipts = session.scalars(select(InboundReceipt).where(InboundReceipt.channel == CHANNEL,
                                                            InboundReceipt.provider_key.in_(keys)))
    for receipt in receipts:
        actions = ((receipt.reply or {}).get("voice") or {}).get("actions") or []
        for action in actions:
            if action.get("step") != step or action.get("kind") not in ("gather", "record"):
                continue
            if action["kind"] == "record":
                return _speech_instead(str(action["text"]), lang, step=step + 1)
            return _ask(str(action["text"]), lang, step=step + 1, listen=str(action.get("input") or "dtmf speech"),
                        finish_on_key=str(action.get("finish_on_key") or "#"), num_digits=action.get("num_digits"),
                        hints=list(action.get("hints") or []))
    return None


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
