"""Migration 0010_quiet_hours on a database that already holds patients: they keep the clinic's quiet hours,
and neither the upgrade nor the downgrade touches the rows that name a patient (no table rebuild)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from careloop import migrate
from careloop.db import make_engine
from tests.careloop.test_migration_careteam import NOW, PATIENTS

CONSENTS = sa.table("channel_consents", *(sa.column(name, kind) for name, kind in [
    ("id", sa.Uuid()), ("patient_id", sa.Uuid()), ("channel", sa.String()), ("consented", sa.Boolean()),
    ("recording_consent", sa.Boolean()), ("opted_out", sa.Boolean()), ("created_at", sa.DateTime(timezone=True)),
    ("updated_at", sa.DateTime(timezone=True))]))


@pytest.fixture
def at_records(fresh_database_url):
    engine = make_engine(fresh_database_url)
    migrate.upgrade(engine, "0009_break_glass")
    patient_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(PATIENTS.insert(), [{
            "id": patient_id, "card_no": b"x" * 29, "name": b"x" * 29, "gender": b"x" * 29,
            "birth_date": b"x" * 29, "language": "zh", "timezone": "Asia/Shanghai", "status": "active",
            "created_at": NOW, "updated_at": NOW}])
        connection.execute(CONSENTS.insert(), [{
            "id": uuid.uuid4(), "patient_id": patient_id, "channel": "sms", "consented": True,
            "recording_consent": False, "opted_out": False, "created_at": datetime(2026, 12, 2, tzinfo=UTC),
            "updated_at": datetime(2026, 12, 2, tzinfo=UTC)}])
    yield engine
    engine.dispose()


def test_patients_keep_the_clinics_quiet_hours_and_their_rows_through_upgrade_and_downgrade(at_records):
    migrate.upgrade(at_records, "0010_quiet_hours")
    with at_records.connect() as connection:
        assert connection.execute(sa.text("SELECT quiet_hours FROM patients")).all() == [(None,)]
        assert connection.execute(sa.text("SELECT count(*) FROM channel_consents")).scalar() == 1
    migrate.downgrade(at_records, "0009_break_glass")
    columns = {column["name"] for column in sa.inspect(at_records).get_columns("patients")}
    assert "quiet_hours" not in columns
    with at_records.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM patients")).scalar() == 1
        assert connection.execute(sa.text("SELECT count(*) FROM channel_consents")).scalar() == 1
