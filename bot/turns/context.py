"""What a turn reads of the sender's patient before it steps the flow, in one statement.

Once the delivery is claimed and the patient locked (:mod:`bot.turns.delivery`), a turn needs the
patient's consent on the message's channel, their open conversation and their data key (to open
the conversation's sealed state). :func:`read_alongside` adds those columns to a statement; where
rows lock one by one (PostgreSQL) they ride on the statement that takes the lock, elsewhere they
are read right after it. The conversation becomes a plain row without another query
(:class:`ConversationRow`, its sealed fields opened with the key just read), tracked by the
patient's scene (:meth:`bot.turns.scene.Scene.track`): what the turn changes in it is written with
the turn's other rows, and the unit of work neither walks it at a flush nor expires it at commit. The patient's own
record is loaded only by the steps that need it (:meth:`TurnContext.record`).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Select, Text, and_, bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.models import ConversationSession, SessionStatus
from bot.turns.scene import PlainRow, Scene, table_of
from care.models import ChannelConsent, Patient
from security.crypto import DataKey
from security.dialects import Guard, locked_row_version
from security.fields import cipher_of

PATIENTS = table_of(Patient)
CONSENTS = table_of(ChannelConsent)
CONVERSATIONS = table_of(ConversationSession)
DATA_KEYS = table_of(DataKey)



@dataclass(eq=False)
class ConversationRow(PlainRow):
    """The patient's open conversation as a turn reads it: every column of its ``conversation_sessions``
    row, its state and facts opened; changed as a plain object, written by the patient's scene."""

    model: ClassVar[type[Any]] = ConversationSession
    id: uuid.UUID
    patient_id: uuid.UUID
    active_patient_id: uuid.UUID | None
    flow_id: str
    flow_version: int
    lang: str
    channel: str
    status: str
    state: Any
    facts: Any
    next_timer_at: datetime | None
    expires_at: datetime | None
    end_status: str | None
    followup_id: uuid.UUID | None
    call_sid: str | None
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None


_ROW_FIELDS = tuple(item.name for item in fields(ConversationRow))
_SEALED = {name: getattr(ConversationSession, name) for name in ("state", "facts")}
# Every column of the conversation, named as the row's attributes, in the order the read answers them.
_COLUMNS = (
    CONSENTS.c.opted_out,
    *(CONVERSATIONS.c[name] for name in _ROW_FIELDS),
    DATA_KEYS.c.kek_version, DATA_KEYS.c.wrapped,  # for a process that has not cached the patient's key
)


def read_alongside(statement: Select[Any], patient_id: ColumnElement[Any], *, versioned: bool) -> Select[Any]:
    """``statement`` with what a turn reads of patient ``patient_id`` added (outer joins, one row), for the
    channel bound as ``channel``; ``versioned``: with the conversation row's version too (a read whose
    snapshot may predate the commit of the lock's previous holder)."""
    columns = (*_COLUMNS, locked_row_version(CONVERSATIONS)) if versioned else _COLUMNS
    return (statement.add_columns(*columns)
            .outerjoin(CONSENTS, and_(CONSENTS.c.patient_id == patient_id, CONSENTS.c.channel == bindparam("channel")))
            .outerjoin(CONVERSATIONS, CONVERSATIONS.c.active_patient_id == patient_id)
            .outerjoin(DATA_KEYS, DATA_KEYS.c.owner_id == patient_id))


# After the lock: a read of its own.
_READ = read_alongside(select().select_from(PATIENTS), PATIENTS.c.id, versioned=False).where(
    PATIENTS.c.id == bindparam("patient_id"))


@dataclass
class TurnContext:
    """The sender's patient as a turn sees them: consent on the channel, open conversation, scene."""

    session: Session
    patient_id: uuid.UUID
    opted_out: bool
    conversation: ConversationRow | None
    scene: Scene
    _patient: Patient | None = field(default=None, repr=False)

    def record(self) -> Patient:
        """The patient's record (loaded on first use: a plain answer never needs it)."""
        if self._patient is None:
            self._patient = self.session.get(Patient, self.patient_id)
            if self._patient is None:
                raise LookupError(f"patient {self.patient_id} vanished")
        return self._patient


def load_turn(session: Session, patient_id: uuid.UUID, channel: str, early: Sequence[Any] | None) -> TurnContext:
    """The turn's context for the locked patient ``patient_id`` on ``channel``.

    ``early`` is what :func:`read_alongside` added to the statement that took the lock, if the caller
    trusts it (a message that only a waiting conversation answers). That read may predate the lock's
    previous holder's commit, so it is used only when it shows a waiting conversation on a channel not
    opted out, and the conversation's update is then written only if the row is still that version and
    the channel still not opted out (the scene's guard; else
    :class:`security.dialects.GuardFailedError`, and the caller handles the message again). Anything
    else is read again, after the lock.
    """
    guard = None
    if early is not None and _waiting(early):
        *read, version = early
        guard = Guard(_unchanged_and_not_opted_out(locked_row_version(CONVERSATIONS)),
                      {"seen_version": version, "seen_patient_id": patient_id, "seen_channel": channel})
    else:
        found = session.connection().execute(_READ, {"patient_id": patient_id, "channel": channel}).first()
        read = list(found) if found is not None else [None] * len(_COLUMNS)
    opted_out, *conversation_values = read[:-2]
    kek_version, wrapped = read[-2:]
    cipher = cipher_of(session)
    key = cipher.data_key_read(patient_id, kek_version, wrapped) if wrapped is not None else None
    scene = Scene.of(session, patient_id, key=key)
    conversation = _conversation(session, conversation_values, scene.key)
    if conversation is not None:
        scene.track(conversation, guard=guard)
    return TurnContext(session, patient_id, bool(opted_out), conversation, scene)


def _waiting(read: Sequence[Any]) -> bool:
    opted_out, status = read[0], read[1 + _STATUS]
    return not opted_out and status == SessionStatus.WAITING.value


_STATUS = _ROW_FIELDS.index("status")


def _conversation(session: Session, values: Sequence[Any], data_key: bytes) -> ConversationRow | None:
    """The conversation of ``values`` (as read, its fields sealed under ``data_key``) as a plain row."""
    attributes = dict(zip(_ROW_FIELDS, values, strict=True))
    if attributes["id"] is None:
        return None
    cipher = cipher_of(session)
    for name, sealed in _SEALED.items():
        stored = attributes[name]
        if stored is not None:
            attributes[name] = sealed.value_of(cipher, data_key, CONVERSATIONS.name, attributes["id"], stored)
    return ConversationRow(**attributes)


@functools.lru_cache(maxsize=2)
def _unchanged_and_not_opted_out(version: ColumnElement[str]) -> ColumnElement[bool]:
    """The conversation row is the version read before the lock, and its channel was not opted out meanwhile."""
    opted_out = (select(CONSENTS.c.id)
                 .where(CONSENTS.c.patient_id == bindparam("seen_patient_id", type_=CONSENTS.c.patient_id.type),
                        CONSENTS.c.channel == bindparam("seen_channel", type_=CONSENTS.c.channel.type),
                        CONSENTS.c.opted_out.is_(True)))
    return and_(bindparam("seen_version", type_=Text) == version, ~opted_out.exists())


__all__ = ["ConversationRow", "TurnContext", "load_turn", "read_alongside"]
