"""What differs between SQLite and PostgreSQL, as named operations (the one place that asks which engine it is).

The two engines differ in how concurrent writers meet:

- **PostgreSQL** has row locks. Workers claim due rows with ``FOR UPDATE SKIP LOCKED`` (each takes
  rows nobody else is claiming, none waits), and a service serialises work on one row with
  ``FOR UPDATE``.
- **SQLite** has one writer at a time: every transaction starts with ``BEGIN IMMEDIATE``
  (``careloop.db``), so a transaction that has begun already holds the whole database. Row locks
  are neither needed nor available; the statements go out unchanged. One worker serves an SQLite
  file (the worker's lock file), so "skip what others claim" never arises.

Upserts are spelt by each dialect's own ``INSERT ... ON CONFLICT`` construct; :func:`upsert` picks it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

T = TypeVar("T")
S = TypeVar("S", bound=Select[Any])


def _name(session: Session) -> str:
    return session.get_bind().dialect.name


def has_row_locks(session: Session) -> bool:
    """Whether rows can be locked one by one (PostgreSQL); on SQLite the transaction already holds everything."""
    return _name(session) == "postgresql"


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
