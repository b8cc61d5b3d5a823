"""The common turn, read and written without loading the patient's record.

Most messages a patient sends answer the question their waiting conversation asked: one engine
step that logs the exchange, saves the answer as a result (a coded score also as an
observation, a red-flag reading with its urgent task), raises staff alerts, moves the
conversation's timers and asks the next question. Every event of such a step lands in the
turn's scene (:func:`bot.turns.effects.lands_in_the_scene`), so the turn is read with one
statement (the channel's consent, the open conversation, the data key) and written with one more
by the scene's batched writer, the conversation's update and the delivery's receipt included.

Anything else (a keyword, a consent word, an invitation, an opted-out channel, a step that
ends the flow or changes the record beyond the conversation's own rows: profile fields, tags,
follow-ups) is left to the router's general path, which loads the record and applies the same
handlers: :func:`answer_plainly` returns None and writes nothing.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Text, and_, bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot import consent
from bot.conversations import BotServices, facts_from
from bot.messages import InboundMessage, Reply
from bot.models import ConversationSession, Direction, InboundReceipt, SessionStatus
from bot.rendering import render_text
from bot.turns.effects import EffectContext, Where, apply_events, lands_in_the_scene, log_message
from bot.turns.replies import fit_reply
from bot.turns.scene import Scene, table_of
from care.models import ChannelConsent, Patient
from flows import engine
from flows.registry import FlowNotFoundError
from security.audit import Actor
from security.crypto import DataKey
from security.dialects import Guard, locked_row_version
from security.fields import cipher_of, clock_of

CONSENT_WORDS = consent.STOP_WORDS | consent.START_WORDS | consent.HELP_WORDS


PATIENTS = table_of(Patient)
CONSENTS = table_of(ChannelConsent)
CONVERSATIONS = table_of(ConversationSession)
DATA_KEYS = table_of(DataKey)

# What a plain turn reads: the channel's consent and the patient's open conversation. On PostgreSQL
# also the conversation row's version (xmin), because the router reads these in the statement that
# takes the patient's lock, whose snapshot may predate the previous holder's commit.
_CONVERSATION_COLUMNS = (
    CONSENTS.c.opted_out, CONVERSATIONS.c.id, CONVERSATIONS.c.flow_id, CONVERSATIONS.c.flow_version,
    CONVERSATIONS.c.lang, CONVERSATIONS.c.status, CONVERSATIONS.c.state, CONVERSATIONS.c.facts,
    DATA_KEYS.c.kek_version, DATA_KEYS.c.wrapped,  # the patient's data key, for a process that has not cached it
)


def read_alongside(statement: Select[Any], patient_id: ColumnElement[Any], *, versioned: bool) -> Select[Any]:
    """``statement`` with what a plain turn reads of patient ``patient_id`` added (outer joins, one row);
    ``versioned``: with the conversation row's version too (a read made before the lock was granted)."""
    columns = (*_CONVERSATION_COLUMNS, locked_row_version(CONVERSATIONS)) if versioned else _CONVERSATION_COLUMNS
    return (statement.add_columns(*columns)
            .outerjoin(CONSENTS, and_(CONSENTS.c.patient_id == patient_id, CONSENTS.c.channel == bindparam("channel")))
            .outerjoin(CONVERSATIONS, CONVERSATIONS.c.active_patient_id == patient_id)
            .outerjoin(DATA_KEYS, DATA_KEYS.c.owner_id == patient_id))


# After the lock (SQLite, where BEGIN IMMEDIATE serialises writers): a read of its own.
_READ = read_alongside(select().select_from(PATIENTS), PATIENTS.c.id, versioned=False).where(
    PATIENTS.c.id == bindparam("patient_id"))


@dataclass(frozen=True)
class Waiting:
    """A waiting conversation as stored (state and facts still sealed); ``version`` as read (PostgreSQL)."""

    id: uuid.UUID
    flow_id: str
    flow_version: int
    lang: str
    state: bytes
    facts: bytes
    kek_version: int | None = None
    wrapped_key: bytes | None = None
    version: str | None = None

    @classmethod
    def of(cls, row: Sequence[Any]) -> Waiting | None:
        """From the columns :func:`read_alongside` added; None unless the conversation waits on a channel
        the patient has not opted out of."""
        opted_out, conversation_id, flow_id, flow_version, lang, status, state, facts, kek_version, wrapped, \
            *version = row
        if opted_out or conversation_id is None or status != SessionStatus.WAITING.value or not facts or not state:
            return None
        return cls(conversation_id, flow_id, flow_version, lang, state, facts, kek_version, wrapped,
                   version[0] if version else None)


def answer_plainly(session: Session, services: BotServices, message: InboundMessage, patient_id: uuid.UUID,
                   receipt_id: uuid.UUID, late: Callable[[], bool], *,
                   read: Sequence[Any] | None = None) -> Reply | None:
    """Answer ``message`` as the next step of the patient's waiting conversation, if it is a plain turn.

    The router has claimed the delivery (``receipt_id``) and locked the patient; ``read`` is what
    :func:`read_alongside` added to that statement (PostgreSQL), else it is read here. The reply is fitted to
    the channel (``late``: its deadline has passed) before it is stored on the receipt. Returns None,
    having written nothing, when the turn is not plain.

    Raises:
        GuardFailedError: the conversation or the consent changed under a read made before the lock
            was granted; nothing is wrong, but the transaction must be rolled back and the message
            handled again.
    """
    if consent.keyword(message.text) in CONSENT_WORDS:
        return None
    if read is None:
        read = session.connection().execute(_READ, {"patient_id": patient_id, "channel": message.channel}).first()
    waiting = Waiting.of(read) if read is not None else None
    if waiting is None:
        return None
    try:
        definition = services.library.get(waiting.flow_id, waiting.flow_version)
    except FlowNotFoundError:
        return None
    cipher = cipher_of(session)
    now = clock_of(session).now()
    key = cipher.data_key_read(patient_id, waiting.kek_version, waiting.wrapped_key)
    table = CONVERSATIONS.name
    state = ConversationSession.state.value_of(cipher, key, table, waiting.id, waiting.state)
    facts = ConversationSession.facts.value_of(cipher, key, table, waiting.id, waiting.facts)
    if not facts:
        return None
    result = engine.step(definition, dict(state or {}), facts_from(facts), engine.TextInput(message.text), now=now)
    events = list(result.events)
    if result.ended or not lands_in_the_scene(events):
        return None
    reply = fit_reply(session, message, Reply(texts=render_text(result.outputs, waiting.lang),
                                              patient_id=str(patient_id), session_id=str(waiting.id)),
                      receipt_id=receipt_id, late=late())
    actor = Actor("patient", str(patient_id), message.channel)
    scene = Scene.of(session, patient_id, key=key)
    log_message(scene, conversation_id=waiting.id, channel=message.channel, direction=Direction.IN, text=message.text)
    where = Where(waiting.id, waiting.flow_id, waiting.flow_version, message.channel)
    context = EffectContext(scene=scene, conversation=where, actor=actor)
    apply_events(context, events)
    scene.update(InboundReceipt, receipt_id, {"reply": reply.to_dict()})  # the claim named the patient already
    moved: dict[str, Any] = {"channel": message.channel, "updated_at": now, "state": result.state}
    if context.timers is not None:
        moved["expires_at"], moved["next_timer_at"] = context.timers
    scene.update(ConversationSession, waiting.id, moved)  # last: the guarded write
    guard = None
    if waiting.version is not None:
        seen = {"seen_version": waiting.version, "seen_patient_id": patient_id, "seen_channel": message.channel}
        guard = Guard(_unchanged_and_not_opted_out(locked_row_version(CONVERSATIONS)), seen)
    scene.write(guard=guard)
    return reply


@functools.lru_cache(maxsize=2)
def _unchanged_and_not_opted_out(version: ColumnElement[str]) -> ColumnElement[bool]:
    """The conversation row is the version read before the lock, and its channel was not opted out meanwhile."""
    opted_out = (select(CONSENTS.c.id)
                 .where(CONSENTS.c.patient_id == bindparam("seen_patient_id", type_=CONSENTS.c.patient_id.type),
                        CONSENTS.c.channel == bindparam("seen_channel", type_=CONSENTS.c.channel.type),
                        CONSENTS.c.opted_out.is_(True)))
    return and_(bindparam("seen_version", type_=Text) == version, ~opted_out.exists())
