"""Who is writing: matching a channel identity to a patient, and binding a new WeChat user.

A WeChat user is bound either by scanning the patient's own parametrised QR code (its scene key
is a one-time token made at enrolment), or by sending their card number and then the 6-digit code
we text to the phone on file. Codes and tokens are stored as HMACs only.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, bindparam, func, select
from sqlalchemy.orm import Session, joinedload

from bot.config import BotConfig
from bot.models import BindingCode, BindingToken, ConversationSession
from bot.outbox.queue import enqueue
from bot.texts import say
from care.consents import contact_refusal
from care.identifiers import IdentifierError, normalize_card_no
from care.models import Patient, PatientStatus, StaffTask, TaskPriority, TaskStatus
from care.patients import find_by_card, find_by_openid
from care.tasks import create_task
from security.audit import Actor, log
from security.fields import EncryptedField, cipher_of, clock_of

TOKEN_PREFIX = "bind:"  # noqa: S105 - a scene-key prefix, not a secret
TOKEN_DAYS = 30  # WeChat's temporary QR codes live at most 30 days


def _digest(session: Session, purpose: str, value: str) -> bytes:
    key = cipher_of(session).key_ring.purpose_key(f"binding/{purpose}")
    return hmac.new(key, value.encode(), hashlib.sha256).digest()


# The field that names a patient on each channel (through its blind index).
SENDER_FIELDS: dict[str, EncryptedField[str]] = {
    "wechat": Patient.wechat_openid, "sms": Patient.phone, "voice": Patient.phone, "console": Patient.card_no,
}


def sender_index(session: Session, channel: str, sender: str) -> tuple[str, bytes] | None:
    """The blind-index column and value that find ``sender`` on ``channel``; None if it names no one."""
    field = SENDER_FIELDS.get(channel)
    if field is None:
        return None
    try:
        return field.index_storage, field.index_value(cipher_of(session), sender)
    except IdentifierError:
        return None


@functools.lru_cache(maxsize=8)
def sender_patient_statement(column: str) -> Select[tuple[uuid.UUID]]:
    """The id of the active patient whose blind index ``column`` equals the bound ``sender_index``.

    A family may share one phone: the newest enrolment answers for it.
    """
    patients = cast(Table, Patient.__table__)
    return (select(patients.c.id)
            .where(patients.c[column] == bindparam("sender_index", type_=patients.c[column].type),
                   patients.c.status == PatientStatus.ACTIVE.value)
            .order_by(patients.c.created_at.desc()).limit(1))


def find_correspondent(
    session: Session, channel: str, sender: str
) -> tuple[Patient | None, ConversationSession | None]:
    """The active patient behind a channel identity and their open conversation, in one query.

    The identity is the openid for WeChat, the phone for SMS and voice, the card number for the
    console. Consents come with the patient. Callers that must not race another message of the
    same patient lock the patient in an earlier statement (the router's claim does): a lock taken
    by this query would not refresh what it reads of the conversation.
    """
    found = sender_index(session, channel, sender)
    if found is None:
        return None, None
    column, index = found
    query = (
        select(Patient, ConversationSession)
        .outerjoin(ConversationSession, ConversationSession.active_patient_id == Patient.id)
        .options(joinedload(Patient.consents))
        .where(Patient.id == sender_patient_statement(column).scalar_subquery())
        .params(sender_index=index)
    )
    row = session.execute(query).unique().first()
    if row is None:
        return None, None
    return row[0], row[1]


def find_patient(session: Session, channel: str, sender: str) -> Patient | None:
    """The active patient behind a channel identity (see :func:`find_correspondent`)."""
    return find_correspondent(session, channel, sender)[0]


# -- QR tokens ------------------------------------------------------------------------------------
def new_binding_scene() -> str:
    """A fresh one-time scene key ``bind:<token>`` for a patient's QR code (kept only as a digest)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(24)


def issue_binding_token(session: Session, patient: Patient, scene: str | None = None) -> tuple[str, BindingToken]:
    """The patient's one-time QR token row for ``scene`` (a fresh scene when none is given): (scene, row)."""
    scene = scene or new_binding_scene()
    now = clock_of(session).now()
    row = BindingToken(patient_id=patient.id, token_hash=_digest(session, "token", scene.removeprefix(TOKEN_PREFIX)),
                       expires_at=now + timedelta(days=TOKEN_DAYS), created_at=now)
    session.add(row)
    return scene, row


def bind_by_scene(session: Session, openid: str, scene: str, *, actor: Actor) -> Patient | None:
    """Bind ``openid`` with a subscribe/SCAN scene key (``qrscene_bind:...`` or ``bind:...``); None if invalid."""
    key = scene.removeprefix("qrscene_")
    if not key.startswith(TOKEN_PREFIX):
        return None
    now = clock_of(session).now()
    row = session.scalars(select(BindingToken).where(
        BindingToken.token_hash == _digest(session, "token", key.removeprefix(TOKEN_PREFIX)))).one_or_none()
    if row is None or row.consumed_at is not None or row.expires_at < now:
        return None
    patient = session.get(Patient, row.patient_id)
    if patient is None or patient.status != PatientStatus.ACTIVE.value:
        return None
    row.consumed_at = now
    _bind(session, patient, openid, actor=actor, method="qr")
    return patient


def _bind(session: Session, patient: Patient, openid: str, *, actor: Actor, method: str) -> None:
    previous = find_by_openid(session, openid)
    if previous is not None and previous.id != patient.id:
        previous.wechat_openid = None
        log(session, actor=actor, action="identity.unbind", resource_type="patient", resource_id=previous.id,
            patient_id=previous.id, details={"channel": "wechat"})
    patient.wechat_openid = openid
    consent = patient.consent_for("wechat")
    if consent is not None and consent.opted_out:
        consent.opted_out = False
        consent.opted_out_at = None
    log(session, actor=actor, action="identity.bind", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"channel": "wechat", "method": method})


# -- card number + SMS code -------------------------------------------------------------------------
# What an unknown WeChat user is told never depends on whether the card number they sent names
# anyone: every card number gets the same "if it is registered, we texted a code" answer and a
# code row (with no patient, and a code nobody was sent, when there is no one we may text), so
# the codes that follow are wrong or expired exactly as for a real card. The reply never shows
# digits of the phone on file. Tries (card numbers sent, wrong codes) are counted per WeChat user
# and per card number over a day; past the limit the care team gets a task.
ATTEMPT_WINDOW = timedelta(days=1)
BINDING_CODE = "binding_code"  # the outbox purpose of the SMS code (exempt from consent: care.consents)
LIMIT_TASK_KIND = "wechat_binding"
LIMIT_TASK_NOTE = {
    "zh": "有人在微信绑定这位患者的卡号时，今天的尝试次数已达上限。请先核实身份，再帮患者完成微信绑定。",
    "en": "WeChat binding with this patient's card number reached today's limit of tries. "
          "Check who is asking, then help the patient link WeChat.",
}


@dataclass(frozen=True)
class BindingStep:
    """What happened to a message from an unbound WeChat user: a text key for the reply and its values."""

    reply_key: str
    values: dict[str, Any]
    patient: Patient | None = None


def _card_index(session: Session, card: str) -> bytes:
    return cipher_of(session).blind_index("binding_card", card)


def _pending_code(session: Session, openid: str) -> BindingCode | None:
    """The user's latest unused code of the last day, expired or not."""
    since = clock_of(session).now() - ATTEMPT_WINDOW
    query = (
        select(BindingCode)
        .where(BindingCode.openid.matches(session, openid), BindingCode.consumed_at.is_(None),
               BindingCode.created_at > since)
        .order_by(BindingCode.created_at.desc()).limit(1)
    )
    return session.scalars(query).first()


def _tries_today(session: Session, condition: ColumnElement[bool]) -> int:
    """Card numbers sent and wrong codes entered in the last day, among the codes ``condition`` picks."""
    since = clock_of(session).now() - ATTEMPT_WINDOW
    sent, wrong = session.execute(
        select(func.count(), func.coalesce(func.sum(BindingCode.attempts), 0))
        .where(condition, BindingCode.created_at > since)).one()
    return int(sent) + int(wrong)


def _over_limit(session: Session, config: BotConfig, openid: str, card_index: bytes | None) -> bool:
    limit = config.binding_attempts_per_day
    if _tries_today(session, BindingCode.openid.matches(session, openid)) >= limit:
        return True
    return card_index is not None and _tries_today(session, BindingCode.card_index == card_index) >= limit


def _limited(session: Session, values: dict[str, Any], patient_id: uuid.UUID | None, *,
             actor: Actor) -> BindingStep:
    """Stop binding for today: the care team gets a task (once while it is open) for the card's patient."""
    patient = session.get(Patient, patient_id) if patient_id is not None else None
    if patient is not None and patient.status == PatientStatus.ACTIVE.value:
        waiting = session.scalar(select(StaffTask.id).where(
            StaffTask.patient_id == patient.id, StaffTask.kind == LIMIT_TASK_KIND,
            StaffTask.status != TaskStatus.DONE.value).limit(1))
        if waiting is None:
            create_task(session, patient, kind=LIMIT_TASK_KIND, priority=TaskPriority.NORMAL.value,
                        reason="wechat_binding_limit", details={"note": dict(LIMIT_TASK_NOTE)}, actor=actor)
    log(session, actor=actor, action="identity.binding_limited", resource_type="patient",
        resource_id=patient.id if patient else None, patient_id=patient.id if patient else None,
        details={"channel": "wechat"})
    return BindingStep("bind_limited", values)


def _textable(session: Session, patient: Patient | None) -> Patient | None:
    """The patient if we may text them a code: active, a phone on file, and the consent rule lets a binding
    code go by SMS (it needs no consent of its own, but an opt-out stops it; the same rule is asked at send)."""
    if patient is None or patient.status != PatientStatus.ACTIVE.value or not patient.phone:
        return None
    if contact_refusal(session, patient, "sms", BINDING_CODE) is not None:
        return None
    return patient


def continue_binding(session: Session, config: BotConfig, openid: str, text: str, *, actor: Actor) -> BindingStep:
    """Advance binding by card number then SMS code, for a WeChat user we do not know yet.

    Answers never tell whether a card number exists; see the comment above.
    """
    values = config.clinic.placeholders()
    message = "".join(text.split())
    now = clock_of(session).now()
    pending = _pending_code(session, openid)
    if pending is not None and message.isdigit() and len(message) == 6:
        return _check_code(session, config, values, pending, openid, message, actor=actor)
    try:
        card = normalize_card_no(message)
    except IdentifierError:
        return BindingStep("welcome_bind", values)
    if not any(ch.isdigit() for ch in card):  # a greeting, not a card number: card numbers carry digits
        return BindingStep("welcome_bind", values)
    card_index = _card_index(session, card)
    found = find_by_card(session, card)
    if _over_limit(session, config, openid, card_index):
        return _limited(session, values, found.id if found else None, actor=actor)
    patient = _textable(session, found)
    code = f"{secrets.randbelow(1_000_000):06d}"
    row = BindingCode(patient_id=patient.id if patient else None, card_index=card_index, openid=openid,
                      code_hash=_digest(session, "code", code), attempts=0,
                      expires_at=now + timedelta(minutes=config.binding_code_minutes), created_at=now)
    session.add(row)
    if patient is not None and patient.phone:
        enqueue(
            session, idempotency_key=f"binding-code:{row.id}", channel="sms", kind="text", purpose=BINDING_CODE,
            address=patient.phone, payload={"text": say("bind_code_sms", patient.language, channel="sms",
                                                        **config.clinic.placeholders(), code=code)},
            patient=patient,
        )
        log(session, actor=actor, action="identity.code_sent", resource_type="patient", resource_id=patient.id,
            patient_id=patient.id, details={"channel": "sms"})
    elif found is not None:
        log(session, actor=actor, action="identity.code_withheld", resource_type="patient", resource_id=found.id,
            patient_id=found.id, details={"channel": "sms"})
    return BindingStep("bind_code_sent", values)


def _check_code(session: Session, config: BotConfig, values: dict[str, Any], pending: BindingCode, openid: str,
                message: str, *, actor: Actor) -> BindingStep:
    """A 6-digit reply to the user's latest code: bound, wrong, expired, or past today's limit."""
    now = clock_of(session).now()
    if _over_limit(session, config, openid, pending.card_index):
        return _limited(session, values, pending.patient_id, actor=actor)
    if pending.expires_at <= now or pending.attempts >= config.binding_code_attempts:
        pending.consumed_at = now  # spent: the user's next message may be their card number again
        return BindingStep("bind_code_expired", values)
    patient = session.get(Patient, pending.patient_id) if pending.patient_id is not None else None
    if patient is not None and hmac.compare_digest(pending.code_hash, _digest(session, "code", message)):
        pending.consumed_at = now
        _bind(session, patient, openid, actor=actor, method="sms_code")
        return BindingStep("bound", {**values, "name": patient.name or ""}, patient)
    pending.attempts += 1
    if _over_limit(session, config, openid, pending.card_index):
        return _limited(session, values, pending.patient_id, actor=actor)
    return BindingStep("bind_code_wrong", values)
