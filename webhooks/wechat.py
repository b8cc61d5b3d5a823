"""The WeChat official account's server URL: verification (GET) and messages and events (POST).

Plain mode and safe mode (``encrypt_type=aes``, ``msg_signature``) as WeChat sends them. The
rhythm is courier's: verify (signatures compared in constant time, a timestamp more than five
minutes away refused as a replay), parse safely (size-limited, defusedxml with no DTDs and no
entities, before wechatpy sees any XML), hand a neutral :class:`InboundMessage` to the bot, and
answer with the passive reply (encrypted in safe mode) or ``success``. Refusals store nothing.

Plain mode's signature covers only the timestamp and nonce, never the body, so plain mode is
served only to an account configured for it (no ``WECHAT_AES_KEY``), and each (timestamp, nonce)
pair is accepted with one body only: the same pair again with another body is a captured signature
replayed and is refused (the same body again is WeChat redelivering, answered as the first time).
Safe mode's ``msg_signature`` covers the ciphertext, so it needs no such record.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring
from flask import Blueprint, Response, current_app, request
from sqlalchemy import Connection, Table, bindparam, delete, select
from sqlalchemy.orm import Session
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.messages import MESSAGE_TYPES
from wechatpy.replies import TextReply

from bot.conversations import BotServices
from bot.messages import InboundMessage
from bot.models import WeChatNonce
from bot.router import handle_inbound
from security.dialects import dialect_name, insert_ignoring
from security.fields import cipher_of
from web.context import request_session, service

blueprint = Blueprint("wechat", __name__, url_prefix="/webhooks/wechat")

MAX_BODY_BYTES = 64 * 1024  # WeChat's messages are a few KB; anything larger is not WeChat
REPLAY_SECONDS = 300
MAX_NONCE_CHARS = 64  # WeChat's nonces are a few digits
ACCOUNT_KEY = "careloop.wechat.account"


class RefusedError(Exception):
    """A request we answer with a 4xx and nothing else."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Account:
    token: str
    appid: str
    crypto: WeChatCrypto | None


def _account() -> Account:
    account: Account | None = current_app.extensions.get(ACCOUNT_KEY)
    if account is None:
        settings = service("settings")
        if not settings.wechat_token or "wechat" not in settings.live_channels():
            raise RefusedError(404, "the WeChat channel is not configured")
        crypto = (WeChatCrypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_appid)
                  if settings.wechat_aes_key else None)
        account = Account(settings.wechat_token, settings.wechat_appid or "", crypto)
        current_app.extensions[ACCOUNT_KEY] = account
    return account


@blueprint.errorhandler(RefusedError)
def _refused(refusal: RefusedError) -> Response:
    return Response(str(refusal), status=refusal.status, mimetype="text/plain")


# -- verification ------------------------------------------------------------------------------------
def _signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()  # noqa: S324 - WeChat's scheme


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def _verify_request(account: Account) -> tuple[str, str]:
    """Check ``signature`` over (token, timestamp, nonce) and the timestamp's age; return both."""
    timestamp = request.args.get("timestamp", "")
    nonce = request.args.get("nonce", "")
    signature = request.args.get("signature", "")
    if not signature or not _same(_signature(account.token, timestamp, nonce), signature):
        raise RefusedError(403, "bad signature")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise RefusedError(403, "bad timestamp") from None
    if abs(service("clock").now().timestamp() - sent_at) > REPLAY_SECONDS:
        raise RefusedError(403, "stale timestamp")
    return timestamp, nonce


@blueprint.get("")
def verify() -> Response:
    """WeChat's server check: echo ``echostr`` when the signature is ours."""
    _verify_request(_account())
    return Response(request.args.get("echostr", ""), mimetype="text/plain")


# -- messages -----------------------------------------------------------------------------------------
def _body() -> bytes:
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise RefusedError(413, "body too large")
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise RefusedError(413, "body too large")
    return body


def _safe_xml(data: bytes | str) -> ElementTree.Element:
    """Parse WeChat's XML with no DTD, no entities, no external references; 400 for anything else."""
    try:
        root: ElementTree.Element = safe_fromstring(data, forbid_dtd=True, forbid_entities=True,
                                                    forbid_external=True)
    except (DefusedXmlException, ElementTree.ParseError, ValueError) as problem:
        raise RefusedError(400, f"unacceptable XML ({type(problem).__name__})") from None
    if root.tag != "xml":
        raise RefusedError(400, "not a WeChat message")
    return root


def _open(account: Account, body: bytes, timestamp: str, nonce: str) -> tuple[ElementTree.Element, bytes | str]:
    """The message's XML and its safe parse: as sent (plain mode) or decrypted after its ``msg_signature``
    is checked."""
    outer = _safe_xml(body)
    if request.args.get("encrypt_type", "raw").lower() != "aes":
        if account.crypto is not None:
            # Plain mode signs no body: an account in safe mode never takes one.
            raise RefusedError(403, "this account is in safe mode: messages must be encrypted")
        return outer, body
    if account.crypto is None:
        raise RefusedError(400, "encrypted message, but no WECHAT_AES_KEY is set")
    encrypted = outer.findtext("Encrypt") or ""
    msg_signature = request.args.get("msg_signature", "")
    if not encrypted or not msg_signature:
        raise RefusedError(403 if encrypted else 400, "missing msg_signature or Encrypt")
    if not _same(_signature(account.token, timestamp, nonce, encrypted), msg_signature):
        raise RefusedError(403, "bad msg_signature")
    try:
        plain: str = account.crypto.decrypt_message({"Encrypt": encrypted}, msg_signature, timestamp, nonce)
    except InvalidAppIdException:
        raise RefusedError(403, "message for another account") from None
    except (InvalidSignatureException, ValueError, TypeError, IndexError, UnicodeDecodeError, struct.error):
        # A ciphertext that is not base64, not whole AES blocks, or too short for wechatpy's frame.
        raise RefusedError(400, "undecryptable message") from None
    return _safe_xml(plain), plain


def _message(root: ElementTree.Element, xml: bytes | str) -> Any:
    """wechatpy's message or event for XML that passed the safe parse.

    A text message, the common case and a flat list of fields, is built from the safe parse as
    wechatpy's parser would build it (text stripped, empty fields None) rather than parsed a second
    time; anything else goes through wechatpy's ``parse_message`` and its rules for events.
    """
    if (root.findtext("MsgType") or "").strip().lower() == "text" and not any(len(field) for field in root):
        return MESSAGE_TYPES["text"]({field.tag: (field.text.strip() or None) if field.text else None
                                      for field in root})
    try:
        return parse_message(xml)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise RefusedError(400, "not a WeChat message") from None


# -- plain mode's replay guard ---------------------------------------------------------------------------
NONCES = cast(Table, WeChatNonce.__table__)


def _nonce_claim(dialect: str) -> Any:
    """``INSERT ... ON CONFLICT (stamp, nonce) DO NOTHING RETURNING id``: a row back only for a new pair."""
    values = {column: bindparam(column, type_=NONCES.c[column].type)
              for column in ("id", "stamp", "nonce", "body_digest", "seen_at")}
    return insert_ignoring(dialect, NONCES, ("stamp", "nonce"), ("id",)).values(values)


def _prune_nonces(connection: Connection, now: datetime) -> None:
    """Forget pairs whose timestamp is out of the replay window (a replay of them is refused as stale).

    A hundred at a time, skipping rows another request is deleting (PostgreSQL; SQLite has one writer).
    """
    stale = (select(NONCES.c.id).where(NONCES.c.stamp < int(now.timestamp()) - REPLAY_SECONDS).limit(100)
             .with_for_update(skip_locked=True))
    connection.execute(delete(NONCES).where(NONCES.c.id.in_(stale.scalar_subquery())))


def _refuse_replayed_signature(session: Session, timestamp: str, nonce: str, body: bytes) -> None:
    """Accept this plain-mode (timestamp, nonce) pair with this body only: 403 for the pair with another body."""
    if not 0 < len(nonce) <= MAX_NONCE_CHARS:
        raise RefusedError(403, "bad nonce")
    now = service("clock").now()
    digest = cipher_of(session).blind_index("wechat_plain_body", body.decode("latin-1"))
    connection = session.connection()
    _prune_nonces(connection, now)
    stamp = int(timestamp)
    claimed = connection.execute(_nonce_claim(dialect_name(connection)), {
        "id": uuid.uuid4(), "stamp": stamp, "nonce": nonce, "body_digest": digest, "seen_at": now}).scalar()
    if claimed is not None:
        return
    seen = connection.execute(select(NONCES.c.body_digest).where(
        NONCES.c.stamp == stamp, NONCES.c.nonce == nonce)).scalar()
    if seen is None or not hmac.compare_digest(bytes(seen), digest):
        raise RefusedError(403, "signature already used")


# -- the neutral message -----------------------------------------------------------------------------------
def content_key(data: dict[str, Any]) -> str:
    """Every field of a message or event, canonically: what keys a delivery that has no MsgId."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def to_inbound(message: Any, received_at: datetime, *,
               keyed: Callable[[str], str] = str) -> InboundMessage:
    """A wechatpy message or event as the bot's neutral :class:`InboundMessage`.

    A message is keyed by its MsgId; an event (or a message without one) by ``keyed`` of its whole
    content, so two events of one user in the same second are two deliveries and a redelivery of
    one is the same. :func:`receive` passes a keyed HMAC, so the key names no one (the router
    would hash a key that holds the sender anyway).
    """
    data: dict[str, Any] = message._data
    sender = str(data.get("FromUserName") or "")
    common: dict[str, Any] = {"channel": "wechat", "sender": sender, "recipient": str(data.get("ToUserName") or ""),
                              "received_at": received_at}
    if message.type == "event":
        # wechatpy renames a scan-to-subscribe to "subscribe_scan" and strips "qrscene_" from its key.
        event = "subscribe" if message.event == "subscribe_scan" else str(data.get("Event") or message.event)
        key = data.get("EventKey")
        extra: dict[str, Any] = {}
        if data.get("Ticket"):
            extra["ticket"] = str(data["Ticket"])
        if message.event == "templatesendjobfinish":
            extra.update(msg_id=str(data.get("MsgID") or data.get("MsgId") or ""), status=str(data.get("Status", "")))
        return InboundMessage(provider_key="event:" + keyed(content_key(data)), kind="event", event=event,
                              event_key=str(key).removeprefix("qrscene_") if key else None, extra=extra, **common)
    provider_key = str(data.get("MsgId") or "content:" + keyed(content_key(data)))
    if message.type == "text":
        return InboundMessage(provider_key=provider_key, kind="text", text=str(data.get("Content") or ""), **common)
    media = {"media": message.type, "media_id": str(data.get("MediaId") or "")}
    if data.get("Recognition"):
        media["recognition"] = str(data["Recognition"])
    return InboundMessage(provider_key=provider_key, kind="media", extra=media, **common)


@blueprint.post("")
def receive() -> Response:
    """A message or event from WeChat: verify, parse, hand to the bot, answer within the 5 seconds."""
    started = time.monotonic()
    account = _account()
    timestamp, nonce = _verify_request(account)
    body = _body()
    message = _message(*_open(account, body, timestamp, nonce))
    if message is None or not message._data.get("FromUserName"):
        raise RefusedError(400, "not a WeChat message")
    session = request_session()
    if account.crypto is None:
        _refuse_replayed_signature(session, timestamp, nonce, body)
    cipher = cipher_of(session)
    inbound = to_inbound(message, service("clock").now(),
                         keyed=lambda content: cipher.blind_index("wechat_delivery", content).hex())
    services: BotServices = service("bot")
    deadline = started + services.config.passive_reply_seconds
    reply = handle_inbound(session, services, inbound, late=lambda: time.monotonic() > deadline)
    if not reply.texts:
        return Response("success", mimetype="text/plain")
    passive = TextReply(source=inbound.recipient, target=inbound.sender, content=reply.texts[0],
                        time=int(service("clock").now().timestamp())).render()
    if account.crypto is not None:
        passive = account.crypto.encrypt_message(passive, nonce, timestamp)
    return Response(passive, mimetype="application/xml")
