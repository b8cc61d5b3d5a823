"""What differs between SQLite and PostgreSQL, as named operations (the one place that asks which engine it is).

The two engines differ in how concurrent writers meet:

- **PostgreSQL** has row locks. Workers claim due rows with ``FOR UPDATE SKIP LOCKED`` (each takes
  rows nobody else is claiming, none waits), and a service serialises work on one row with
  ``FOR UPDATE``.
- **SQLite** has one writer at a time: every transaction starts with ``BEGIN IMMEDIATE``
  (``careloop.db``), so a transaction that has begun already holds the whole database. Row locks
  are neither needed nor available; the statements go out unchanged. One worker serves an SQLite
  file (the worker's lock file), so "skip what others claim" never arises.

Upserts are spelt by each dialect's own ``INSERT ... ON CONFLICT`` construct; :func:`upsert` and
:func:`insert_ignoring` pick it. A unit of work's rows are written by :func:`write_batch`: one statement
on PostgreSQL (data-modifying CTEs fed by JSON parameters), one per table on SQLite.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    JSON,
    Connection,
    Select,
    Table,
    Text,
    TypeDecorator,
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import TableValuedAlias

T = TypeVar("T")
S = TypeVar("S", bound=Select[Any])


def _name(session: Session) -> str:
    return session.get_bind().dialect.name


def has_row_locks(bind: Session | Connection) -> bool:
    """Whether rows can be locked one by one (PostgreSQL); on SQLite the transaction already holds everything."""
    return (bind.dialect.name if isinstance(bind, Connection) else _name(bind)) == "postgresql"


def claim_rows(session: Session, query: S, *, of: Any = None) -> S:
    """``query`` as a claim of due rows: rows that another worker is claiming right now are skipped.

    ``of`` names the table(s) whose rows are locked when the query joins or tests others
    (an ``EXISTS`` on a heartbeat table must not lock the heartbeats).
    """
    if has_row_locks(session):
        return query.with_for_update(skip_locked=True, of=of)
    return query


def lock_rows(session: Session, query: S, *, of: Any = None) -> S:
    """``query`` taking (and waiting for) the lock of the rows it reads."""
    if has_row_locks(session):
        return query.with_for_update(of=of)
    return query


def get_locked(session: Session, model: type[T], key: Any) -> T | None:
    """``session.get`` of one row, locked for the rest of the transaction."""
    return session.get(model, key, with_for_update=has_row_locks(session))


def upsert(session: Session, table: Any, *, index_elements: Sequence[Any],
           update: Sequence[str] | None = None) -> Insert:
    """``INSERT`` into ``table`` that, on a conflict over ``index_elements``, updates the named columns
    to the inserted values (or does nothing when ``update`` is None)."""
    insert = postgresql.insert if _name(session) == "postgresql" else sqlite.insert
    statement = insert(table)
    if update is None:
        return statement.on_conflict_do_nothing(index_elements=index_elements)
    excluded: Mapping[str, Any] = {name: statement.excluded[name] for name in update}
    return statement.on_conflict_do_update(index_elements=index_elements, set_=dict(excluded))


# -- conflict-free inserts ---------------------------------------------------------------------------------
def dialect_name(bind: Session | Connection) -> str:
    """The engine behind ``bind`` (``postgresql`` or ``sqlite``), for caching statements per engine."""
    return bind.get_bind().dialect.name if isinstance(bind, Session) else bind.dialect.name


@functools.lru_cache(maxsize=64)
def insert_ignoring(dialect: str, table: Table, index_elements: tuple[str, ...],
                    returning: tuple[str, ...] = ()) -> Insert:
    """``INSERT INTO table ... ON CONFLICT (index_elements) DO NOTHING [RETURNING ...]``, built once per engine.

    Values come as bound parameters named after the columns at execution; with ``returning``, a
    row comes back only when the row was new.
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
    return statement.returning(*(table.c[name] for name in returning)) if returning else statement


def reset_identity(connection: Connection, table: Table) -> None:
    """Move an auto-numbered key's sequence past the rows inserted with their own numbers (a restore).

    PostgreSQL's ``BIGSERIAL`` would otherwise hand out 1 again; SQLite numbers from the largest key.
    """
    column = table.autoincrement_column
    if column is None or connection.dialect.name != "postgresql":
        return
    connection.execute(
        select(func.setval(func.pg_get_serial_sequence(table.name, column.name),
                           func.coalesce(select(func.max(column)).scalar_subquery(), 0) + 1, False)))


@functools.lru_cache(maxsize=16)
def locked_row_version(table: Table) -> ColumnElement[str]:
    """An expression that changes whenever a row of ``table`` is written (PostgreSQL's ``xmin``), built once.

    Only where rows lock one by one (:func:`has_row_locks`): a statement that reads rows while it
    waits for a lock may see them as they were before the previous holder committed; writing back
    "only if the version is still the one read" makes that safe. SQLite serialises whole
    transactions and needs no such check.
    """
    return cast(ColumnElement[str], literal_column(f"CAST({table.name}.xmin AS TEXT)"))


# -- one batched write per unit of work --------------------------------------------------------------------
@dataclass(frozen=True)
class TableRows:
    """Rows for one table: new rows to insert, or (``update``) the new values of one existing row named by ``id``.

    Every row gives the same columns (a row of another shape goes in a second :class:`TableRows`).
    An update names one row: PostgreSQL then plans it as one row (a set of rows from JSON is
    estimated at a hundred, which turns the update into a scan of the whole table).
    """

    table: Table
    rows: Sequence[Mapping[str, Any]]
    update: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.rows[0])


@dataclass(frozen=True)
class Guard:
    """A condition the last update of a batch must meet, or the whole batch is refused (see :func:`write_batch`).

    ``condition`` is built once by the caller (it is part of the cached statement); ``values`` are its
    bound parameters for this write.
    """

    condition: ColumnElement[bool]
    values: Mapping[str, Any] = field(default_factory=dict)


class GuardFailedError(Exception):
    """The guarded update of a batch found its row changed; the caller rolls the transaction back."""


_Shape = tuple[tuple[Table, tuple[str, ...], bool], ...]


def write_batch(connection: Connection, writes: Sequence[TableRows], *, guard: Guard | None = None) -> None:
    """Execute ``writes`` in ``connection``'s transaction: one statement on PostgreSQL, one per table on SQLite.

    PostgreSQL receives every table's rows as one JSON parameter per table (a handful of parameters,
    a short statement that the server prepares once per shape) in data-modifying CTEs. Writes
    without rows are skipped. With ``guard``, the last write must be an update of one row; it only
    applies when ``guard.condition`` holds, and otherwise nothing of the batch is kept
    (:class:`GuardFailedError`; the caller must roll back, since SQLite ran earlier statements).
    """
    writes = [write for write in writes if write.rows]
    if not writes:
        return
    if any(write.update and len(write.rows) != 1 for write in writes):
        raise ValueError("an update names one row")
    if guard is not None and not writes[-1].update:
        raise ValueError("a guarded batch ends with an update")
    shape: _Shape = tuple((write.table, write.columns, write.update) for write in writes)
    condition = guard.condition if guard is not None else None
    values = dict(guard.values) if guard is not None else {}
    if connection.dialect.name == "postgresql":
        (statement,) = _batch_statements("postgresql", shape, condition)
        parameters = {f"rows_{index}": json.dumps(write.rows[0] if write.update else list(write.rows),
                                                  default=_json_text)
                      for index, write in enumerate(writes)}
        returned = fetch_all(connection, statement, {**parameters, **values})
        if condition is not None and not returned:
            raise GuardFailedError("the guarded row changed before the batch was written")
        return
    *before, last = _batch_statements(connection.dialect.name, shape, condition)
    for statement, write in zip([*before, last], writes, strict=True):
        rows = [{**row, "row_id": row["id"]} for row in write.rows] if write.update else list(write.rows)
        if statement is last and condition is not None:
            if connection.execute(statement, {**rows[0], **values}).first() is None:
                raise GuardFailedError("the guarded row changed before the batch was written")
        else:
            connection.execute(statement, rows)


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


@functools.lru_cache(maxsize=128)
def _batch_statements(dialect: str, shape: _Shape, condition: ColumnElement[bool] | None) -> list[Executable]:
    """The statements of a batch of this shape, built and compiled once (see :func:`write_batch`)."""
    statements: list[Insert | Update] = []
    for index, (table, columns, is_update) in enumerate(shape):
        if dialect == "postgresql":
            source = _json_rows(table, index, one=is_update)
            if is_update:
                statements.append(update(table).where(table.c.id == source.c.id)
                                  .values({column: source.c[column] for column in columns if column != "id"}))
            else:
                statements.append(insert(table).from_select(list(columns),
                                                            select(*(source.c[column] for column in columns))))
        elif is_update:
            statements.append(update(table).where(table.c.id == bindparam("row_id"))
                              .values({column: bindparam(column) for column in columns if column != "id"}))
        else:
            statements.append(insert(table))
    if condition is not None:
        last = statements[-1]
        assert isinstance(last, Update)  # noqa: S101 - write_batch checked the shape
        guarded = last.where(condition).returning(shape[-1][0].c.id)
        if dialect != "postgresql":
            return [*statements[:-1], guarded]
        return [guarded.add_cte(*(statement.cte(f"write_{index}") for index, statement in enumerate(statements[:-1])))]
    if dialect != "postgresql":
        return list(statements)
    top = select(literal(1)).add_cte(*(statement.cte(f"write_{index}") for index, statement in enumerate(statements)))
    return [top]


def _json_rows(table: Table, index: int, *, one: bool) -> TableValuedAlias:
    """PostgreSQL: the rows in parameter ``rows_<index>`` (a JSON array, or with ``one`` a JSON object),
    typed as ``table``'s rows."""
    populate = func.json_populate_record if one else func.json_populate_recordset
    return populate(literal_column(f"NULL::{table.name}"),
                    sql_cast(bindparam(f"rows_{index}", type_=Text), JSON)).table_valued(
        *table.c.keys(), name=f"new_{index}_{table.name}")


# -- the driver's cursor, for the hottest statements -------------------------------------------------------
# Executing a compiled statement through ``Connection.execute`` costs about as much Python as the
# driver's own work (an execution context, parameter processing, a result object): about 0.1 ms a
# statement on the benchmark machine, for a message whose whole handling costs about 3 ms. The
# inbound path's claim and write on PostgreSQL run on the psycopg cursor of the connection the
# session already holds instead (the same transaction), compiled once, parameters bound as
# SQLAlchemy binds them (the statement's fixed values, then each decorated type's
# ``process_bind_param``). Only for statements whose result columns need no conversion by
# SQLAlchemy's types (ids, text, numbers, booleans, bytes): rows come back as the driver gives them.
@dataclass(frozen=True)
class _Prepared:
    sql: str
    fixed: dict[str, Any]  # values the statement carries itself (literals SQLAlchemy binds)
    decorated: tuple[tuple[str, TypeDecorator[Any]], ...]  # parameters whose type converts them first


@functools.lru_cache(maxsize=256)
def _prepared(statement: Executable, dialect: Dialect) -> _Prepared:
    compiled: Compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    binds = compiled.binds  # type: ignore[attr-defined]
    fixed = {name: value for name, value in compiled.params.items() if binds[name].value is not None}
    decorated = tuple((name, bind.type) for name, bind in binds.items() if isinstance(bind.type, TypeDecorator))
    return _Prepared(str(compiled), fixed, decorated)


def fetch_all(connection: Connection, statement: Executable, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Execute ``statement`` (one that returns rows) in ``connection``'s transaction; its rows as the driver
    gives them.

    On PostgreSQL this runs on the driver's cursor (see above); elsewhere through SQLAlchemy.
    """
    if connection.dialect.name != "postgresql":
        return [tuple(row) for row in connection.execute(statement, dict(parameters))]
    prepared = _prepared(statement, connection.dialect)
    values = {**prepared.fixed, **parameters}
    for name, type_ in prepared.decorated:
        if name in values:
            values[name] = type_.process_bind_param(values[name], connection.dialect)
    with connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        # Whoever watches the statements (a test, a tracer) sees these too; ``_has_events`` is what
        # SQLAlchemy itself asks before it looks for listeners.
        if connection._has_events or connection.engine._has_events:
            for listener in connection.dispatch.before_cursor_execute:
                listener(connection, cursor, prepared.sql, values, None, False)
        cursor.execute(prepared.sql, values)
        return list(cursor.fetchall())
