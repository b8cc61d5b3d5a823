"""Before a command touches data: is the database initialised, and is the master key the one it belongs to?

:func:`open_runtime` is how every command but ``init`` opens its runtime; :func:`open_for_init` is
``init``'s (it makes a key only for a database that has none). Each refusal is a
:class:`NotReadyError` whose message is one line a person can act on, never SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from careloop import migrate
from careloop.db import make_engine
from careloop.runtime import Runtime, assemble_runtime, open_sealing
from careloop.settings import Settings
from security.clock import Clock
from security.key_identity import RECORD_ID, KeyRingIdentity, fits_data
from security.keys import KeyRing, KeyRingError, open_key_ring

NOT_INITIALISED = "the database is not initialised: run careloop init first"
KEY_MISMATCH = "the master key does not match this database"
KEY_MISSING = "the master key is missing"


class NotReadyError(Exception):
    """The database or the key is not fit for the command; the message is one line to show as it is."""


@dataclass(frozen=True)
class DatabaseState:
    """What a database says about itself before anything is read from it."""

    revision: str | None
    key_id: str | None

    @property
    def initialised(self) -> bool:
        return self.revision is not None


def database_problem(failure: SQLAlchemyError, dialect: str | None = None) -> str:
    """Say in one line why the database refused, without the SQL statement or its parameters."""
    original = getattr(failure, "orig", None)
    text = str(original if original is not None else failure).strip()
    first = text.splitlines()[0].strip() if text else type(failure).__name__
    return f"the database{f' ({dialect})' if dialect else ''} refused: {first}"


def sqlite_file_absent(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return False
    return not Path(parsed.database).exists()


def inspect_database(engine: Engine) -> DatabaseState:
    """Read the schema revision and the recorded key id (both None in an empty database)."""
    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
            key_id = None
            if revision is not None and inspect(connection).has_table(KeyRingIdentity.__tablename__):
                key_id = connection.scalar(select(KeyRingIdentity.key_id).where(KeyRingIdentity.id == RECORD_ID))
    except SQLAlchemyError as failure:
        raise NotReadyError(database_problem(failure, engine.dialect.name)) from failure
    return DatabaseState(revision=revision, key_id=key_id)


def _expects(state: DatabaseState) -> str:
    if state.key_id is None:
        return "this database was made with a master key it records no key id of"
    return f"this database expects key id {state.key_id}"


def open_key(settings: Settings, state: DatabaseState) -> KeyRing:
    """Open the key ring for an initialised database, never making one; refuse a missing ring."""
    if not settings.master_key and not settings.key_file.exists():
        raise NotReadyError(
            f"{KEY_MISSING}: {_expects(state)}, and there is no key file at {settings.key_file} and no "
            "CARELOOP_MASTER_KEY; restore the key file from your backup (mode 0600) or set CARELOOP_MASTER_KEY "
            "(careloop will not make a new key for a database that has data under one)"
        )
    try:
        return open_key_ring(key_file=settings.key_file, environment_value=settings.master_key)
    except KeyRingError as problem:
        raise NotReadyError(f"the master key cannot be used: {problem}") from problem


def check_key(engine: Engine, key_ring: KeyRing, state: DatabaseState) -> None:
    """Refuse a key ring that is not the database's own (by its recorded id, else by the data it holds)."""
    restore = ("restore the key this database was made with (its key file, or CARELOOP_MASTER_KEY, "
               "which wins over the file)")
    if state.key_id is not None:
        if state.key_id != key_ring.key_id:
            raise NotReadyError(f"{KEY_MISMATCH}: it expects key id {state.key_id}, but "
                                f"{key_ring.describe_source()} has key id {key_ring.key_id}; {restore}")
        return
    try:
        with Session(engine) as session:
            fits = fits_data(session, key_ring)
    except SQLAlchemyError as failure:
        raise NotReadyError(database_problem(failure, engine.dialect.name)) from failure
    if fits is False:
        raise NotReadyError(f"{KEY_MISMATCH}: {key_ring.describe_source()} (key id {key_ring.key_id}) does not "
                            f"open the data already stored (the database records no key id yet); {restore}")


def check_schema(state: DatabaseState) -> None:
    """Refuse a schema older (or newer) than this build's migrations."""
    head = migrate.head_revision()
    if state.revision == head or state.revision is None:
        return
    check_known_schema(state)
    raise NotReadyError(f"the database schema is at revision {state.revision}, this Careloop needs {head}: "
                        "run careloop init to upgrade it")


def check_known_schema(state: DatabaseState) -> None:
    """Refuse a schema revision this build's migrations do not include (a newer Careloop made it)."""
    if state.revision is not None and not migrate.is_known_revision(state.revision):
        raise NotReadyError(f"the database schema is at revision {state.revision}, which this Careloop does not "
                            "know: the database was made by a newer version of Careloop")


def open_runtime(settings: Settings, *, clock: Clock | None = None, sealing: bool = False) -> Runtime:
    """Open the runtime of an initialised, up-to-date database with its own master key.

    :raises NotReadyError: not initialised, the key missing or another one, the schema behind, or the
        database unreachable; nothing was written.
    """
    if sqlite_file_absent(settings.database_url):
        raise NotReadyError(NOT_INITIALISED)  # and no empty file is left behind
    engine = make_engine(settings.database_url)
    try:
        state = inspect_database(engine)
        if not state.initialised:
            raise NotReadyError(NOT_INITIALISED)
        key_ring = open_key(settings, state)
        check_key(engine, key_ring, state)
        check_schema(state)
        chain = open_sealing(settings) if sealing else None
    except BaseException:
        engine.dispose()  # also when the audit key is missing: no connection is left to the collector
        raise
    return assemble_runtime(settings, key_ring, engine, clock=clock, sealing=chain)


def open_for_init(settings: Settings, *, clock: Clock | None = None) -> Runtime:
    """Open the runtime ``init`` migrates: a new key only for a database never initialised.

    An initialised database must come with its own key, exactly as for :func:`open_runtime`; its
    schema may be behind (``init`` upgrades it).
    """
    engine = make_engine(settings.database_url)
    try:
        state = inspect_database(engine)
        if state.initialised:
            check_known_schema(state)
            key_ring = open_key(settings, state)
            check_key(engine, key_ring, state)
        else:
            try:
                key_ring = open_key_ring(key_file=settings.key_file, environment_value=settings.master_key,
                                         create=True)
            except KeyRingError as problem:
                raise NotReadyError(f"the master key cannot be used: {problem}") from problem
        chain = open_sealing(settings, create=True)
    except BaseException:
        engine.dispose()
        raise
    return assemble_runtime(settings, key_ring, engine, clock=clock, sealing=chain)
