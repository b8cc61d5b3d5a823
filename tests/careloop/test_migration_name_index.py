"""Migration 0009_name_index: every enrolled patient's name gets its blind index from the decrypted name."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from care.models import Patient
from careloop import migrate
from careloop.db import Database, make_engine
from security.clock import FixedClock
from security.crypto import FieldCipher, field_aad
from security.keys import KeyRing
from security.storage import UtcDateTime

NOW = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
PATIENTS = sa.table("patients", *(sa.column(name, kind) for name, kind in [
    ("id", sa.Uuid()), ("card_no", sa.LargeBinary()), ("name", sa.LargeBinary()), ("gender", sa.LargeBinary()),
    ("birth_date", sa.LargeBinary()), ("language", sa.String()), ("timezone", sa.String()), ("status", sa.String()),
    ("created_at", UtcDateTime()), ("updated_at", UtcDateTime())]))


def seed_before(engine: sa.Engine, key_ring: KeyRing, names: list[str]) -> list[uuid.UUID]:
    """Patients named ``names``, as revision 0008_interventions stored them (no name index)."""
    cipher = FieldCipher(key_ring)
    ids = [uuid.uuid4() for _ in names]
    with engine.begin() as connection:
        with Session(bind=connection) as session:
            keys = {pid: cipher.data_key(session, pid, create=True, now=NOW) for pid in ids}
            session.flush()
        connection.execute(PATIENTS.insert(), [
            {"id": pid, "card_no": b"x" * 29, "gender": b"x" * 29, "birth_date": b"x" * 29, "language": "zh",
             "timezone": "Asia/Shanghai", "status": "active", "created_at": NOW, "updated_at": NOW,
             "name": cipher.seal(keys[pid], field_aad("patients", "name", pid), name.encode())}
            for pid, name in zip(ids, names, strict=True)])
    return ids


@pytest.fixture
def engine(fresh_database_url):
    engine = make_engine(fresh_database_url)
    migrate.upgrade(engine, "0008_interventions")
    yield engine
    engine.dispose()


def test_the_upgrade_indexes_each_name_so_that_a_search_finds_it(engine):
    key_ring = KeyRing.generate()
    wang, smith = seed_before(engine, key_ring, ["王秀英", "John  Smith"])
    migrate.upgrade(engine, key_ring=key_ring)
    database = Database(engine, key_ring=key_ring, clock=FixedClock(NOW))
    with database.unit_of_work() as session:
        assert session.scalars(select(Patient.id).where(Patient.name.matches(session, "王秀英"))).all() == [wang]
        assert session.scalars(select(Patient.id).where(Patient.name.matches(session, "john smith"))).all() == [smith]
    migrate.downgrade(engine, "0008_interventions", key_ring=key_ring)
    assert "name_bidx" not in {column["name"] for column in sa.inspect(engine).get_columns("patients")}


def test_without_the_key_ring_the_upgrade_of_a_clinic_with_patients_stops_and_changes_nothing(engine):
    seed_before(engine, KeyRing.generate(), ["李建华"])
    with pytest.raises(RuntimeError, match="needs the key ring"):
        migrate.upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0008_interventions"
