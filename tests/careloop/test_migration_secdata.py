"""Migration 0002_secdata on a database that already holds rows: clear answers become ciphertexts.

The rows are written as revision 0001 stored them (``flow_results.category`` and
``advice_overrides.line_id`` in clear, audit entries sealed under the old chain key); the upgrade
must re-encrypt them under each patient's key, refuse to run without the key ring, leave no clear
value in the file, and go back down to clear text.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from care.models import AdviceOverride, FlowResult
from careloop import migrate
from careloop.db import Database, make_engine
from security import audit
from security.audit import AuditEntry, AuditKeys, Sealing
from security.clock import FixedClock
from security.crypto import FieldCipher
from security.keys import KeyRing
from security.storage import UtcDateTime, metadata
from tests.careloop.test_cli_foundation import raw_database_bytes
from tests.conftest import TEST_ACTOR

NOW = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
CATEGORIES = ["nearly_every_day", "more_than_half", None]
LINE = "mental.depression_assessment"

PATIENTS = sa.table("patients", *(sa.column(name, kind) for name, kind in [
    ("id", sa.Uuid()), ("card_no", sa.LargeBinary()), ("name", sa.LargeBinary()), ("gender", sa.LargeBinary()),
    ("birth_date", sa.LargeBinary()), ("language", sa.String()), ("timezone", sa.String()), ("status", sa.String()),
    ("created_at", UtcDateTime()), ("updated_at", UtcDateTime())]))
RESULTS = sa.table("flow_results", *(sa.column(name, kind) for name, kind in [
    ("id", sa.Uuid()), ("patient_id", sa.Uuid()), ("flow_id", sa.String()), ("flow_version", sa.Integer()),
    ("name", sa.String()), ("category", sa.String()), ("recorded_at", UtcDateTime())]))
OVERRIDES = sa.table("advice_overrides", *(sa.column(name, kind) for name, kind in [
    ("id", sa.Uuid()), ("patient_id", sa.Uuid()), ("line_id", sa.String()), ("suppressed", sa.Boolean()),
    ("updated_by", sa.String()), ("created_at", UtcDateTime()), ("updated_at", UtcDateTime())]))
AUDIT = sa.table("audit_log", *(sa.column(name, kind) for name, kind in [
    ("entry_id", sa.Uuid()), ("occurred_at", UtcDateTime()), ("actor_kind", sa.String()), ("actor_id", sa.String()),
    ("action", sa.String()), ("resource_type", sa.String()), ("resource_id", sa.String()),
    ("patient_id", sa.Uuid()), ("source", sa.String()), ("details", sa.Text()), ("mac", sa.LargeBinary()),
    ("seq", sa.BigInteger()), ("chain", sa.LargeBinary())]))


def seed_revision_0001(engine: sa.Engine, key_ring: KeyRing) -> dict[str, list[uuid.UUID]]:
    """Rows as revision 0001 wrote them: two patients with data keys, clear categories and line ids,
    two audit entries sealed under the chain key of old (derived from the master root)."""
    patients = [uuid.uuid4(), uuid.uuid4()]
    results = [uuid.uuid4() for _ in CATEGORIES]
    keys = AuditKeys(key_ring)
    with engine.begin() as connection:
        connection.execute(PATIENTS.insert(), [
            {"id": pid, "card_no": b"x" * 29, "name": b"x" * 29, "gender": b"x" * 29, "birth_date": b"x" * 29,
             "language": "zh", "timezone": "Asia/Shanghai", "status": "active", "created_at": NOW, "updated_at": NOW}
            for pid in patients])
        with Session(bind=connection) as session:
            FieldCipher(key_ring).load_keys(session, patients, create=True, now=NOW)
            session.flush()
        connection.execute(RESULTS.insert(), [
            {"id": rid, "patient_id": patients[index % 2], "flow_id": "phq9", "flow_version": 1,
             "name": f"phq9_q{index + 1}", "category": category, "recorded_at": NOW}
            for index, (rid, category) in enumerate(zip(results, CATEGORIES, strict=True))])
        connection.execute(OVERRIDES.insert(), [
            {"id": uuid.uuid4(), "patient_id": pid, "line_id": LINE, "suppressed": True, "updated_by": "doctor-1",
             "created_at": NOW, "updated_at": NOW} for pid in patients])
        with Session(bind=connection) as session:
            rows = [audit.entry_row(keys, session=session, actor=TEST_ACTOR, action="result.save",
                                    resource_type="flow_result", resource_id=rid, now=NOW) for rid in results[:2]]
        for number, row in enumerate(rows, start=1):
            del row["prev_entry_id"]  # no such column at 0001; the MAC of an entry without it is the old one
            row.update(seq=number, chain=bytes([number]) * 32)
        connection.execute(AUDIT.insert(), rows)
        connection.execute(text("INSERT INTO audit_chain_head (id, seq, chain, sealed_at, mac) "
                                "VALUES (1, 2, :chain, :at, :mac)"),
                           {"chain": b"\x02" * 32, "at": NOW.replace(tzinfo=None), "mac": b"\x00" * 32})
    return {"patients": patients, "results": results}


@pytest.fixture
def at_0001(fresh_database_url):
    engine = make_engine(fresh_database_url)
    migrate.upgrade(engine, "0001")
    yield engine
    engine.dispose()


def test_the_migrated_schema_is_the_models_schema(engine):
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata) == []


def test_the_upgrade_without_the_key_ring_refuses_and_changes_nothing(at_0001):
    engine = at_0001
    seed_revision_0001(engine, KeyRing.generate())
    with pytest.raises(RuntimeError, match="needs the key ring"):
        migrate.upgrade(engine)
    assert migrate.current_revision(engine) == "0001"
    with engine.connect() as connection:
        assert set(connection.execute(text("SELECT category FROM flow_results")).scalars()) == {*CATEGORIES}


def test_the_upgrade_reencrypts_existing_rows_and_the_downgrade_restores_them(at_0001, fresh_settings, tmp_path):
    engine = at_0001
    key_ring = KeyRing.generate()
    seeded = seed_revision_0001(engine, key_ring)
    migrate.upgrade(engine, key_ring=key_ring)
    assert migrate.current_revision(engine) == migrate.head_revision()

    sealing = Sealing(b"\x07" * 32, tmp_path / "audit.anchor")
    database = Database(engine, key_ring=key_ring, clock=FixedClock(NOW), sealing=sealing)
    with database.unit_of_work() as session:
        by_id = {row.id: row for row in session.scalars(select(FlowResult))}
        assert [by_id[rid].category for rid in seeded["results"]] == CATEGORIES
        for pid in seeded["patients"]:
            found = session.scalars(select(AdviceOverride).where(AdviceOverride.patient_id == pid,
                                                                 AdviceOverride.line_id.matches(session, LINE,
                                                                                            owner_id=pid))).one()
            assert found.line_id == LINE
        # The old seals are gone; the worker seals every entry again under the audit key, and it verifies.
        assert session.scalar(select(sa.func.count()).where(AuditEntry.seq.is_not(None))) == 0
        assert audit.seal(session, database.audit_keys, now=NOW) == 2
    with database.unit_of_work() as session:
        report = audit.verify(session, database.audit_keys)
        assert report.ok, report.problem
        assert report.sealed == 2
    engine.dispose()  # SQLite: the last connection closing checkpoints the WAL into the file
    dump = raw_database_bytes(fresh_settings, tmp_path)
    for clear in ("nearly_every_day", "more_than_half", LINE):
        assert clear.encode() not in dump, clear

    migrate.downgrade(engine, "0001", key_ring=key_ring)
    with engine.connect() as connection:
        stored = dict(connection.execute(sa.select(RESULTS.c.id, RESULTS.c.category)).all())
        assert [stored[rid] for rid in seeded["results"]] == CATEGORIES
        assert set(connection.execute(text("SELECT line_id FROM advice_overrides")).scalars()) == {LINE}
