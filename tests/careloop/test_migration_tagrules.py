"""Migration 0006_tagrules on a database that already holds tagged patients.

The tags already set stay, unpinned (no rule set them, so no rule removes them either); the new
tables start empty; the downgrade takes them and the pin away again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from careloop import migrate
from careloop.db import make_engine
from security.storage import UtcDateTime

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
NEW_TABLES = ("tag_definitions", "tag_rules", "tag_rule_versions", "tag_rule_runs")
PATIENTS = sa.table("patients", *(sa.column(name, kind) for name, kind in [
    ("id", sa.Uuid()), ("card_no", sa.LargeBinary()), ("name", sa.LargeBinary()), ("gender", sa.LargeBinary()),
    ("birth_date", sa.LargeBinary()), ("language", sa.String()), ("timezone", sa.String()), ("status", sa.String()),
    ("created_at", UtcDateTime()), ("updated_at", UtcDateTime())]))
TAGS = sa.table("patient_tags", *(sa.column(name, kind) for name, kind in [
    ("id", sa.Uuid()), ("patient_id", sa.Uuid()), ("tag", sa.LargeBinary()), ("tag_bidx", sa.LargeBinary()),
    ("source", sa.LargeBinary()), ("added_at", UtcDateTime())]))


@pytest.fixture
def at_careteam(fresh_database_url):
    engine = make_engine(fresh_database_url)
    migrate.upgrade(engine, "0005_careteam")
    patient_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(PATIENTS.insert(), [{
            "id": patient_id, "card_no": b"x" * 29, "name": b"x" * 29, "gender": b"x" * 29,
            "birth_date": b"x" * 29, "language": "zh", "timezone": "Asia/Shanghai", "status": "active",
            "created_at": NOW, "updated_at": NOW}])
        connection.execute(TAGS.insert(), [{"id": uuid.uuid4(), "patient_id": patient_id, "tag": b"t" * 29,
                                            "tag_bidx": b"i" * 32, "source": b"s" * 29, "added_at": NOW}])
    yield engine
    engine.dispose()


def test_the_upgrade_keeps_every_tag_unpinned_and_starts_the_rules_empty(at_careteam):
    migrate.upgrade(at_careteam, "0006_tagrules")
    with at_careteam.connect() as connection:
        assert connection.execute(sa.text("SELECT pinned FROM patient_tags")).scalars().all() == [False]
        for table in NEW_TABLES:
            assert connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 0  # noqa: S608


def test_the_downgrade_takes_it_all_back_and_keeps_the_tags(at_careteam):
    migrate.upgrade(at_careteam, "0006_tagrules")
    migrate.downgrade(at_careteam, "0005_careteam")
    inspector = sa.inspect(at_careteam)
    assert "pinned" not in {column["name"] for column in inspector.get_columns("patient_tags")}
    assert not set(NEW_TABLES) & set(inspector.get_table_names())
    with at_careteam.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM patient_tags")).scalar() == 1
