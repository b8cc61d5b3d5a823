"""The SMS channel over Twilio's REST API (``messages.create``), and what Twilio reports back about it.

Twilio's ``messages.create`` takes no idempotency key, so a request that timed out after it left
may or may not have created a message. The dispatcher marks the attempt started before the call
and reports a read timeout as ``unknown``; once no live call can still be under way (its worker
dead or done with it, the attempt older than the HTTP timeout: :mod:`bot.outbox`),
:meth:`SmsAdapter.reconcile` asks Twilio instead of sending again.

Reconciliation policy: list the messages to the same number from our number sent since the
attempt started (less :data:`CLOCK_SKEW` for the two clocks' disagreement), keep those whose
body is exactly ours and whose SID no other outbox row already owns (an identical invitation sent
earlier is not this one), and take the oldest. Found: the row is ``sent`` with that SID. None: it
never reached Twilio, and it is sent now.

Errors: 21610 (the recipient replied STOP at Twilio) is permanent and opts the channel out;
21211/21614 and the other "this number cannot take SMS" codes are permanent; 429, 5xx,
authentication trouble and connections that never opened are retried with backoff; a read timeout
(or a connection dropped after the request went out) is ``unknown``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import urllib3.exceptions
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from bot import consent
from bot.channels.base import ChannelAdapter, ChannelEnvironment, OutgoingMessage, SendResult, register_channel
from bot.followups import invitation_failed
from bot.models import OutboxMessage, OutboxStatus
from bot.outbox import advance_delivery
from care.models import Patient
from security.audit import Actor
from security.fields import clock_of

logger = logging.getLogger("careloop.channels.twilio")

TWILIO_API_BASE = "https://api.twilio.com"
STATUS_PATH = "/webhooks/twilio/status"
CLOCK_SKEW = timedelta(minutes=10)
RECONCILE_LIMIT = 100

OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient"
# The number can never take this message: invalid, not a mobile, unreachable region, landline.
PERMANENT_CODES = frozenset({OPTED_OUT, 21211, 21214, 21215, 21216, 21217, 21408, 21612, 21614, 21606, 13223, 13224})
MESSAGE_FAILED_STATUSES = ("failed", "undelivered")


@dataclass(frozen=True)
class TwilioAccount:
    """One Twilio account: its credentials, our number, the API base and the public callback base."""

    account_sid: str
    auth_token: str
    from_number: str
    api_base: str
    public_url: str
    timeout: float

    @classmethod
    def from_environment(cls, environment: ChannelEnvironment) -> TwilioAccount:
        settings = environment.settings
        return cls(
            account_sid=str(settings["twilio_account_sid"]), auth_token=str(settings["twilio_auth_token"]),
            from_number=str(settings["twilio_from_number"]),
            api_base=str(settings.get("twilio_api_base") or TWILIO_API_BASE).rstrip("/"),
            public_url=str(settings.get("public_url") or environment.config.public_url).rstrip("/"),
            timeout=environment.http_timeout,
        )

    def client(self) -> Client:
        """A real REST client aimed at ``api_base`` (Twilio, or a local fake in tests)."""
        client = Client(self.account_sid, self.auth_token, http_client=TwilioHttpClient(timeout=self.timeout))
        client.api.base_url = self.api_base
        return client

    def callback(self, path: str, **query: str) -> str:
        """The public URL of one of our webhooks, with its query (Twilio signs it as it is)."""
        suffix = "&".join(f"{name}={value}" for name, value in query.items())
        return f"{self.public_url}{path}" + (f"?{suffix}" if suffix else "")

    def recording_media_url(self, recording_sid: str) -> str:
        """Where the audio of a recording is fetched: built from its SID, never from a URL we were sent."""
        return f"{self.api_base}/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording_sid}.wav"


def rest_failure(error: TwilioException) -> SendResult:
    """Map an error answer of Twilio's REST API to a send outcome."""
    status = int(getattr(error, "status", 0) or 0)
    code = getattr(error, "code", None)
    code_text = str(code) if code is not None else str(status)
    text = f"twilio {status} {code_text}"
    if code == OPTED_OUT:
        return SendResult("failed", error_code=code_text, error=text, opted_out=True)
    if isinstance(code, int) and code in PERMANENT_CODES:
        return SendResult("failed", error_code=code_text, error=text)
    if status == 429 or status >= 500 or status in (401, 403):
        # Busy, broken or misconfigured for now: nothing was created; try again later.
        return SendResult("retry", error_code=code_text, error=text)
    return SendResult("failed", error_code=code_text, error=text)


def _never_connected(error: requests.RequestException) -> bool:
    """True when the request cannot have reached Twilio (no connection was ever made)."""
    if isinstance(error, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError):
        return True
    if not isinstance(error, requests.exceptions.ConnectionError):
        return False
    reason: Any = error.args[0] if error.args else None
    inner = getattr(reason, "reason", reason)
    return isinstance(inner, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError)


def transport_failure(error: requests.RequestException) -> SendResult:
    """Map a transport error: retry when nothing went out, else unknown (reconcile later)."""
    name = type(error).__name__
    if _never_connected(error):
        return SendResult("retry", error_code="connect", error=name)
    return SendResult("unknown", error_code="timeout", error=name)


def call_provider(action: Callable[[], Any], message: OutgoingMessage) -> SendResult:
    """Run one REST call that returns a resource with a ``sid``, mapping every failure."""
    try:
        resource = action()
    except TwilioException as error:
        return rest_failure(error)
    except requests.RequestException as error:
        return transport_failure(error)
    sid = str(getattr(resource, "sid", "") or "")
    if not sid:
        logger.warning("twilio answered without a sid for outbox row %s", message.id)
        return SendResult("unknown", error_code="no_sid", error="no sid in answer")
    return SendResult("sent", provider_id=sid)


def owned_sids(environment: ChannelEnvironment, sids: Iterable[str], *, except_row: uuid.UUID) -> set[str]:
    """The SIDs among ``sids`` that other outbox rows already own (read-only look-up)."""
    wanted = [sid for sid in sids if sid]
    if not wanted:
        return set()
    session: Session = environment.open_session()
    try:
        rows = session.execute(select(OutboxMessage.provider_id).where(
            OutboxMessage.provider_id.in_(wanted), OutboxMessage.id != except_row))
        return {str(row[0]) for row in rows}
    finally:
        session.rollback()
        session.close()


def as_utc(moment: datetime | None) -> datetime | None:
    if moment is None or not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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


# -- what Twilio reports back ------------------------------------------------------------------------
STATUS_ACTOR = Actor("system", "twilio", "sms")


def message_status(session: Session, *, message_sid: str, status: str, error_code: str | None,
                   outbox_id: uuid.UUID | None) -> OutboxMessage | None:
    """Apply a message status callback: delivery state moves forward only; 21610 opts the channel out.

    ``outbox_id`` (from the callback URL we gave Twilio) finds a row whose SID we have not recorded
    yet: Twilio may call back before the dispatcher has written down what it sent.
    """
    if outbox_id is not None:
        row = session.get(OutboxMessage, outbox_id)
        if row is not None and row.provider_id is None and row.channel == "sms":
            row.provider_id = message_sid
    before = session.scalars(select(OutboxMessage.status).where(OutboxMessage.provider_id == message_sid)).first()
    row = advance_delivery(session, message_sid, status.lower(), error_code=error_code,
                           at=clock_of(session).now())
    if row is None:
        logger.info("status %s for unknown message %s", status, message_sid)
        return None
    failed = status.lower() in MESSAGE_FAILED_STATUSES
    opted_out = failed and error_code == str(OPTED_OUT)
    if opted_out and row.patient_id is not None:
        patient = session.get(Patient, row.patient_id)
        if patient is not None:
            consent.opt_out(session, patient, "sms", actor=STATUS_ACTOR, reason=f"provider:{error_code}")
    if failed and before != OutboxStatus.FAILED.value and row.status == OutboxStatus.FAILED.value:
        fail_invitation(session, row, retryable=not opted_out)
    return row


def fail_invitation(session: Session, row: OutboxMessage, *, retryable: bool) -> bool:
    """Tell the follow-up behind ``row`` that its invitation did not reach the patient.

    Only while that very invitation is the follow-up's current one: a late report about an older
    attempt must not disturb the attempt under way. Returns whether the follow-up was told.
    """
    if row.followup_id is None or row.session_id is None:
        return False
    return invitation_failed(session, row.followup_id, retryable=retryable, invitation=row.session_id)
