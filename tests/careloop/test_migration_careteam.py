"""Migration 0005_careteam on a database that already holds roles and patients.

Existing patients are real (``is_test`` false); the administrator role, whatever a clinic made of it,
gains the permission to see every patient, so that no administrator loses sight of anyone when
the care-team filter starts; the downgrade takes both away again.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from careloop import migrate
from careloop.db import make_engine
from security.roles import Permission
from security.storage import UtcDateTime

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
ROLES = sa.table("roles", sa.column("id", sa.Uuid()), sa.column("name", sa.String()),
                 sa.column("title_zh", sa.String()), sa.column("title_en", sa.String()),
                 sa.column("permission_names", sa.JSON()))
PATIENTS = sa.table("patients", *(sa.column(name, kind) for name, kind in [
    ("id", sa.Uuid()), ("card_no", sa.LargeBinary()), ("name", sa.LargeBinary()), ("gender", sa.LargeBinary()),
    ("birth_date", sa.LargeBinary()), ("language", sa.String()), ("timezone", sa.String()), ("status", sa.String()),
    ("created_at", UtcDateTime()), ("updated_at", UtcDateTime())]))


@pytest.fixture
def at_worker(fresh_database_url):
    engine = make_engine(fresh_database_url)
    migrate.upgrade(engine, "0005_seclow")
    with engine.begin() as connection:
        connection.execute(ROLES.insert(), [
            {"id": uuid.uuid4(), "name": "admin", "title_zh": "系统管理员", "title_en": "Administrator",
             "permission_names": ["patient.read", "users.manage"]},
            {"id": uuid.uuid4(), "name": "nurse", "title_zh": "护士", "title_en": "Nurse",
             "permission_names": ["patient.read"]},
        ])
        connection.execute(PATIENTS.insert(), [{
            "id": uuid.uuid4(), "card_no": b"x" * 29, "name": b"x" * 29, "gender": b"x" * 29,
            "birth_date": b"x" * 29, "language": "zh", "timezone": "Asia/Shanghai", "status": "active",
            "created_at": NOW, "updated_at": NOW}])
    yield engine
    engine.dispose()


def permissions(engine: sa.Engine) -> dict[str, list[str]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(ROLES.c.name, ROLES.c.permission_names)).all()
    return {name: json.loads(names) if isinstance(names, str) else list(names) for name, names in rows}


def test_the_upgrade_keeps_patients_real_and_lets_administrators_see_everyone(at_worker):
    migrate.upgrade(at_worker, "0005_careteam")
    with at_worker.connect() as connection:
        assert connection.execute(sa.text("SELECT is_test, test_owner_id FROM patients")).all() == [(False, None)]
        for table in ("care_teams", "care_team_members", "care_team_patients"):
            assert connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 0  # noqa: S608
    granted = permissions(at_worker)
    assert granted["admin"] == ["patient.all_teams", "patient.read", "users.manage"]
    assert Permission.ALL_PATIENTS.value not in granted["nurse"]


def test_the_downgrade_takes_it_all_back(at_worker):
    migrate.upgrade(at_worker, "0005_careteam")
    migrate.downgrade(at_worker, "0005_seclow")
    assert permissions(at_worker)["admin"] == ["patient.read", "users.manage"]
    columns = {column["name"] for column in sa.inspect(at_worker).get_columns("patients")}
    assert "is_test" not in columns
    assert "test_owner_id" not in columns
    assert "care_teams" not in sa.inspect(at_worker).get_table_names()
