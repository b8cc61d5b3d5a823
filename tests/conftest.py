"""Shared fixtures: one real database per run (SQLite file, or PostgreSQL when
``CARELOOP_TEST_DATABASE_URL`` is set), migrated once, and a transaction per test rolled back.

Tests that need committed data seen by other processes (the CLI, raw-file inspection, pg_dump)
ask for ``fresh_database_url``: its own SQLite file or its own PostgreSQL schema.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from care.models import Patient
from care.patients import EnrolmentRequest, enroll
from careloop import migrate
from careloop.db import Database, make_engine
from careloop.runtime import Runtime
from careloop.settings import Settings
from security.audit import Actor, Sealing
from security.clock import FixedClock
from security.keys import KeyRing

PG_ENV = "CARELOOP_TEST_DATABASE_URL"
TEST_ACTOR = Actor("system", "pytest", "tests")


def _pg_base_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def with_search_path(url: str, schema: str) -> str:
    parsed = make_url(url)
    return parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


class SchemaMaker:
    """Creates PostgreSQL schemas for a run and drops them all at its end."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.engine = make_engine(base_url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def new(self, prefix: str) -> str:
        schema = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with self.engine.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        self.created.append(schema)
        return with_search_path(self.base_url, schema)

    def drop_all(self) -> None:
        with self.engine.connect() as connection:
            for schema in self.created:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        self.engine.dispose()


@pytest.fixture(scope="session")
def schema_maker() -> Iterator[SchemaMaker | None]:
    base = _pg_base_url()
    if base is None:
        yield None
        return
    maker = SchemaMaker(base)
    yield maker
    maker.drop_all()


@pytest.fixture(scope="session")
def dialect_name() -> str:
    return "postgresql" if _pg_base_url() else "sqlite"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, schema_maker: SchemaMaker | None) -> str:
    if schema_maker is not None:
        return schema_maker.new("careloop_test")
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def key_ring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 29, 2, 0, tzinfo=UTC))


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    connection = engine.connect()
    outer = connection.begin()
    yield connection
    if outer.is_active:
        outer.rollback()
    connection.close()


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements sent to the database while the test runs, in order."""
    seen: list[str] = []

    def note(_conn: Connection, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    yield seen
    event.remove(engine, "before_cursor_execute", note)


@pytest.fixture(scope="session")
def audit_secret() -> bytes:
    return os.urandom(32)


@pytest.fixture
def sealing(audit_secret: bytes, tmp_path: Path) -> Sealing:
    """The sealing process's audit key and anchor file (the anchor is the test's own)."""
    return Sealing(audit_secret, tmp_path / "audit.anchor")


@pytest.fixture
def database(engine: Engine, connection: Connection, key_ring: KeyRing, clock: FixedClock,
             sealing: Sealing) -> Database:
    """The app's Database, its sessions joined to the test's rolled-back transaction (it may seal, as the
    worker's does)."""
    return Database(engine, key_ring=key_ring, clock=clock, bind=connection, sealing=sealing)


@pytest.fixture
def db(database: Database) -> Iterator[Session]:
    """A session in the test's transaction (rolled back at the end)."""
    session = database.sessions()
    yield session
    session.close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(database_url=database_url, key_file=tmp_path / "master.key", blob_dir=tmp_path / "blobs",
                    public_url="https://clinic.example.test")


@pytest.fixture
def runtime(settings: Settings, database: Database, key_ring: KeyRing, clock: FixedClock) -> Runtime:
    return Runtime(settings=settings, key_ring=key_ring, db=database, clock=clock)


def flask_app_for(runtime: Runtime) -> Flask:
    """The web application on ``runtime``, in Flask's testing mode."""
    from careloop.app import create_app

    application = create_app(runtime=runtime)
    application.config.update(TESTING=True)
    return application


@pytest.fixture
def app(runtime: Runtime) -> Flask:
    return flask_app_for(runtime)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def fresh_database_url(tmp_path: Path, schema_maker: SchemaMaker | None) -> str:
    """A database of its own (empty, not migrated), for tests whose data must be committed."""
    if schema_maker is not None:
        return schema_maker.new("careloop_fresh")
    return f"sqlite:///{tmp_path / 'fresh.db'}"


@pytest.fixture
def fresh_settings(tmp_path: Path, fresh_database_url: str) -> Settings:
    return Settings(database_url=fresh_database_url, key_file=tmp_path / "keys" / "master.key",
                    blob_dir=tmp_path / "blobs")


@pytest.fixture
def run_cli(fresh_settings: Settings, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``careloop`` in-process on the fresh database; returns (exit code, stdout, stderr)."""
    from careloop.cli import run

    def invoke(*argv: str, settings: Settings | None = None) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run(list(argv), settings=settings or fresh_settings)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


_serial = iter(range(1, 10_000_000))


@pytest.fixture
def make_patient(db: Session) -> Callable[..., Patient]:
    """Enrol a synthetic patient; keyword arguments override the defaults."""

    def factory(**overrides: Any) -> Patient:
        number = next(_serial)
        values: dict[str, Any] = {
            "card_no": f"T{number:07d}",
            "name": f"测试{number}",
            "gender": "F",
            "birth_date": date(1960, 5, 17),
            "phone": f"+86138{number:08d}",
            "language": "zh",
        }
        values.update(overrides)
        patient = enroll(db, EnrolmentRequest(**values), actor=TEST_ACTOR).patient
        db.flush()
        return patient

    return factory
