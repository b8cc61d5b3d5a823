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
from typing import cast

from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.orm import Session, joinedload

from bot.config import BotConfig
from bot.models import BindingCode, BindingToken, ConversationSession
from bot.outbox import enqueue
from bot.texts import say
from care.identifiers import IdentifierError, normalize_card_no
from care.models import Patient, PatientStatus
from care.patients import find_by_card, find_by_openid
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
@dataclass(frozen=True)
class BindingStep:
    """What happened to a message from an unbound WeChat user: a text key for the reply and its values."""

    reply_key: str
    values: dict[str, str]
    patient: Patient | None = None


def _pending_code(session: Session, openid: str) -> BindingCode | None:
    now = clock_of(session).now()
    query = (
        select(BindingCode)
        .where(BindingCode.openid.matches(session, openid), BindingCode.consumed_at.is_(None))
        .order_by(BindingCode.created_at.desc())
    )
    code = session.scalars(query).first()
    if code is None or code.expires_at < now:
        return None
    return code


def continue_binding(session: Session, config: BotConfig, openid: str, text: str, *, actor: Actor) -> BindingStep:
    """Advance binding by card number then SMS code, for a WeChat user we do not know yet."""
    values = {"clinic": config.clinic_name, "phone": config.clinic_phone}
    message = "".join(text.split())
    pending = _pending_code(session, openid)
    if pending is not None and message.isdigit() and len(message) == 6:
        if pending.attempts >= config.binding_code_attempts:
            return BindingStep("bind_code_expired", values)
        if hmac.compare_digest(pending.code_hash, _digest(session, "code", message)):
            pending.consumed_at = clock_of(session).now()
            patient = session.get(Patient, pending.patient_id)
            if patient is None:
                return BindingStep("bind_code_expired", values)
            _bind(session, patient, openid, actor=actor, method="sms_code")
            return BindingStep("bound", {**values, "name": patient.name or ""}, patient)
        pending.attempts += 1
        return BindingStep("bind_code_wrong", values)
    try:
        card = normalize_card_no(message)
    except IdentifierError:
        return BindingStep("welcome_bind", values)
    patient = find_by_card(session, card)
    if patient is None or patient.status != PatientStatus.ACTIVE.value or not patient.phone:
        return BindingStep("bind_card_unknown", values)
    code = f"{secrets.randbelow(1_000_000):06d}"
    now = clock_of(session).now()
    row = BindingCode(patient_id=patient.id, openid=openid, code_hash=_digest(session, "code", code), attempts=0,
                      expires_at=now + timedelta(minutes=config.binding_code_minutes), created_at=now)
    session.add(row)
    enqueue(
        session, idempotency_key=f"binding-code:{row.id}", channel="sms", kind="text", purpose="binding_code",
        address=patient.phone, payload={"text": say("bind_code_sms", patient.language, clinic=config.clinic_name,
                                                    code=code)},
        patient=patient,
    )
    log(session, actor=actor, action="identity.code_sent", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"channel": "sms"})
    return BindingStep("bind_code_sent", {**values, "tail": patient.phone[-4:]})
