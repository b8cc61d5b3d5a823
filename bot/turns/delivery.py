"""Claiming a provider's delivery and locking the patient behind it: the first step of every turn.

Every provider delivery is claimed in ``inbound_receipts`` by its provider key before anything
else happens; a repeated delivery (also a concurrent one) finds the claim and gets the reply that
was given the first time, and nothing is processed twice. The same step locks the active patient
behind the sender, so one patient's messages are handled one at a time.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, Select, bindparam, delete, literal, null, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement

from bot import identity
from bot.messages import InboundMessage, Reply
from bot.models import InboundReceipt
from bot.turns.context import read_alongside
from bot.turns.scene import Scene, as_loaded, table_of
from security.dialects import dialect_name, fetch_all, has_row_locks, insert_ignoring
from security.fields import cipher_of, clock_of

RECEIPTS = table_of(InboundReceipt)
_CLAIMED_COLUMNS = ("id", "channel", "provider_key", "received_at")
_NOT_YET = {InboundReceipt.reply.storage: None}  # a claim has no reply yet


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

    def keep(self, session: Session, reply: Reply, patient_id: uuid.UUID | None) -> None:
        """Keep ``reply`` on the receipt, for a repeated delivery: an update of the patient's scene when the
        claim named them (``patient_id``), written with the turn's rows; else by the receipt's object, which
        then names the patient the turn bound to the sender, if any."""
        if patient_id is not None:
            Scene.of(session, patient_id).update(InboundReceipt, self.id, {"reply": reply.to_dict()})
            return
        receipt = self.track(session, None)
        receipt.patient_id = uuid.UUID(reply.patient_id) if reply.patient_id else None
        receipt.reply = reply.to_dict()

    def track(self, session: Session, patient_id: uuid.UUID | None) -> InboundReceipt:
        """The receipt (claimed for ``patient_id``) as an object of the session; the row is not read back."""
        return as_loaded(session, InboundReceipt, {
            "id": self.id, "channel": self.channel, "provider_key": self.provider_key, "patient_id": patient_id,
            "received_at": self.received_at, **_NOT_YET})


def _bound(column: str) -> BindParameter[Any]:
    return bindparam(column, type_=RECEIPTS.c[column].type)


@functools.lru_cache(maxsize=8)
def _claim_statement(dialect: str, patient: ColumnElement[Any] | None = None) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` of a receipt.

    The receipt names its patient from the start (``patient``: an expression; default a bound
    ``patient_id``), so the reply written later changes no indexed column.
    """
    values: dict[str, Any] = {column: _bound(column) for column in _CLAIMED_COLUMNS}
    values["patient_id"] = patient if patient is not None else _bound("patient_id")
    return insert_ignoring(dialect, RECEIPTS, ("channel", "provider_key"), ("id",)).values(values)


@functools.lru_cache(maxsize=8)
def _claim_and_lock_statement(column: str | None) -> Select[Any]:
    """Where rows lock one by one, one statement: lock the patient's row (a ``FOR UPDATE`` CTE), claim the
    delivery for them (a data-modifying CTE); answer both ids, and what a turn reads of the patient."""
    if column is None:
        claim = _claim_statement("postgresql", null()).cte("claim")
        return select(select(claim.c.id).scalar_subquery(), null()).add_cte(claim)
    locked = identity.sender_patient_statement(column).with_for_update().cte("locked")
    claim = _claim_statement("postgresql", select(locked.c.id).scalar_subquery()).cte("claim")
    one = select(literal(1).label("one")).subquery("one")
    ids = (select(select(claim.c.id).scalar_subquery(), locked.c.id)
           .select_from(one.outerjoin(locked, true())).add_cte(claim))
    return read_alongside(ids, locked.c.id, versioned=True)


def claim_delivery(session: Session, message: InboundMessage) -> tuple[InboundReceipt | None, Reply | None]:
    """Claim this delivery by its provider key: (its new receipt, None), or (None, the reply given to it before).

    A new delivery costs one statement and no savepoint. On PostgreSQL a concurrent claim of the
    same key waits for the first one's transaction and then finds its committed receipt; SQLite
    serialises writers.
    """
    delivery = Delivery.of(session, message)
    claimed = session.connection().execute(_claim_statement(dialect_name(session)),
                                           {**vars(delivery), "patient_id": None}).scalar_one_or_none()
    if claimed is None:
        return None, previous_reply(session, delivery.channel, delivery.provider_key)
    return delivery.track(session, None), None


@dataclass(frozen=True)
class Claimed:
    """What claiming a delivery found: the new receipt or the reply given before, the sender's patient,
    and (where rows lock one by one) what a turn reads of them, read by the statement that took the lock."""

    delivery: Delivery | None
    previous: Reply | None
    patient_id: uuid.UUID | None
    read: Sequence[Any] | None = None


def claim_and_lock(session: Session, message: InboundMessage) -> Claimed:
    """Claim the delivery and lock the active patient behind its sender.

    With row locks (PostgreSQL) both take one statement, so one patient's messages are handled one
    at a time; the statement's snapshot may predate the previous holder's commit, so what it read
    is used only under a guard (:func:`bot.turns.context.load_turn`), and every other read is a
    later statement. SQLite's ``BEGIN IMMEDIATE`` already serialises writers: a lookup, then a claim.
    """
    delivery = Delivery.of(session, message)
    session.flush()  # a patient enrolled in this unit of work is looked up like any other
    connection = session.connection()
    found = identity.sender_index(session, message.channel, message.sender)
    column, index = found if found is not None else (None, None)
    parameters = {**vars(delivery), "sender_index": index, "channel": message.channel}
    read: Sequence[Any] | None = None
    if has_row_locks(connection):
        (row,) = fetch_all(connection, _claim_and_lock_statement(column), parameters)
        claimed, patient_id, read = row[0], row[1], tuple(row[2:]) if column else None
    else:
        patient_id = (connection.execute(identity.sender_patient_statement(column), parameters).scalar() if column
                      else None)
        claimed = connection.execute(_claim_statement(dialect_name(connection)),
                                     {**parameters, "patient_id": patient_id}).scalar()
    if claimed is None:
        return Claimed(None, previous_reply(session, delivery.channel, delivery.provider_key), patient_id)
    return Claimed(delivery, None, patient_id, read)


def previous_reply(session: Session, channel: str, key: str) -> Reply:
    """The reply kept on the receipt of an earlier delivery with this key."""
    existing = session.scalars(select(InboundReceipt).where(
        InboundReceipt.channel == channel, InboundReceipt.provider_key == key)).one()
    return Reply.from_dict(existing.reply or {})


RECEIPT_DAYS = 7


def prune_receipts(session: Session, *, limit: int = 5000) -> int:
    """Forget delivery claims older than a week (providers retry within minutes); return how many."""
    cutoff = clock_of(session).now() - timedelta(days=RECEIPT_DAYS)
    ids = list(session.scalars(select(InboundReceipt.id).where(InboundReceipt.received_at < cutoff).limit(limit)))
    if ids:
        session.execute(delete(InboundReceipt).where(InboundReceipt.id.in_(ids)))
    return len(ids)


__all__ = ["Claimed", "Delivery", "claim_and_lock", "claim_delivery", "previous_reply", "prune_receipts"]
