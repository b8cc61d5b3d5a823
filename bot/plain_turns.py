"""The common turn, read and written without loading the patient's record.

Most messages a patient sends answer the question their waiting conversation asked: one engine
step that logs the exchange, saves the answer as a result (a coded score also as an
observation), moves the conversation's timers and asks the next question. Such a turn touches
nothing but the conversation's own rows, so it is read with one statement (the channel's
consent, the open conversation) and written with one more (PostgreSQL: the log, the results,
observations and their audit entries, the conversation and the delivery's receipt as one
statement of data-modifying CTEs, each table's rows in one JSON parameter; SQLite: a statement
per table). Rows are sealed by the same field declarations and row builders the ORM path uses,
so they read back identically.

Anything else (a keyword, a consent word, an invitation, an opted-out channel, a step that
ends the flow, records a reading of its own, tags or alerts, a reply too long for WeChat's
passive answer) is left to the router's general path, which loads the record:
:func:`answer_plainly` returns None and writes nothing.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import TableValuedAlias

from bot import consent, driver_statements
from bot.conversations import BotServices, facts_from
from bot.effects import becomes_observation, result_observation, touch_only_the_conversation, waiting_times
from bot.messages import InboundMessage, Reply
from bot.models import ConversationMessage, ConversationSession, Direction, InboundReceipt, SessionStatus
from bot.rendering import render_text, split_reply
from care.models import ChannelConsent, FlowResult, Observation, Patient
from care.observations import observation_audit, observation_record
from care.results import result_audit, result_record
from flows import engine
from flows.events import MsgCreated, ResultSaved, SessionWaiting
from flows.registry import FlowNotFoundError
from security.audit import Actor, AuditEntry, entry_row
from security.crypto import DataKey
from security.fields import cipher_of, clock_of, sealed_row
from security.session import audit_keys_of

CONSENT_WORDS = consent.STOP_WORDS | consent.START_WORDS | consent.HELP_WORDS


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


PATIENTS = _table(Patient)
CONSENTS = _table(ChannelConsent)
CONVERSATIONS = _table(ConversationSession)
MESSAGES = _table(ConversationMessage)
RESULTS = _table(FlowResult)
OBSERVATIONS = _table(Observation)
AUDIT = _table(AuditEntry)
RECEIPTS = _table(InboundReceipt)
DATA_KEYS = _table(DataKey)

# What a plain turn reads: the channel's consent and the patient's open conversation. On PostgreSQL
# also the conversation row's version (xmin), because the router reads these in the statement that
# takes the patient's lock, whose snapshot may predate the previous holder's commit.
_CONVERSATION_COLUMNS = (
    CONSENTS.c.opted_out, CONVERSATIONS.c.id, CONVERSATIONS.c.flow_id, CONVERSATIONS.c.flow_version,
    CONVERSATIONS.c.lang, CONVERSATIONS.c.status, CONVERSATIONS.c.state, CONVERSATIONS.c.facts,
    DATA_KEYS.c.kek_version, DATA_KEYS.c.wrapped,  # the patient's data key, for a process that has not cached it
)
_VERSION = cast(ColumnElement[str], literal_column(f"CAST({CONVERSATIONS.name}.xmin AS TEXT)"))


def read_alongside(statement: Select[Any], patient_id: ColumnElement[Any], dialect: str) -> Select[Any]:
    """``statement`` with what a plain turn reads of patient ``patient_id`` added (outer joins, one row)."""
    columns = (*_CONVERSATION_COLUMNS, _VERSION) if dialect == "postgresql" else _CONVERSATION_COLUMNS
    return (statement.add_columns(*columns)
            .outerjoin(CONSENTS, and_(CONSENTS.c.patient_id == patient_id, CONSENTS.c.channel == bindparam("channel")))
            .outerjoin(CONVERSATIONS, CONVERSATIONS.c.active_patient_id == patient_id)
            .outerjoin(DATA_KEYS, DATA_KEYS.c.owner_id == patient_id))


# After the lock (SQLite, where BEGIN IMMEDIATE serialises writers): a read of its own.
_READ = read_alongside(select().select_from(PATIENTS), PATIENTS.c.id, "sqlite").where(
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


class StaleTurnError(Exception):
    """What the turn was computed from changed before it could be written (the caller rolls back)."""


def answer_plainly(session: Session, services: BotServices, message: InboundMessage, patient_id: uuid.UUID,
                   receipt_id: uuid.UUID, settle: Callable[[Reply], Reply], *,
                   read: Sequence[Any] | None = None) -> Reply | None:
    """Answer ``message`` as the next step of the patient's waiting conversation, if it is a plain turn.

    The router has claimed the delivery (``receipt_id``) and locked the patient; ``read`` is what
    :func:`read_alongside` added to that statement (PostgreSQL), else it is read here. ``settle``
    fits the reply to the channel (WeChat's passive-reply deadline) before it is stored on the
    receipt. Returns None, having written nothing, when the turn is not plain.

    Raises:
        StaleTurnError: the conversation or the consent changed under a read made before the lock
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
    if result.ended or not touch_only_the_conversation(events):
        return None
    texts, overflow = split_reply(message.channel, render_text(result.outputs, waiting.lang))
    if overflow:
        return None
    reply = settle(Reply(texts=texts, patient_id=str(patient_id), session_id=str(waiting.id)))
    actor = Actor("patient", str(patient_id), message.channel)
    _write(session, _turn_rows(session, key, patient_id, waiting, message, receipt_id, result, events, reply,
                                     actor, now), waiting, patient_id, message.channel)
    return reply


def _turn_rows(session: Session, key: bytes, patient_id: uuid.UUID, waiting: Waiting,
                     message: InboundMessage, receipt_id: uuid.UUID, result: engine.StepResult, events: list[Any],
                     reply: Reply, actor: Actor, now: datetime) -> list[tuple[Table, list[dict[str, Any]]]]:
    """What the ORM path would write for this step, as rows: log, results, audit, conversation, receipt.

    Inserted tables come with their new rows; the conversation and the receipt (updated) with one
    row each, whose ``id`` names the row to update.
    """
    cipher = cipher_of(session)
    audit_keys = audit_keys_of(session)

    def logged(direction: Direction, text: str) -> dict[str, Any]:
        return sealed_row(cipher, key, ConversationMessage, {
            "id": uuid.uuid4(), "patient_id": patient_id, "session_id": waiting.id, "channel": message.channel,
            "direction": direction.value, "text": text, "created_at": now})

    log = [logged(Direction.IN, message.text)]
    results: list[dict[str, Any]] = []
    observations: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []
    conversation: dict[str, Any] = {"id": waiting.id, "channel": message.channel, "updated_at": now}
    for event in events:
        if isinstance(event, MsgCreated):
            log.append(logged(Direction.OUT, event.text))
        elif isinstance(event, ResultSaved):
            record = result_record(patient_id, flow_id=waiting.flow_id, flow_version=waiting.flow_version,
                                   name=event.name, value=event.value, category=event.category, label=event.label,
                                   code=event.code, unit=event.unit, session_id=waiting.id, now=now)
            results.append(sealed_row(cipher, key, FlowResult, record))
            audit.append(entry_row(audit_keys, session=session, actor=actor, now=now, **result_audit(record)))
            if becomes_observation(event, set()):  # a plain step records no observation of its own
                observed = observation_record(patient_id, now=now,
                                              **result_observation(event, waiting.flow_id, waiting.id, now))
                observations.append(sealed_row(cipher, key, Observation, observed))
                audit.append(entry_row(audit_keys, session=session, actor=actor, now=now,
                                        **observation_audit(observed)))
        elif isinstance(event, SessionWaiting):
            conversation["expires_at"], conversation["next_timer_at"] = waiting_times(event)
    conversation.update(ConversationSession.state.column_values(cipher, key, CONVERSATIONS.name, waiting.id,
                                                                result.state))
    receipt = {"id": receipt_id,  # the claim named the patient already
               **InboundReceipt.reply.column_values(cipher, key, RECEIPTS.name, receipt_id, reply.to_dict())}
    return [(MESSAGES, log), (RESULTS, results), (OBSERVATIONS, observations), (AUDIT, audit), (RECEIPTS, [receipt]),
            (CONVERSATIONS, [conversation])]


UPDATED = (CONVERSATIONS, RECEIPTS)
Shape = tuple[tuple[str, tuple[str, ...]], ...]  # each written table with the columns its rows give


def _write(session: Session, writes: list[tuple[Table, list[dict[str, Any]]]], waiting: Waiting,
           patient_id: uuid.UUID, channel: str) -> None:
    """Execute the turn's writes: one statement on PostgreSQL (data-modifying CTEs), else one per table.

    The conversation's UPDATE comes last and, when ``waiting`` was read before the lock was
    granted (it carries a version), only applies if the row is still that version and the channel
    has not been opted out meanwhile; otherwise :class:`StaleTurnError`.
    """
    connection = session.connection()
    writes = [(table, rows) for table, rows in writes if rows]
    shape: Shape = tuple((table.name, tuple(rows[0])) for table, rows in writes)
    guarded = waiting.version is not None
    seen = {"seen_version": waiting.version, "seen_patient_id": patient_id, "seen_channel": channel} if guarded else {}
    if connection.dialect.name == "postgresql":
        # Each table's rows travel as one JSON parameter: a handful of parameters and a short
        # statement, which psycopg converts once and PostgreSQL prepares once per shape.
        (statement,) = _statements("postgresql", shape, guarded)
        parameters = {f"rows_{table.name}": _as_json(table, rows) for table, rows in writes}
        returned = next(iter(driver_statements.fetch_all(connection, statement, {**parameters, **seen})), None)
    else:
        *before, last = _statements(connection.dialect.name, shape, guarded)
        for statement, (table, rows) in zip(before, writes, strict=False):
            connection.execute(statement, [{**row, "row_id": row["id"]} for row in rows] if table in UPDATED else rows)
        (conversation,) = writes[-1][1]
        returned = connection.execute(last, {**conversation, "row_id": conversation["id"], **seen}).first()
    if returned is None:
        raise StaleTurnError(f"conversation {waiting.id} changed before its turn was written")


def _as_json(table: Table, rows: list[dict[str, Any]]) -> str:
    """``rows`` as the JSON that ``json_populate_record(set)`` reads into ``table``'s row type."""
    return json.dumps(rows if table not in UPDATED else rows[0], default=_json_text)


def _json_text(value: object) -> str:
    """The text PostgreSQL reads back as the same value: ``bytea`` as hex, instants with their offset."""
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.isoformat()
    raise TypeError(f"no JSON form for {type(value).__name__}")


@functools.lru_cache(maxsize=64)
def _statements(dialect: str, shape: Shape, guarded: bool) -> list[Executable]:
    """The statements for writes of this shape (built once, compiled once), the conversation's UPDATE last.

    PostgreSQL: one statement, the conversation's UPDATE ``RETURNING`` its id with the other
    writes as its data-modifying CTEs, each reading its rows from a JSON parameter
    ``rows_<table>``. Elsewhere: a statement per table, executed with its rows as parameters.
    """
    tables = {table.name: table for table in (MESSAGES, RESULTS, OBSERVATIONS, AUDIT, CONVERSATIONS, RECEIPTS)}
    statements: list[Insert | Update] = []
    for name, columns in shape:
        table = tables[name]
        if dialect == "postgresql":
            source = _json_rows(table)
            if table in UPDATED:
                statements.append(update(table).where(table.c.id == source.c.id)
                                  .values({column: source.c[column] for column in columns if column != "id"}))
            else:
                statements.append(insert(table).from_select(columns, select(*(source.c[column]
                                                                              for column in columns))))
        elif table in UPDATED:
            statements.append(update(table).where(table.c.id == bindparam("row_id"))
                              .values({column: bindparam(column) for column in columns if column != "id"}))
        else:
            statements.append(insert(table))
    *rest, conversation = statements
    assert isinstance(conversation, Update)  # noqa: S101 - the conversation's row comes last in every shape
    if guarded:
        opted_out = (select(CONSENTS.c.id)
                     .where(CONSENTS.c.patient_id == bindparam("seen_patient_id", type_=CONSENTS.c.patient_id.type),
                            CONSENTS.c.channel == bindparam("seen_channel", type_=CONSENTS.c.channel.type),
                            CONSENTS.c.opted_out.is_(True)))
        conversation = conversation.where(bindparam("seen_version") == _VERSION, ~opted_out.exists())
    last = conversation.returning(CONVERSATIONS.c.id)
    if dialect != "postgresql":
        return [*rest, last]
    return [last.add_cte(*(statement.cte(f"write_{index}") for index, statement in enumerate(rest)))]


def _json_rows(table: Table) -> TableValuedAlias:
    """PostgreSQL: the rows in parameter ``rows_<table>`` (JSON), typed as ``table``'s rows."""
    populate = func.json_populate_record if table in UPDATED else func.json_populate_recordset
    return populate(literal_column(f"NULL::{table.name}"),
                    sql_cast(bindparam(f"rows_{table.name}", type_=Text), JSON)).table_valued(*table.c.keys(),
                                                                                          name=f"new_{table.name}")
