"""Twilio's webhooks: inbound SMS, answered calls and their answers, recordings, status callbacks.

Every request is checked first: ``X-Twilio-Signature`` must be Twilio's signature (``RequestValidator``)
of ``CARELOOP_PUBLIC_URL`` + the path + the query as sent, and of the form, so it holds behind a
proxy that changes the host or scheme; and the form's ``AccountSid`` must be ours. A missing or
wrong signature is 403 and nothing is stored; a form that lacks what the endpoint needs is 400.
Then the handler parses to neutral values, calls one bot service and answers in TwiML.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from flask import Blueprint, Response, abort, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Gather, VoiceResponse
from werkzeug.datastructures import MultiDict

from bot.calls import CallEvent, CallRefusedError, call_answered, call_input, call_status
from bot.channels.sms import message_status
from bot.messages import InboundMessage, Reply
from bot.recordings import UnknownCallError, recording_completed
from bot.router import handle_inbound
from web.context import request_session, service

logger = logging.getLogger("careloop.webhooks.twilio")

blueprint = Blueprint("twilio", __name__, url_prefix="/webhooks/twilio")

PREFIX = "/webhooks/twilio"
MAX_FORM_BYTES = 64 * 1024
MAX_SMS_CHARS = 1600  # Twilio's limit for one (concatenated) message
GATHER_SECONDS = 8
RECORD_MAX_SECONDS = 120

_MESSAGE_SID = re.compile(r"^(SM|MM|SMS)[0-9a-fA-F]{32}$")
_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
_RECORDING_SID = re.compile(r"^RE[0-9a-fA-F]{32}$")
_STATUS = re.compile(r"^[a-z_-]{1,32}$")
_NUMBER = re.compile(r"^\+?[0-9A-Za-z:@._-]{1,64}$")


# -- the checks every endpoint makes ------------------------------------------------------------------
def _verified_form() -> MultiDict[str, str]:
    """The request's form, after its signature and account were checked (403 otherwise)."""
    settings: Any = service("settings")
    token = settings.twilio_auth_token
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        abort(403)
    if (request.content_length or 0) > MAX_FORM_BYTES:
        abort(413)
    request.max_form_memory_size = MAX_FORM_BYTES
    form = request.form
    query = request.query_string.decode("utf-8", "replace")
    url = f"{str(settings.public_url).rstrip('/')}{request.path}" + (f"?{query}" if query else "")
    if not RequestValidator(token).validate(url, form, signature):
        logger.info("twilio request to %s refused: bad signature", request.path)
        abort(403)
    if form.get("AccountSid") != settings.twilio_account_sid:
        abort(403)
    if request.mimetype != "application/x-www-form-urlencoded":
        abort(400, "Twilio posts form data")
    return form


def _field(form: MultiDict[str, str], name: str, pattern: re.Pattern[str], *, required: bool = True) -> str:
    value = form.get(name, "").strip()
    if not value:
        if required:
            abort(400, f"{name} is required")
        return ""
    if not pattern.match(value):
        abort(400, f"{name} is malformed")
    return value


def _uuid_arg(name: str, *, required: bool = False) -> uuid.UUID | None:
    raw = request.args.get(name)
    if not raw:
        if required:
            abort(400, f"{name} is required")
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        abort(400, f"{name} is malformed")


def _xml(document: Any) -> Response:
    return Response(str(document), mimetype="application/xml")


# -- SMS ------------------------------------------------------------------------------------------------
@blueprint.post("/sms")
def sms() -> Response:
    """An SMS from a patient (or anyone): processed once per MessageSid, answered in TwiML."""
    form = _verified_form()
    sid = _field(form, "MessageSid", _MESSAGE_SID)
    sender = _field(form, "From", _NUMBER)
    body = form.get("Body", "")
    if len(body) > MAX_SMS_CHARS:
        abort(400, "Body is too long")
    media = form.get("NumMedia", "0")
    kind = "media" if not body.strip() and media.isdigit() and int(media) > 0 else "text"
    message = InboundMessage(channel="sms", provider_key=sid, sender=sender, kind=kind, text=body,
                             received_at=service("clock").now(), recipient=form.get("To") or None)
    reply = handle_inbound(request_session(), service("bot"), message)
    twiml = MessagingResponse()
    for text in reply.texts:
        twiml.message(text)
    return _xml(twiml)


# -- calls ------------------------------------------------------------------------------------------------
def _call_event(form: MultiDict[str, str], session_id: uuid.UUID | None) -> CallEvent:
    call_sid = _field(form, "CallSid", _CALL_SID)
    inbound = form.get("Direction", "") == "inbound"
    number = _field(form, "From" if inbound else "To", _NUMBER)
    answered_by = form.get("AnsweredBy") or None
    return CallEvent(call_sid=call_sid, session_id=session_id, patient_number=number, inbound=inbound,
                     answered_by=answered_by)


@blueprint.post("/voice")
def voice() -> Response:
    """An answered call (outbound follow-up, or a patient ringing us): the greeting and the recording-consent
    question (prompt 0), or, when consent stands, the recording notice and the flow's first prompts."""
    form = _verified_form()
    call = _call_event(form, _uuid_arg("session"))
    try:
        reply = call_answered(request_session(), service("bot"), call)
    except CallRefusedError as refused:
        abort(404, str(refused))
    return _voice_twiml(reply)


@blueprint.post("/voice/gather")
def voice_gather() -> Response:
    """The caller's answer to one prompt (keypad digits, speech, or a recording; step 0 is the recording-consent
    question); the next TwiML step."""
    form = _verified_form()
    session_id = _uuid_arg("session", required=True)
    step_text = request.args.get("step", "")
    if not step_text.isdigit() or len(step_text) > 6:
        abort(400, "step is malformed")
    call = _call_event(form, session_id)
    digits = form.get("Digits", "")
    if len(digits) > 64 or (digits and not re.fullmatch(r"[0-9*#]+|hangup", digits)):
        abort(400, "Digits is malformed")
    speech = form.get("SpeechResult", "")[:1000]
    recording_sid = _field(form, "RecordingSid", _RECORDING_SID, required=False) or None
    try:
        reply = call_input(request_session(), service("bot"), call, step=int(step_text),
                           digits="" if digits == "hangup" else digits, speech=speech, recording_sid=recording_sid,
                           silent=request.args.get("silent") == "1")
    except CallRefusedError as refused:
        abort(404, str(refused))
    return _voice_twiml(reply)


def _url(path: str, **query: Any) -> str:
    settings: Any = service("settings")
    suffix = "&".join(f"{name}={value}" for name, value in query.items() if value is not None)
    return f"{str(settings.public_url).rstrip('/')}{PREFIX}{path}" + (f"?{suffix}" if suffix else "")


def _voice_twiml(reply: Reply) -> Response:
    """Turn the bot's neutral voice instructions into TwiML."""
    twiml = VoiceResponse()
    voice = reply.voice or {"language": "zh-CN", "actions": [{"kind": "hangup"}]}
    language = str(voice.get("language") or "zh-CN")
    session_id = voice.get("session_id")
    for action in voice.get("actions") or []:
        kind = action.get("kind")
        if kind == "say":
            twiml.say(action["text"], language=language)
        elif kind == "gather":
            hints = ", ".join(str(hint) for hint in action.get("hints") or []) or None
            gather = Gather(input=action["input"], action=_url("/voice/gather", session=session_id,
                                                                step=action["step"]),
                            method="POST", language=language, finish_on_key=action.get("finish_on_key") or "#",
                            num_digits=action.get("num_digits"), hints=hints, timeout=GATHER_SECONDS,
                            speech_timeout="auto")
            gather.say(action["text"], language=language)
            twiml.append(gather)
        elif kind == "record":
            twiml.say(action["text"], language=language)
            twiml.record(action=_url("/voice/gather", session=session_id, step=action["step"]), method="POST",
                         finish_on_key=action.get("finish_on_key") or "#", max_length=RECORD_MAX_SECONDS,
                         play_beep=True, timeout=5,
                         recording_status_callback=_url("/recording", session=session_id,
                                                        purpose=f"answer:{action.get('node', '')}"),
                         recording_status_callback_method="POST", recording_status_callback_event="completed")
        elif kind == "redirect":
            silent = "1" if action.get("silent") else None
            twiml.redirect(_url("/voice/gather", session=session_id, step=action["step"], silent=silent),
                           method="POST")
        elif kind == "hangup":
            twiml.hangup()
    return _xml(twiml)


# -- recordings ---------------------------------------------------------------------------------------------
@blueprint.post("/recording")
def recording() -> Response:
    """A recording finished at Twilio: note it; the worker fetches, stores encrypted and deletes it there."""
    form = _verified_form()
    recording_sid = _field(form, "RecordingSid", _RECORDING_SID)
    call_sid = _field(form, "CallSid", _CALL_SID)
    status = _field(form, "RecordingStatus", _STATUS).lower()
    duration_text = form.get("RecordingDuration", "")
    duration = int(duration_text) if duration_text.isdigit() and len(duration_text) < 7 else None
    purpose = request.args.get("purpose", "call")
    if not re.fullmatch(r"[a-z]{1,16}(:[A-Za-z0-9_.-]{1,64})?", purpose):
        abort(400, "purpose is malformed")
    session_id = _uuid_arg("session")
    if status != "completed":
        logger.info("recording %s is %s; nothing to fetch", recording_sid, status)
        return Response(status=204)
    try:
        recording_completed(request_session(), recording_sid=recording_sid, call_sid=call_sid, session_id=session_id,
                            purpose=purpose, duration_seconds=duration, source_url=form.get("RecordingUrl") or None)
    except UnknownCallError:
        abort(404, "no conversation for this call")
    return Response(status=204)


# -- status callbacks -----------------------------------------------------------------------------------------
@blueprint.post("/status")
def status() -> Response:
    """A message's or call's status (may come out of order: delivery state only moves forward)."""
    form = _verified_form()
    outbox_id = _uuid_arg("outbox")
    if form.get("MessageSid"):
        sid = _field(form, "MessageSid", _MESSAGE_SID)
        state = _field(form, "MessageStatus", _STATUS).lower()
        error_code = form.get("ErrorCode") or None
        if error_code is not None and not error_code.isdigit():
            abort(400, "ErrorCode is malformed")
        message_status(request_session(), message_sid=sid, status=state, error_code=error_code, outbox_id=outbox_id)
        return Response(status=204)
    if form.get("CallSid"):
        sid = _field(form, "CallSid", _CALL_SID)
        state = _field(form, "CallStatus", _STATUS).lower()
        call_status(request_session(), call_sid=sid, status=state, answered_by=form.get("AnsweredBy") or None,
                    outbox_id=outbox_id)
        return Response(status=204)
    abort(400, "neither a message nor a call status")
