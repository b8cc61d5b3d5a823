"""From one inbound message to the reply: dedupe, identify, opt-out words, the conversation, the menu.

Every provider delivery is claimed in ``inbound_receipts`` by its provider key before anything
else happens; a repeated delivery (also a concurrent one) finds the claim and gets the reply that
was given the first time, and nothing is processed twice.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import BindParameter, Select, Table, bindparam, delete, literal, null, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.sql.dml import ReturningInsert
from sqlalchemy.sql.elements import ColumnElement

from bot import consent, driver_statements, failures, free_text, identity, plain_turns
from bot.conversations import (
    BotServices,
    ConversationError,
    Turn,
    answer,
    begin,
    log_inbound,
    open_conversation,
)
from bot.effects import log_message
from bot.messages import InboundMessage, Reply
from bot.models import ConversationSession, Direction, InboundReceipt, UnknownSender
from bot.outbox import advance_delivery, enqueue
from bot.rendering import render_text, split_reply
from bot.texts import say
from care.models import Patient
from security.audit import Actor
from security.fields import cipher_of, clock_of

logger = logging.getLogger("careloop.bot")


@dataclass(frozen=True)
class Delivery:
    """A claimed delivery's receipt row, as inserted (its reply comes when the message is handled)."""

    id: uuid.UUID
    channel: str
    provider_key: str
    received_at: datetime

    @classmethod
    def of(cls, session: Session, message: InboundMessage) -> Delivery:
        """The delivery's claim; a provider key that carries the sender (an openid, a phone) is kept as its
        keyed HMAC, so no receipt names anyone in clear and a redelivery still finds the same key."""
        key = message.provider_key
        if message.sender and message.sender in key:
            key = "h:" + cipher_of(session).blind_index("inbound_receipt", f"{message.channel}:{key}").hex()
        return cls(uuid.uuid4(), message.channel, key[:160], clock_of(session).now())

    def track(self, session: Session, patient_id: uuid.UUID | None) -> InboundReceipt:
        """The receipt (claimed for ``patient_id``) as an object of the session; the row is not read back."""
        receipt = InboundReceipt(id=self.id, channel=self.channel, provider_key=self.provider_key,
                                 patient_id=patient_id, received_at=self.received_at)
        make_transient_to_detached(receipt)
        session.add(receipt)
        return receipt


RECEIPTS = cast(Table, InboundReceipt.__table__)


def _bound(table: Table, column: str) -> BindParameter[Any]:
    return bindparam(column, type_=table.c[column].type)


@functools.lru_cache(maxsize=8)
def _claim_statement(dialect: str, patient: ColumnElement[Any] | None = None) -> ReturningInsert[tuple[uuid.UUID]]:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` of a receipt (PostgreSQL and SQLite both have it).

    The receipt names its patient from the start (``patient``: an expression; default a bound
    ``patient_id``), so the reply written later changes no indexed column.
    """
    values: dict[str, Any] = {column: _bound(RECEIPTS, column)
                              for column in ("id", "channel", "provider_key", "received_at")}
    values["patient_id"] = patient if patient is not None else _bound(RECEIPTS, "patient_id")
    unique = ["channel", "provider_key"]
    statement: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        statement = postgresql_insert(RECEIPTS).values(values).on_conflict_do_nothing(index_elements=unique)
    else:  # SQLite, the other supported engine
        statement = sqlite_insert(RECEIPTS).values(values).on_conflict_do_nothing(index_elements=unique)
    return statement.returning(RECEIPTS.c.id)


@functools.lru_cache(maxsize=8)
def _claim_and_lock_statement(column: str | None) -> Select[Any]:
    """PostgreSQL, one statement: lock the patient's row (a ``FOR UPDATE`` CTE), claim the delivery for them
    (a data-modifying CTE); answer both ids, and what a plain turn reads of the patient."""
    if column is None:
        claim = _claim_statement("postgresql", null()).cte("claim")
        return select(select(claim.c.id).scalar_subquery(), null()).add_cte(claim)
    locked = identity.sender_patient_statement(column).with_for_update().cte("locked")
    claim = _claim_statement("postgresql", select(locked.c.id).scalar_subquery()).cte("claim")
    one = select(literal(1).label("one")).subquery("one")
    ids = (select(select(claim.c.id).scalar_subquery(), locked.c.id)
           .select_from(one.outerjoin(locked, true())).add_cte(claim))
    return plain_turns.read_alongside(ids, locked.c.id, "postgresql")


def claim_delivery(session: Session, message: InboundMessage) -> tuple[InboundReceipt | None, Reply | None]:
    """Claim this delivery by its provider key: (its new receipt, None), or (None, the reply given to it before).

    A new delivery costs one statement and no savepoint. On PostgreSQL a concurrent claim of the
    same key waits for the first one's transaction and then finds its committed receipt; SQLite
    serialises writers.
    """
    delivery = Delivery.of(session, message)
    connection = session.connection()
    claimed = connection.execute(_claim_statement(connection.dialect.name),
                                 {**vars(delivery), "patient_id": None}).scalar_one_or_none()
    if claimed is None:
        return None, _previous_reply(session, delivery.channel, delivery.provider_key)
    return delivery.track(session, None), None


@dataclass(frozen=True)
class Claimed:
    """What claiming a delivery found: the new receipt or the reply given before, the sender's patient,
    and (PostgreSQL) what a plain turn reads of them, read by the statement that took the lock."""

    delivery: Delivery | None
    previous: Reply | None
    patient_id: uuid.UUID | None
    read: Sequence[Any] | None = None


def _claim_and_lock(session: Session, message: InboundMessage) -> Claimed:
    """Claim the delivery and lock the active patient behind its sender.

    PostgreSQL does both in one statement, so one patient's messages are handled one at a time;
    the statement's snapshot may predate the previous holder's commit, so what it read is
    written back only if still current (:class:`plain_turns.StaleTurnError`), and every other
    read is a later statement. SQLite's ``BEGIN IMMEDIATE`` already serialises writers: a lookup,
    then a claim.
    """
    delivery = Delivery.of(session, message)
    connection = session.connection()
    found = identity.sender_index(session, message.channel, message.sender)
    column, index = found if found is not None else (None, None)
    parameters = {**vars(delivery), "sender_index": index, "channel": message.channel}
    read: Sequence[Any] | None = None
    if connection.dialect.name == "postgresql":
        (row,) = driver_statements.fetch_all(connection, _claim_and_lock_statement(column), parameters)
        claimed, patient_id, read = row[0], row[1], tuple(row[2:]) if column else None
    else:
        patient_id = (connection.execute(identity.sender_patient_statement(column), parameters).scalar() if column
                      else None)
        claimed = connection.execute(_claim_statement("sqlite"), {**parameters, "patient_id": patient_id}).scalar()
    if claimed is None:
        return Claimed(None, _previous_reply(session, delivery.channel, delivery.provider_key), patient_id)
    return Claimed(delivery, None, patient_id, read)


def _previous_reply(session: Session, channel: str, key: str) -> Reply:
    existing = session.scalars(select(InboundReceipt).where(
        InboundReceipt.channel == channel, InboundReceipt.provider_key == key)).one()
    return Reply.from_dict(existing.reply or {})


def _as_is(reply: Reply) -> Reply:
    return reply


def handle_inbound(session: Session, services: BotServices, message: InboundMessage, *,
                   settle: Callable[[Reply], Reply] = _as_is) -> Reply:
    """Process one inbound text or event once and return the reply for the same channel.

    ``settle`` fits a new reply to its channel (WeChat's passive-reply deadline) before it is kept
    on the delivery's receipt; a repeated delivery gets the kept reply as it is.
    """
    try:
        try:
            return _handle(session, services, message, settle, plain=True)
        except plain_turns.StaleTurnError:
            # Another message of the patient's was committed while this one waited for the lock.
            session.rollback()
            return _handle(session, services, message, settle, plain=False)
    except Exception as failure:  # noqa: BLE001 - a failed turn is answered, never turned into a redelivery
        session.rollback()
        failures.log_failure(failure, channel=message.channel, what="a turn")
        return _after_failure(session, services, message, settle)


def _after_failure(session: Session, services: BotServices, message: InboundMessage,
                   settle: Callable[[Reply], Reply]) -> Reply:
    """Claim the delivery again (the failed turn's claim was rolled back) and answer it with the apology."""
    receipt, previous = claim_delivery(session, message)
    if receipt is None:
        assert previous is not None  # noqa: S101 - a claim holds one or the other
        return previous
    reply = settle(failures.apologise(session, services, message, receipt.id))
    receipt.patient_id = uuid.UUID(reply.patient_id) if reply.patient_id else None
    receipt.reply = reply.to_dict()
    return reply


def _handle(session: Session, services: BotServices, message: InboundMessage, settle: Callable[[Reply], Reply], *,
            plain: bool) -> Reply:
    claimed = _claim_and_lock(session, message)
    delivery, patient_id = claimed.delivery, claimed.patient_id
    if delivery is None:
        assert claimed.previous is not None  # noqa: S101 - a claim holds one or the other
        return claimed.previous
    if message.kind == "media":
        # WeChat transcribes voice notes when the account enables it; that text is an answer like any other.
        recognised = str(message.extra.get("recognition") or "").strip()
        if recognised:
            message = replace(message, kind="text", text=recognised)
    if plain and patient_id is not None and message.kind == "text":
        answered = plain_turns.answer_plainly(session, services, message, patient_id, delivery.id, settle,
                                              read=claimed.read)
        if answered is not None:
            return answered
    receipt = delivery.track(session, patient_id)
    # The router holds the patient's lock since the claim; this later read sees the conversation as left.
    patient, conversation = identity.find_correspondent(session, message.channel, message.sender)
    actor = Actor("patient", str(patient.id) if patient else "unknown", message.channel)
    if message.kind == "event":
        reply = _event(session, services, message, patient, actor)
    elif message.kind == "media":
        lang = patient.language if patient else "zh"
        reply = Reply(texts=[say("media_unsupported", lang)], patient_id=str(patient.id) if patient else None)
    elif patient is None:
        reply = _stranger(session, services, message, actor)
    else:
        reply = _from_patient(session, services, message, patient, conversation, actor, receipt)
    reply = settle(reply)
    receipt.patient_id = patient.id if patient else (uuid.UUID(reply.patient_id) if reply.patient_id else None)
    receipt.reply = reply.to_dict()
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
        if conversation is None and word not in config.keywords and not free_text.wants_the_menu(message.text):
            texts = free_text.answer_free_text(session, config, patient, message.channel, message.text)
            return _texts(session, patient, message.channel, texts)
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
    kept, overflow = split_reply(channel, texts)
    reply = Reply(texts=kept, patient_id=str(patient.id), session_id=str(turn.conversation.id))
    for index, text in enumerate(overflow, start=len(kept)):
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
