"""From one inbound message to the reply: dedupe, identify, opt-out words, the conversation, the menu.

Every provider delivery is claimed in ``inbound_receipts`` by its provider key before anything
else happens; a repeated delivery (also a concurrent one) finds the claim and gets the reply that
was given the first time, and nothing is processed twice.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, make_transient_to_detached

from bot import consent, identity
from bot.conversations import (
    BotServices,
    ConversationError,
    Turn,
    answer,
    begin,
    lock_patient,
    log_inbound,
    open_conversation,
)
from bot.effects import log_message
from bot.messages import InboundMessage, Reply
from bot.models import ConversationSession, Direction, InboundReceipt, UnknownSender
from bot.outbox import advance_delivery, enqueue
from bot.rendering import render_text
from bot.texts import say
from care.models import Patient
from security.audit import Actor
from security.fields import cipher_of, clock_of

logger = logging.getLogger("careloop.bot")

# A WeChat passive reply holds one message; longer than this and the rest goes out as
# customer-service messages (WeChat text messages are limited to 2048 bytes).
PASSIVE_REPLY_CHARS = 600


@dataclass
class Claim:
    receipt: InboundReceipt | None
    previous: Reply | None


def claim_delivery(session: Session, message: InboundMessage) -> Claim:
    """Claim this delivery by its provider key, or return the reply given to it before.

    One ``INSERT ... ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite both have it): a new delivery
    costs one statement and no savepoint. On PostgreSQL a concurrent claim of the same key waits for
    the first one's transaction and then finds its committed receipt; SQLite serialises writers.
    """
    key = message.provider_key[:160]
    now = clock_of(session).now()
    receipt = InboundReceipt(channel=message.channel, provider_key=key, received_at=now)
    dialect = session.get_bind().dialect.name
    values = {"id": receipt.id, "channel": message.channel, "provider_key": key, "received_at": now}
    unique = ["channel", "provider_key"]
    statement: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        statement = postgresql_insert(InboundReceipt).values(values).on_conflict_do_nothing(index_elements=unique)
    else:  # SQLite, the other supported engine
        statement = sqlite_insert(InboundReceipt).values(values).on_conflict_do_nothing(index_elements=unique)
    claimed = session.execute(statement.returning(InboundReceipt.id)).scalar_one_or_none()
    if claimed is None:
        return Claim(None, _previous_reply(session, message.channel, key))
    make_transient_to_detached(receipt)  # the row exists now: track it without reading it back
    session.add(receipt)
    return Claim(receipt, None)


def _previous_reply(session: Session, channel: str, key: str) -> Reply:
    existing = session.scalars(select(InboundReceipt).where(
        InboundReceipt.channel == channel, InboundReceipt.provider_key == key)).one()
    return Reply.from_dict(existing.reply or {})


def handle_inbound(session: Session, services: BotServices, message: InboundMessage) -> Reply:
    """Process one inbound text or event once and return the reply for the same channel."""
    claim = claim_delivery(session, message)
    if claim.previous is not None:
        return claim.previous
    assert claim.receipt is not None  # noqa: S101 - a claim holds one or the other
    patient, conversation = identity.find_correspondent(session, message.channel, message.sender, lock=True)
    actor = Actor("patient", str(patient.id) if patient else "unknown", message.channel)
    if message.kind == "media":
        # WeChat transcribes voice notes when the account enables it; that text is an answer like any other.
        recognised = str(message.extra.get("recognition") or "").strip()
        if recognised:
            message = replace(message, kind="text", text=recognised)
    if message.kind == "event":
        reply = _event(session, services, message, patient, actor)
    elif message.kind == "media":
        lang = patient.language if patient else "zh"
        reply = Reply(texts=[say("media_unsupported", lang)], patient_id=str(patient.id) if patient else None)
    elif patient is None:
        reply = _stranger(session, services, message, actor)
    else:
        reply = _from_patient(session, services, message, patient, conversation, actor, claim.receipt)
    claim.receipt.patient_id = patient.id if patient else (uuid.UUID(reply.patient_id) if reply.patient_id else None)
    claim.receipt.reply = reply.to_dict()
    return reply


def _from_patient(session: Session, services: BotServices, message: InboundMessage, patient: Patient,
                  conversation: ConversationSession | None, actor: Actor, receipt: InboundReceipt) -> Reply:
    config = services.config
    word = consent.keyword(message.text)
    lang = patient.language
    if word in consent.STOP_WORDS:
        consent.opt_out(session, patient, message.channel, actor=actor, reason=f"keyword:{word}")
        log_inbound(session, patient, None, message.channel, message.text)
        return _texts(session, patient, message.channel, [say("opted_out", lang)])
    if word in consent.START_WORDS:
        consent.opt_in(session, patient, message.channel, actor=actor)
        return _texts(session, patient, message.channel, [say("opted_in", lang)])
    if word in consent.HELP_WORDS:
        return _texts(session, patient, message.channel,
                      [say("help", lang, clinic=config.clinic_name, phone=config.clinic_phone)])
    current = patient.consent_for(message.channel)
    if current is not None and current.opted_out:
        # The patient opted out here; only START brings the channel back.
        return Reply(patient_id=str(patient.id))
    log_inbound(session, patient, conversation, message.channel, message.text)
    turn: Turn | None = None
    try:
        if conversation is not None:
            conversation.channel = message.channel
            turn = answer(session, services, patient, conversation, message.text, actor=actor)
        elif word in config.keywords:
            turn = begin(session, services, patient, config.keywords[word], channel=message.channel, actor=actor)
    except ConversationError:
        logger.warning("conversation could not continue for patient %s", patient.id)
        turn = None
    if turn is None:
        return _texts(session, patient, message.channel, [say("menu", lang)])
    texts = render_text(turn.outputs, turn.lang)
    return _deliver(session, services, patient, message.channel, texts, receipt, turn)


def _texts(session: Session, patient: Patient, channel: str, texts: list[str]) -> Reply:
    for text in texts:
        log_message(session, patient=patient, conversation_id=None, channel=channel, direction=Direction.OUT,
                    text=text)
    return Reply(texts=texts, patient_id=str(patient.id))


def _deliver(session: Session, services: BotServices, patient: Patient, channel: str, texts: list[str],
             receipt: InboundReceipt, turn: Turn) -> Reply:
    """Answer in the channel's passive reply; on WeChat what does not fit goes through the outbox."""
    reply = Reply(patient_id=str(patient.id), session_id=str(turn.conversation.id))
    if channel != "wechat":
        reply.texts = texts
        return reply
    joined = "\n\n".join(texts)
    if len(joined) <= PASSIVE_REPLY_CHARS or len(texts) <= 1:
        reply.texts = [joined] if joined else []
        return reply
    reply.texts = [texts[0]]
    for index, text in enumerate(texts[1:], start=1):
        enqueue(session, idempotency_key=f"reply:{receipt.id}:{index}", channel="wechat", kind="text",
                purpose="reply", address=patient.wechat_openid or "", payload={"text": text}, patient=patient,
                session_id=turn.conversation.id)
        reply.deferred += 1
    return reply


def _stranger(session: Session, services: BotServices, message: InboundMessage, actor: Actor) -> Reply:
    config = services.config
    if message.channel == "wechat":
        step = identity.continue_binding(session, config, message.sender, message.text, actor=actor)
        lang = step.patient.language if step.patient else "zh"
        reply = Reply(texts=[say(step.reply_key, lang, **step.values)])
        if step.patient is not None:
            reply.patient_id = str(step.patient.id)
            log_message(session, patient=step.patient, conversation_id=None, channel="wechat",
                        direction=Direction.OUT, text=reply.texts[0])
        return reply
    if message.channel == "sms":
        index = cipher_of(session).blind_index("unknown_sender", f"{message.channel}:{message.sender}")
        seen = session.scalars(select(UnknownSender).where(
            UnknownSender.channel == message.channel, UnknownSender.address_index == index)).one_or_none()
        if seen is not None:
            return Reply()
        session.add(UnknownSender(channel=message.channel, address_index=index, first_seen_at=clock_of(session).now()))
        return Reply(texts=[say("not_registered", "zh", clinic=config.clinic_name, phone=config.clinic_phone)])
    return Reply()


def _event(session: Session, services: BotServices, message: InboundMessage, patient: Patient | None,
           actor: Actor) -> Reply:
    config = services.config
    event = (message.event or "").lower()
    if event in ("subscribe", "scan"):
        if message.event_key:
            bound = identity.bind_by_scene(session, message.sender, message.event_key, actor=actor)
            if bound is not None:
                return Reply(texts=[say("bound", bound.language, name=bound.name or "")], patient_id=str(bound.id))
        if patient is not None:
            consent.opt_in(session, patient, "wechat", actor=actor)
            return Reply(texts=[say("menu", patient.language)], patient_id=str(patient.id))
        if event == "subscribe":
            return Reply(texts=[say("welcome_bind", "zh", clinic=config.clinic_name, phone=config.clinic_phone)])
        return Reply()
    if event == "unsubscribe":
        if patient is not None:
            consent.opt_out(session, patient, "wechat", actor=actor, reason="wechat_unsubscribe")
        return Reply()
    if event == "click" and patient is not None and message.event_key:
        flow_id = config.keywords.get(message.event_key.lower())
        if flow_id is not None and open_conversation(session, patient) is None:
            lock_patient(session, patient)
            turn = begin(session, services, patient, flow_id, channel="wechat", actor=actor)
            return Reply(texts=["\n\n".join(render_text(turn.outputs, turn.lang))], patient_id=str(patient.id),
                         session_id=str(turn.conversation.id))
        return Reply(texts=[say("menu", patient.language)], patient_id=str(patient.id))
    if event == "templatesendjobfinish":
        status = str(message.extra.get("status", "")).lower()
        msg_id = str(message.extra.get("msg_id", ""))
        if msg_id:
            advance_delivery(session, msg_id, "delivered" if status == "success" else "failed",
                             error_code=status or None, at=clock_of(session).now())
        return Reply()
    return Reply()


RECEIPT_DAYS = 7


def prune_receipts(session: Session, *, limit: int = 5000) -> int:
    """Forget delivery claims older than a week (providers retry within minutes); return how many."""
    cutoff = clock_of(session).now() - timedelta(days=RECEIPT_DAYS)
    ids = list(session.scalars(select(InboundReceipt.id).where(InboundReceipt.received_at < cutoff).limit(limit)))
    if ids:
        session.execute(delete(InboundReceipt).where(InboundReceipt.id.in_(ids)))
    return len(ids)
