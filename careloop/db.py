"""Engines and sessions for both supported databases (SQLite embedded, PostgreSQL to grow)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from security.audit import AuditKeys, Sealing
from security.clock import Clock
from security.crypto import FieldCipher
from security.fields import track_loaded_records
from security.files import open_private, private_folder
from security.keys import KeyRing
from security.session import configure_factory


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (SAVEPOINT support).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


#: Execution options of a connection that reads one consistent snapshot of the whole database while the
#: service goes on writing (``careloop backup create``): a read-only REPEATABLE READ transaction on
#: PostgreSQL; on SQLite a deferred transaction, whose first read fixes the snapshot (WAL) and which never
#: takes the write lock.
SNAPSHOT = "careloop_snapshot"


def snapshot_options(dialect: str) -> dict[str, Any]:
    """The execution options of a snapshot connection on ``dialect`` (set them before it begins)."""
    if dialect == "postgresql":
        return {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    return {SNAPSHOT: True}


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection in a read-only transaction that sees one consistent state of the whole database, taken
    as it begins, however the service writes meanwhile; rolled back at the end (it changes nothing)."""
    with engine.connect() as plain:
        connection = plain.execution_options(**snapshot_options(engine.dialect.name))
        with connection.begin() as transaction:
            # The first read fixes the snapshot (SQLite: the WAL read mark; PostgreSQL: the first statement).
            connection.exec_driver_sql("SELECT 1 FROM alembic_version").all()
            yield connection
            transaction.rollback()


def _sqlite_begin(connection: Any) -> None:
    if connection.get_execution_options().get(SNAPSHOT):
        connection.exec_driver_sql("BEGIN DEFERRED")
        return
    # IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading a read lock.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _private_sqlite_file(path: Path) -> None:
    """Make the database file (empty: SQLite takes it for a new database) and its folder private.

    SQLite gives the ``-wal`` and ``-shm`` files it makes the mode of the database file, so they are
    0600 too; left to itself it would make all three 0644.
    """
    if path.exists():
        return
    private_folder(path.parent)
    os.close(open_private(path, os.O_WRONLY))


def make_engine(url: str, **options: Any) -> Engine:
    """Create an engine; a SQLite file is created private (0600, in a 0700 folder) and its connection tuned."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            _private_sqlite_file(Path(parsed.database))
        engine = create_engine(url, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg2", ""):
        # psycopg 3 is the driver we ship; a plain postgresql:// URL means it.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    options.setdefault("pool_pre_ping", True)
    return create_engine(url, **options)


class Database:
    """One engine and a session factory whose sessions carry the security context."""

    def __init__(self, engine: Engine, *, key_ring: KeyRing, clock: Clock, bind: Connection | None = None,
                 sealing: Sealing | None = None) -> None:
        """``sealing`` (the audit chain key and anchor) is given to the sealing process only, never to the web's."""
        self.engine = engine
        self.key_ring = key_ring
        self.clock = clock
        self.cipher = FieldCipher(key_ring)
        self.audit_keys = AuditKeys(key_ring, sealing)
        if bind is None:
            self.sessions = sessionmaker(bind=engine, expire_on_commit=False)
        else:
            # Tests: every session joins the test's outer transaction through savepoints.
            self.sessions = sessionmaker(bind=bind, expire_on_commit=False, join_transaction_mode="create_savepoint")
        configure_factory(self.sessions, cipher=self.cipher, audit_keys=self.audit_keys, clock=clock)
        track_loaded_records(self.sessions)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session that commits once at the end, or rolls back on any error (entry points only)."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def read_only(self) -> Iterator[Session]:
        """A session whose work is always rolled back: for reports that must leave the database as it was."""
        session = self.sessions()
        try:
            yield session
        finally:
            session.rollback()
            session.close()
