"""The voice channel: automated follow-up calls placed through Twilio's ``calls.create``.

The outbox row of a call (kind ``call``) carries ``{"record": bool, "session_id": ...}``. The call
asks Twilio for answering-machine detection and status callbacks; it is recorded only when the
patient gave recording consent (``record`` is then sent, and never otherwise). When the patient
answers, Twilio fetches ``/webhooks/twilio/voice`` and the conversation goes on there
(:mod:`bot.calls`). The CallSid becomes the row's ``provider_id`` and the conversation's ``call_sid``.

Reconciliation follows the SMS policy: calls to the same number from our number created since the
attempt started (less the clock skew) whose SID no other row owns; the oldest is ours.
"""

from __future__ import annotations

import logging
import uuid

import requests
from twilio.base.exceptions import TwilioException

from bot.channels.base import ChannelAdapter, ChannelEnvironment, OutgoingMessage, SendResult, register_channel
from bot.channels.sms import (
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
        if message.payload.get("record") is True:
            # Only with the patient's recording consent; without it the parameter is not sent at all.
            options["record"] = True
            options["recording_status_callback"] = self.account.callback(RECORDING_PATH, purpose="call", **query)
            options["recording_status_callback_event"] = ["completed"]
        result = call_provider(lambda: self.client.calls.create(**options), message)
        if result.outcome == "sent" and result.provider_id and session_id:
            self._remember_call(session_id, result.provider_id)
        return result

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
