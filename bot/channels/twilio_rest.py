"""Twilio's REST API as the SMS and the voice channel both use it.

The account (credentials, our number, the API base, the public base of our callbacks), a REST
client aimed at that base (Twilio, or a local fake in tests), what an error answer or a transport
failure means to the dispatcher, and the look-ups that reconcile an attempt whose outcome was
unknown: Twilio's ``messages.create`` and ``calls.create`` take no idempotency key, so a request
that timed out after it left may or may not have created something (see :mod:`bot.channels.sms`).

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

from bot.channels.base import ChannelEnvironment, OutgoingMessage, SendResult
from bot.models import OutboxMessage

logger = logging.getLogger("careloop.channels.twilio")

TWILIO_API_BASE = "https://api.twilio.com"
STATUS_PATH = "/webhooks/twilio/status"
CLOCK_SKEW = timedelta(minutes=10)
RECONCILE_LIMIT = 100

OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient"
# The number can never take this message: invalid, not a mobile, unreachable region, landline.
PERMANENT_CODES = frozenset({OPTED_OUT, 21211, 21214, 21215, 21216, 21217, 21408, 21612, 21614, 21606, 13223, 13224})


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
