"""A backup reads one snapshot: rows the service commits while it reads are not half in it, and it blocks
no writer (SQLite: a deferred read transaction in WAL mode; PostgreSQL: read-only REPEATABLE READ)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from care.models import Erasure
from careloop import migrate
from careloop.db import make_engine, snapshot

ERASURES: Table = Erasure.__table__  # type: ignore[assignment]
FIRST = datetime(2026, 12, 1, tzinfo=UTC)


def erasure(reason: str) -> dict[str, object]:
    return {"id": uuid.uuid4(), "patient_id": uuid.uuid4(), "reason": reason, "erased_at": FIRST, "erased_by": "t"}


@pytest.fixture
def engine(fresh_database_url):
    engine = make_engine(fresh_database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def test_a_snapshot_does_not_see_what_is_committed_after_it_began_nor_blocks_the_writer(engine):
    with engine.begin() as writer:
        writer.execute(insert(ERASURES), [erasure("first")])
    with snapshot(engine) as reader:
        assert reader.scalar(select(func.count()).select_from(ERASURES)) == 1
        with engine.begin() as writer:  # commits at once, while the snapshot is open
            writer.execute(insert(ERASURES), [erasure("second")])
            writer.execute(update(ERASURES).values(erased_at=datetime(2026, 12, 2, tzinfo=UTC)))
        assert reader.scalar(select(func.count()).select_from(ERASURES)) == 1
        assert reader.scalar(select(ERASURES.c.erased_at)) == FIRST
    with engine.connect() as after:
        assert after.scalar(select(func.count()).select_from(ERASURES)) == 2


def test_a_snapshot_writes_nothing(engine):
    with snapshot(engine) as reader:
        if engine.dialect.name == "postgresql":
            with pytest.raises(DBAPIError, match="read-only transaction"):
                reader.execute(insert(ERASURES), [erasure("never")])
        else:
            reader.execute(insert(ERASURES), [erasure("rolled back")])
    with engine.connect() as after:
        assert after.scalar(select(func.count()).select_from(ERASURES)) == 0
