"""The voice channel: automated follow-up calls placed through Twilio's ``calls.create``, and the
recording of a call while the patient's consent stands.

The outbox row of a call (kind ``call``) carries ``{"session_id": ...}``. The call asks Twilio for
answering-machine detection and status callbacks, and is never placed recording: a ``record``
flag in the payload is ignored, since consent is only known once the patient has heard the notice
(and may have changed since the row was queued). When the patient answers, Twilio fetches
``/webhooks/twilio/voice`` and the conversation goes on there (:mod:`bot.calls`), which starts the
whole-call recording through the Calls Recordings API (:meth:`VoiceAdapter.start_recording`) once
consent stands, and stops it (:meth:`VoiceAdapter.stop_recording`) when the caller withdraws it.
The CallSid becomes the row's ``provider_id`` and the conversation's ``call_sid``.

Reconciliation follows the SMS policy: calls to the same number from our number created since the
attempt started (less the clock skew) whose SID no other row owns; the oldest is ours.
"""

from __future__ import annotations

import logging
import uuid

import requests
from twilio.base.exceptions import TwilioException

from bot.channels.base import ChannelAdapter, ChannelEnvironment, OutgoingMessage, SendResult, register_channel
from bot.channels.twilio_rest import (
    CLOCK_SKEW,
    RECONCILE_LIMIT,
    STATUS_PATH,
    TwilioAccount,
    as_utc,
    call_provider,
    owned_sids,
    rest_failure,
)
from bot.models import ConversationSession

logger = logging.getLogger("careloop.channels.twilio")

VOICE_PATH = "/webhooks/twilio/voice"
RECORDING_PATH = "/webhooks/twilio/recording"
CALL_EVENTS = ["initiated", "ringing", "answered", "completed"]
RING_SECONDS = 40


class RecordingControlError(Exception):
    """Twilio did not start or stop a call's recording."""


class VoiceAdapter:
    """Places follow-up calls; what the patient hears is served by the voice webhooks."""

    name = "voice"
    kind = "voice"
    looks_up = True

    def __init__(self, environment: ChannelEnvironment) -> None:
        self.environment = environment
        self.account = TwilioAccount.from_environment(environment)
        self.client = self.account.client()

    def send(self, message: OutgoingMessage) -> SendResult:
        if message.kind != "call" or not message.address:
            return SendResult("failed", error_code="not_a_call", error="voice rows are calls to a number")
        session_id = str(message.payload.get("session_id") or "")
        query = {"session": session_id} if session_id else {}
        options: dict[str, object] = {
            "to": message.address,
            "from_": self.account.from_number,
            "url": self.account.callback(VOICE_PATH, **query),
            "method": "POST",
            "status_callback": self.account.callback(STATUS_PATH, outbox=str(message.id)),
            "status_callback_event": CALL_EVENTS,
            "status_callback_method": "POST",
            "machine_detection": "Enable",
            "timeout": RING_SECONDS,
        }
        result = call_provider(lambda: self.client.calls.create(**options), message)
        if result.outcome == "sent" and result.provider_id and session_id:
            self._remember_call(session_id, result.provider_id)
        return result

    def start_recording(self, call_sid: str, *, session_id: str) -> str:
        """Record the call in progress from now on (both sides, one channel); return the RecordingSid.

        Raises:
            RecordingControlError: Twilio refused or could not be reached; the call goes on unrecorded.
        """
        callback = self.account.callback(RECORDING_PATH, session=session_id, purpose="call")
        try:
            recording = self.client.calls(call_sid).recordings.create(
                recording_status_callback=callback, recording_status_callback_method="POST",
                recording_status_callback_event=["completed"], recording_channels="mono")
        except TwilioException as error:
            raise RecordingControlError(f"start: twilio {getattr(error, 'status', '?')}") from error
        except requests.RequestException as error:
            raise RecordingControlError(f"start: {type(error).__name__}") from error
        if not recording.sid:
            raise RecordingControlError("start: no recording sid")
        return str(recording.sid)

    def stop_recording(self, call_sid: str, recording_sid: str) -> None:
        """Stop the call's recording now (what was recorded so far comes by the recording callback).

        A recording Twilio no longer has running (404: the call or the recording is over) counts as stopped.

        Raises:
            RecordingControlError: Twilio refused or could not be reached; the recording may still run.
        """
        try:
            self.client.calls(call_sid).recordings(recording_sid).update(status="stopped")
        except TwilioException as error:
            if int(getattr(error, "status", 0) or 0) == 404:
                return
            raise RecordingControlError(f"stop: twilio {getattr(error, 'status', '?')}") from error
        except requests.RequestException as error:
            raise RecordingControlError(f"stop: {type(error).__name__}") from error

    def reconcile(self, message: OutgoingMessage) -> SendResult:
        started = as_utc(message.sending_started_at) or self.environment.clock.now()
        since = started - CLOCK_SKEW
        try:
            found = self.client.calls.list(to=message.address, from_=self.account.from_number,
                                           limit=RECONCILE_LIMIT)
        except TwilioException as error:
            return SendResult("unknown", error_code=rest_failure(error).error_code, error="reconcile failed")
        except requests.RequestException as error:
            return SendResult("unknown", error_code="reconcile", error=type(error).__name__)
        candidates = []
        for item in found:
            created = as_utc(item.date_created)
            if created is None or created >= since:
                candidates.append((created or since, str(item.sid)))
        taken = owned_sids(self.environment, [sid for _, sid in candidates], except_row=message.id)
        mine = sorted(candidate for candidate in candidates if candidate[1] not in taken)
        if not mine:
            return SendResult("retry", error_code="not_found", error="not at twilio")
        session_id = str(message.payload.get("session_id") or "")
        if session_id:
            self._remember_call(session_id, mine[0][1])
        return SendResult("sent", provider_id=mine[0][1])

    def _remember_call(self, session_id: str, call_sid: str) -> None:
        """Write the CallSid on the conversation (its own short transaction; the webhook does it too)."""
        try:
            key = uuid.UUID(session_id)
        except ValueError:
            return
        session = self.environment.open_session()
        try:
            conversation = session.get(ConversationSession, key)
            if conversation is not None and conversation.call_sid is None:
                conversation.call_sid = call_sid
                session.commit()
        except Exception:  # the answered-call webhook writes it too; a failure here loses nothing
            logger.exception("could not record the call sid on conversation %s", session_id)
            session.rollback()
        finally:
            session.close()


@register_channel("voice")
def make_voice(environment: ChannelEnvironment) -> ChannelAdapter:
    return VoiceAdapter(environment)
