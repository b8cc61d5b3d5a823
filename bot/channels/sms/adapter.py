"""The SMS channel's outbound adapter: text messages over Twilio's ``messages.create``.

Twilio's ``messages.create`` takes no idempotency key, so a request that timed out after it left
may or may not have created a message. The dispatcher marks the attempt started before the call
and reports a read timeout as ``unknown``; once no live call can still be under way (its worker
dead or done with it, the attempt older than the HTTP timeout: :mod:`bot.outbox.queue`),
:meth:`SmsAdapter.reconcile` asks Twilio instead of sending again.

Reconciliation policy: list the messages to the same number from our number sent since the
attempt started (less :data:`~bot.channels.twilio_rest.CLOCK_SKEW` for the two clocks'
disagreement), keep those whose body is exactly ours and whose SID no other outbox row already
owns (an identical invitation sent earlier is not this one), and take the oldest. Found: the row
is ``sent`` with that SID. None: it never reached Twilio, and it is sent now.
"""

from __future__ import annotations

import logging
from datetime import UTC

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

logger = logging.getLogger("careloop.channels.twilio")


class SmsAdapter:
    """Sends text messages through Twilio; callbacks report delivery to ``/webhooks/twilio/status``."""

    name = "sms"
    kind = "text"
    looks_up = True

    def __init__(self, environment: ChannelEnvironment) -> None:
        self.environment = environment
        self.account = TwilioAccount.from_environment(environment)
        self.client = self.account.client()

    def send(self, message: OutgoingMessage) -> SendResult:
        body = str(message.payload.get("text") or "")
        if not body or not message.address:
            return SendResult("failed", error_code="empty", error="no text or no number")
        callback = self.account.callback(STATUS_PATH, outbox=str(message.id))
        return call_provider(lambda: self.client.messages.create(
            to=message.address, from_=self.account.from_number, body=body, status_callback=callback), message)

    def reconcile(self, message: OutgoingMessage) -> SendResult:
        """Find the message a crashed or timed-out attempt may have created (see the module's policy)."""
        started = as_utc(message.sending_started_at) or self.environment.clock.now()
        since = started - CLOCK_SKEW
        body = str(message.payload.get("text") or "")
        try:
            found = self.client.messages.list(to=message.address, from_=self.account.from_number,
                                              date_sent_after=since.astimezone(UTC), limit=RECONCILE_LIMIT)
        except TwilioException as error:
            return _cannot_tell(rest_failure(error))
        except requests.RequestException as error:
            return SendResult("unknown", error_code="reconcile", error=type(error).__name__)
        candidates = []
        for item in found:
            created = as_utc(item.date_created) or as_utc(item.date_sent)
            if item.body == body and (created is None or created >= since):
                candidates.append((created or since, str(item.sid)))
        taken = owned_sids(self.environment, [sid for _, sid in candidates], except_row=message.id)
        mine = sorted(candidate for candidate in candidates if candidate[1] not in taken)
        if mine:
            logger.info("outbox row %s reconciled: twilio has it as %s", message.id, mine[0][1])
            return SendResult("sent", provider_id=mine[0][1])
        return SendResult("retry", error_code="not_found", error="not at twilio")


def _cannot_tell(result: SendResult) -> SendResult:
    """A failed look-up says nothing about the message itself: stay unknown and ask again later."""
    return SendResult("unknown", error_code=result.error_code, error=f"reconcile: {result.error}")


@register_channel("sms")
def make_sms(environment: ChannelEnvironment) -> ChannelAdapter:
    return SmsAdapter(environment)
