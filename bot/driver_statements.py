"""The inbound path's hottest statements, run on the database driver's cursor of the same transaction.

SQLAlchemy builds and compiles each of these statements once, but executing a compiled statement
through ``Connection.execute`` still costs about as much Python as the driver's own work (an
execution context, parameter processing, a result object): on the benchmark machine about
0.1 ms of CPU a statement, for a message whose whole handling costs about 3 ms. The plain turn's
claim and write on PostgreSQL run here instead: compiled once per statement, parameters bound
as SQLAlchemy would bind them (the fixed values the statement carries, then each column type's
``process_bind_param``), executed on the psycopg cursor of the connection the session already
holds, so they belong to the request's transaction like any other statement.

Only for statements that return rows (a SELECT, a ``RETURNING``) whose columns need no conversion
by SQLAlchemy's types (ids, text, numbers, booleans, bytes): rows come back as the driver returns
them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import Compiled


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
    """Execute ``statement`` with ``parameters`` in ``connection``'s transaction; its rows as the driver gives them."""
    prepared = _prepared(statement, connection.dialect)
    values = {**prepared.fixed, **parameters}
    for name, type_ in prepared.decorated:
        if name in values:
            values[name] = type_.process_bind_param(values[name], connection.dialect)
    with connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(prepared.sql, values)
        return list(cursor.fetchall())
