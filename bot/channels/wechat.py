"""The WeChat official account: outbound messages, the shared access_token, binding QR codes, passive replies.

Outbox rows of ``kind="text"`` go out as customer-service messages (``message/custom/send``, only
inside the 48-hour window after the patient's last message: ``bot.followups`` decides the kind),
``kind="template"`` as template messages (``message/template/send``; the returned ``msgid`` is kept
as the row's provider id, so the ``TEMPLATESENDJOBFINISH`` event can mark it delivered)::

    {"channel": "wechat", "kind": "text", "address": "<openid>", "payload": {"text": "..."}}
    {"channel": "wechat", "kind": "template", "address": "<openid>",
     "payload": {"template_id": "...", "data": {"first": {"value": "..."}}, "url": "https://..."}}

The HTTP calls go through wechatpy's :class:`~wechatpy.WeChatClient`, its API base pointed at
``WECHAT_API_BASE`` (the real one, or a local fake in tests). Its own token handling is replaced:
wechatpy keeps the token in one process's memory and refreshes it on every 40001 it sees, which
with several web and worker processes is a stampede on a daily-capped endpoint. Here the token
lives in ``provider_credentials`` (encrypted), is fetched from ``/cgi-bin/stable_token`` by one
refresher at a time (a lease in ``refreshing_until``), before it expires, and a rejected token is
refreshed only if nobody refreshed it since it was read (its ``generation``).

**Reconciling an unknown outcome.** WeChat offers no way to look a sent customer-service or
template message up. For a row whose outcome is unknown (the worker died after the call started,
or the answer timed out after the request left) ``reconcile`` therefore answers ``unconfirmed``,
and the dispatcher applies the purpose's delivery guarantee (:mod:`bot.outbox`): the clinic's own
messages (invitations, reminders, results, staff messages) are resent once after the lease unless
the patient has written since; replies inside a conversation are never resent. Either way the row
says ``unconfirmed`` when its fate stays unknown, never ``failed``, so a follow-up does not fall
back to another channel (and invite the same patient twice) because of a crash.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from bot.channels.base import ChannelAdapter, ChannelEnvironment, OutgoingMessage, SendResult, register_channel
from bot.config import BotConfig
from bot.identity import issue_binding_token, new_binding_scene
from bot.messages import InboundMessage, Reply
from bot.models import BindingToken, ProviderCredential
from bot.outbox import enqueue
from care.models import ChannelConsent, Patient, PatientStatus
from security.clock import Clock
from security.fields import clock_of

logger = logging.getLogger("careloop.wechat")

# WeChat's global error codes that matter to a sender.
TOKEN_REJECTED = {40001, 40014, 42001}  # invalid credential, invalid token, token expired
RETRYABLE = {-1, 45009, 45011}  # system busy, daily/minute API quota reached, API frequency limit
PERMANENT = {
    45015: "outside the 48-hour customer-service window",
    43004: "the user does not follow the account",
    40003: "invalid openid",
    43101: "the user refused template messages",
}
OPTED_OUT = {43004, 43101}

QR_EXPIRE_SECONDS = 30 * 24 * 3600  # WeChat's temporary QR codes live at most 30 days
SHOW_QR_URL = "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket={ticket}"


class WeChatApiError(Exception):
    """A WeChat API call failed in a way the caller cannot hide (no token, a refused request)."""

    def __init__(self, message: str, *, errcode: int | None = None) -> None:
        super().__init__(message)
        self.errcode = errcode


# -- the shared access_token ----------------------------------------------------------------------
@dataclass(frozen=True)
class AccessToken:
    value: str
    generation: int
    expires_at: datetime


TokenFetcher = Callable[[bool], tuple[str, int]]


class SharedAccessToken:
    """The account's access_token, shared by every process through ``provider_credentials``.

    ``current()`` gives a token that is valid for at least ``margin`` more; when none is, one
    caller takes the lease (``refreshing_until``) and fetches a new one while the others wait for
    it (or keep using the old one while it is still valid). ``after_rejection(token)`` is called
    when WeChat answered 40001/42001 to ``token``: it refreshes (forcibly) only if the stored
    generation is still that token's, else it returns the newer token somebody else fetched.
    """

    def __init__(self, open_session: Callable[[], Session], clock: Clock, fetch: TokenFetcher, *, name: str,
                 margin: timedelta = timedelta(minutes=5), lease: timedelta = timedelta(seconds=30),
                 max_wait_seconds: float = 35.0, poll_seconds: float = 0.05,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.open_session = open_session
        self.clock = clock
        self.fetch = fetch
        self.name = name
        self.margin = margin
        self.lease = lease
        self.max_wait_seconds = max_wait_seconds
        self.poll_seconds = poll_seconds
        self.sleep = sleep
        self._cached: AccessToken | None = None
        self._lock = threading.Lock()

    def current(self) -> AccessToken:
        """A token valid for a while yet, refreshing it first if needed (one refresher at a time)."""
        cached = self._cached
        if cached is not None and cached.expires_at - self.margin > self.clock.now():
            return cached
        with self._lock:  # threads of one process queue here; processes meet at the lease
            return self._obtain(stale_generation=None)

    def after_rejection(self, rejected: AccessToken) -> AccessToken:
        """A fresh token after WeChat refused ``rejected``; at most one refresh per generation."""
        with self._lock:
            return self._obtain(stale_generation=rejected.generation)

    def _obtain(self, *, stale_generation: int | None) -> AccessToken:
        deadline = time.monotonic() + self.max_wait_seconds
        while True:
            stored, took_lease = self._read_or_lease(stale_generation)
            if took_lease:
                return self._refresh(force=stale_generation is not None, generation=stored.generation if stored else 0)
            if stored is not None and stored.value and stored.expires_at > self.clock.now() and (
                    stale_generation is None or stored.generation != stale_generation):
                # Still valid (perhaps inside the margin while somebody else refreshes it): use it.
                self._cached = stored
                return stored
            if time.monotonic() > deadline:
                raise WeChatApiError("no access_token: another process holds the refresh lease")
            self.sleep(self.poll_seconds)

    def _usable(self, stored: AccessToken, stale_generation: int | None) -> bool:
        """Good enough not to refresh: newer than a rejected one, or far enough from expiry."""
        now = self.clock.now()
        if stale_generation is not None:
            return stored.generation != stale_generation and stored.expires_at > now
        return stored.expires_at - self.margin > now

    def _read_or_lease(self, stale_generation: int | None) -> tuple[AccessToken | None, bool]:
        """Read the stored token; if it will not do, try to take the refresh lease (committed at once)."""
        session = self.open_session()
        try:
            now = self.clock.now()
            row = session.scalars(select(ProviderCredential).where(ProviderCredential.name == self.name)).one_or_none()
            if row is None:
                session.add(ProviderCredential(name=self.name, value=None, expires_at=None, generation=0,
                                               refreshing_until=now + self.lease, updated_at=now))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    return None, False  # another process created it (and holds the lease) just now
                return None, True
            stored = AccessToken(row.value or "", row.generation, row.expires_at or now)
            if stored.value and self._usable(stored, stale_generation):
                session.rollback()
                return stored, False
            taken = session.execute(
                update(ProviderCredential)
                .where(ProviderCredential.name == self.name, ProviderCredential.generation == row.generation,
                       or_(ProviderCredential.refreshing_until.is_(None), ProviderCredential.refreshing_until < now))
                .values(refreshing_until=now + self.lease)
            )
            session.commit()
            return stored, bool(taken.rowcount)  # type: ignore[attr-defined]
        finally:
            session.close()

    def _refresh(self, *, force: bool, generation: int) -> AccessToken:
        try:
            value, expires_in = self.fetch(force)
        except BaseException:
            self._release(generation)
            raise
        session = self.open_session()
        try:
            now = self.clock.now()
            row = session.scalars(select(ProviderCredential).where(ProviderCredential.name == self.name)).one()
            row.value = value
            row.expires_at = now + timedelta(seconds=expires_in)
            row.generation = generation + 1
            row.refreshing_until = None
            row.updated_at = now
            token = AccessToken(value, row.generation, row.expires_at)
            session.commit()
        finally:
            session.close()
        logger.info("wechat access_token refreshed (generation %d)", token.generation)
        self._cached = token
        return token

    def _release(self, generation: int) -> None:
        session = self.open_session()
        try:
            session.execute(update(ProviderCredential)
                            .where(ProviderCredential.name == self.name, ProviderCredential.generation == generation)
                            .values(refreshing_until=None))
            session.commit()
        finally:
            session.close()


# -- the API client ---------------------------------------------------------------------------------
class _Client(WeChatClient):  # type: ignore[misc]  # wechatpy ships no types
    """wechatpy's client on a configurable API base, using the token its caller hands it."""

    def __init__(self, appid: str, secret: str, api_base: str, timeout: tuple[float, float]) -> None:
        super().__init__(appid, secret, timeout=timeout, auto_retry=False)
        self.API_BASE_URL = f"{api_base.rstrip('/')}/cgi-bin/"
        self._local = threading.local()

    @property
    def access_token(self) -> str:
        token: str = self._local.token
        return token

    @contextmanager
    def using(self, token: AccessToken) -> Iterator[None]:
        self._local.token = token.value
        try:
            yield
        finally:
            self._local.token = None

    def fetch_access_token(self) -> Any:
        raise WeChatApiError("tokens come from the shared store, never from wechatpy's own fetch")


class WeChatApi:
    """The calls Careloop makes to WeChat, each with the shared token and one refresh on rejection."""

    def __init__(self, environment: ChannelEnvironment) -> None:
        settings = environment.settings
        self.appid = str(settings["wechat_appid"])
        self.secret = str(settings["wechat_secret"])
        self.api_base = str(settings.get("wechat_api_base") or "https://api.weixin.qq.com").rstrip("/")
        self.timeout = (min(3.05, environment.http_timeout), environment.http_timeout)
        self.client = _Client(self.appid, self.secret, self.api_base, self.timeout)
        self.tokens = SharedAccessToken(environment.open_session, environment.clock, self._stable_token,
                                        name=f"wechat_access_token:{self.appid}")

    def _stable_token(self, force: bool) -> tuple[str, int]:
        """Fetch a token from ``/cgi-bin/stable_token`` (wechatpy 1.8 knows only the old endpoint)."""
        body = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret,
                "force_refresh": force}
        try:
            response = self.client._http.post(f"{self.api_base}/cgi-bin/stable_token", json=body,
                                              timeout=self.timeout)
            response.raise_for_status()
            result = response.json()
        except (requests.RequestException, ValueError) as error:
            raise WeChatApiError(f"stable_token unreachable ({type(error).__name__})") from error
        if result.get("errcode"):
            raise WeChatApiError(f"stable_token refused: {result.get('errcode')}", errcode=int(result["errcode"]))
        return str(result["access_token"]), int(result.get("expires_in") or 7200)

    def call(self, invoke: Callable[[_Client], dict[str, Any]]) -> dict[str, Any]:
        """Run one API call; a rejected token is refreshed (once, generation-checked) and the call repeated."""
        token = self.tokens.current()
        try:
            with self.client.using(token):
                return invoke(self.client)
        except WeChatClientException as error:
            if _errcode(error) not in TOKEN_REJECTED:
                raise
            logger.info("wechat refused access_token generation %d (%s); refreshing once", token.generation,
                        _errcode(error))
        token = self.tokens.after_rejection(token)
        with self.client.using(token):
            return invoke(self.client)


def _errcode(error: WeChatClientException) -> int | None:
    code = getattr(error, "errcode", None)
    return int(code) if code is not None else None


def _before_request_left(error: requests.RequestException) -> bool:
    """Whether a transport failure happened before WeChat could have seen the request."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    if isinstance(error, requests.ConnectionError):
        reason = getattr(error.args[0], "reason", None) if error.args else None
        names = {type(reason).__name__, type(error.args[0]).__name__ if error.args else ""}
        return bool(names & {"NewConnectionError", "ConnectTimeoutError", "NameResolutionError"})
    return False


def send_result_of(error: Exception) -> SendResult:
    """Map a failed WeChat call to the dispatcher's outcome: WeChat's errcode and words of ours.

    WeChat's ``errmsg`` is never passed on: it carries hints such as the openid the call named
    (``invalid openid hint: [o6_bm...] rid: ...``), and the outcome is stored in plain columns.
    """
    if isinstance(error, WeChatClientException):
        code = _errcode(error)
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        if code is None:
            if status is not None and int(status) >= 500:
                return SendResult("retry", error_code=f"http_{status}", error="WeChat server error")
            if status is not None and int(status) == 429:
                return SendResult("retry", error_code="http_429", error="rate limited")
            return SendResult("failed", error_code=f"http_{status}", error="WeChat refused the request")
        if code in RETRYABLE:
            return SendResult("retry", error_code=str(code), error="WeChat busy or over its quota")
        if code in TOKEN_REJECTED:
            return SendResult("retry", error_code=str(code), error="WeChat refused the access_token")
        reason = PERMANENT.get(code) or "WeChat refused the message"
        return SendResult("failed", error_code=str(code), error=reason, opted_out=code in OPTED_OUT)
    if isinstance(error, WeChatApiError):
        return SendResult("retry", error_code=str(error.errcode or "token"), error=str(error))
    if isinstance(error, requests.RequestException):
        if _before_request_left(error):
            return SendResult("retry", error_code="connect", error=type(error).__name__)
        return SendResult("unknown", error_code="timeout", error=type(error).__name__)
    raise error


# -- the outbound adapter -----------------------------------------------------------------------------
class WeChatAdapter:
    """Customer-service and template messages through the official account's API."""

    name = "wechat"
    kind = "text"
    looks_up = False  # WeChat offers no look-up of a sent message

    def __init__(self, environment: ChannelEnvironment) -> None:
        self.config = environment.config
        self.api = WeChatApi(environment)

    def send(self, message: OutgoingMessage) -> SendResult:
        if message.kind not in ("text", "template"):
            return SendResult("failed", error_code="kind", error=f"WeChat cannot send {message.kind!r} messages")
        template_id = message.payload.get("template_id") or self.config.wechat_template(message.purpose)
        if message.kind == "template" and not template_id:
            return SendResult("failed", error_code="template", error="no WeChat template id configured")
        try:
            if message.kind == "template":
                data = message.payload.get("data") or {"first": {"value": str(message.payload.get("text", ""))}}
                result = self.api.call(lambda client: client.message.send_template(
                    message.address, template_id, data, url=message.payload.get("url")))
                return SendResult("sent", provider_id=str(result.get("msgid") or "") or None)
            self.api.call(lambda client: client.message.send_text(message.address, str(message.payload.get("text"))))
        except (WeChatClientException, WeChatApiError, requests.RequestException) as error:
            return send_result_of(error)
        return SendResult("sent")

    def reconcile(self, message: OutgoingMessage) -> SendResult:
        """WeChat cannot look a message up: its fate stays unknown (see the module's docstring)."""
        return SendResult("unconfirmed", error_code="no_lookup", error="WeChat has no message lookup")


@register_channel("wechat")
def make_wechat(environment: ChannelEnvironment) -> ChannelAdapter:
    return WeChatAdapter(environment)


# -- binding QR codes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BindingQr:
    ticket: str
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class IssuedQr:
    """A QR code WeChat made for a scene, not yet kept on a binding token."""

    scene: str
    ticket: str
    expire_seconds: int


def request_binding_qr(adapter: WeChatAdapter, scene: str | None = None) -> IssuedQr:
    """Ask WeChat for a parametrised QR code (30 days) carrying a fresh one-time ``bind:<token>`` scene.

    It touches no database transaction of the caller's (the access_token comes through the shared
    store's own short sessions), so call it with no transaction open: on SQLite an open write
    transaction would make the token store wait for it.

    Raises:
        WeChatApiError: WeChat would not make the code (or no token could be had).
    """
    scene = scene or new_binding_scene()
    body = {"expire_seconds": QR_EXPIRE_SECONDS, "action_name": "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": scene}}}
    try:
        result = adapter.api.call(lambda client: client.qrcode.create(body))
    except (WeChatClientException, requests.RequestException) as error:
        code = _errcode(error) if isinstance(error, WeChatClientException) else None
        raise WeChatApiError(f"WeChat would not make the QR code ({type(error).__name__})", errcode=code) from error
    return IssuedQr(scene=scene, ticket=str(result["ticket"]),
                    expire_seconds=int(result.get("expire_seconds") or QR_EXPIRE_SECONDS))


def keep_binding_qr(session: Session, patient: Patient, issued: IssuedQr) -> BindingQr:
    """Keep a QR code WeChat made as the patient's binding token: scanning it binds the scanner to this
    patient once (subscribe, or SCAN for a follower). The caller commits."""
    _scene, row = issue_binding_token(session, patient, issued.scene)
    row.qr_ticket = issued.ticket
    row.expires_at = min(row.expires_at, row.created_at + timedelta(seconds=issued.expire_seconds))
    return BindingQr(ticket=issued.ticket, url=SHOW_QR_URL.format(ticket=quote(issued.ticket, safe="")),
                     expires_at=row.expires_at)


QR_RENEW_BEFORE = timedelta(days=3)


def patients_needing_binding_qr(session: Session, *, limit: int) -> list[uuid.UUID]:
    """Enrolled patients not bound on WeChat and not opted out of it, without a code that lives on
    for more than three days (made at enrolment, renewed before its 30 days run out)."""
    now = clock_of(session).now()
    live_code = (
        select(BindingToken.id)
        .where(BindingToken.patient_id == Patient.id, BindingToken.consumed_at.is_(None),
               BindingToken.expires_at > now + QR_RENEW_BEFORE, BindingToken.qr_ticket.column().is_not(None))
        .exists()
    )
    opted_out = (
        select(ChannelConsent.id)
        .where(ChannelConsent.patient_id == Patient.id, ChannelConsent.channel == "wechat",
               ChannelConsent.opted_out.is_(True))
        .exists()
    )
    query = (
        select(Patient.id)
        .where(Patient.status == PatientStatus.ACTIVE.value, Patient.wechat_openid.index_column().is_(None),
               ~live_code, ~opted_out)
        .order_by(Patient.created_at).limit(limit)
    )
    return list(session.scalars(query))


UnitOfWork = Callable[[], AbstractContextManager[Session]]


class BindingQrJob:
    """The worker's tick that gives every unbound patient a live binding QR code (self-committing).

    Three steps, none inside another: a read of who needs a code; WeChat's calls, with no
    transaction open (the access_token store opens its own short ones); one write of the codes
    made. A WeChat failure stops the batch (the next tick retries); a code made for a patient who
    was bound meanwhile is simply not kept.
    """

    def __init__(self, adapter: WeChatAdapter, unit_of_work: UnitOfWork, *, limit: int = 20) -> None:
        self.adapter = adapter
        self.unit_of_work = unit_of_work
        self.limit = limit

    def tick(self) -> int:
        """Make the codes that are due; return how many were kept."""
        with self.unit_of_work() as session:
            patient_ids = patients_needing_binding_qr(session, limit=self.limit)
        issued: list[tuple[uuid.UUID, IssuedQr]] = []
        for patient_id in patient_ids:
            try:
                issued.append((patient_id, request_binding_qr(self.adapter)))
            except WeChatApiError as error:
                logger.warning("binding QR for patient %s not made: %s", patient_id, error)
                break
        if not issued:
            return 0
        with self.unit_of_work() as session:
            still = set(patients_needing_binding_qr(session, limit=max(self.limit, len(issued))))
            kept = 0
            for patient_id, qr in issued:
                patient = session.get(Patient, patient_id)
                if patient is not None and patient_id in still:
                    keep_binding_qr(session, patient, qr)
                    kept += 1
        return kept


# -- the 5-second rule ----------------------------------------------------------------------------------
def settle_passive_reply(session: Session, config: BotConfig, message: InboundMessage, reply: Reply,
                         elapsed_seconds: float) -> Reply:
    """Fit a new reply into WeChat's passive response; what does not fit goes out as customer-service messages.

    The passive response holds one message and must leave within WeChat's 5 seconds. If handling
    took longer than ``config.passive_reply_seconds`` the webhook answers "success" and every text
    is queued (WeChat has given up on the response by then); otherwise the first text is the
    passive reply and the rest is queued. The router keeps the settled reply on the delivery's
    receipt, so a repeated delivery is answered the same way.
    """
    late = elapsed_seconds > config.passive_reply_seconds
    keep = [] if late else reply.texts[:1]
    overflow = reply.texts[len(keep):]
    if not overflow:
        return reply
    patient = session.get(Patient, uuid.UUID(reply.patient_id)) if reply.patient_id else None
    for index, text in enumerate(overflow):
        enqueue(session, idempotency_key=f"wechat-reply:{message.provider_key}:{index}"[:160], channel="wechat",
                kind="text", purpose="reply", address=message.sender, payload={"text": text}, patient=patient,
                session_id=uuid.UUID(reply.session_id) if reply.session_id else None)
    if late:
        logger.warning("wechat reply took %.1f s; sent as %d customer-service message(s)", elapsed_seconds,
                       len(overflow))
    return Reply(texts=keep, patient_id=reply.patient_id, session_id=reply.session_id,
                 deferred=reply.deferred + len(overflow), voice=reply.voice)
