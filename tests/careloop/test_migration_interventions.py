"""Migration 0008_interventions: the intervention tables and a follow-up's education message, and back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from careloop import migrate
from careloop.db import make_engine

TABLES = {"intervention_programs", "intervention_program_versions", "intervention_enrolments"}


@pytest.fixture
def at_records(fresh_database_url):
    engine = make_engine(fresh_database_url)
    migrate.upgrade(engine, "0007_records")
    yield engine
    engine.dispose()


def schema(engine) -> tuple[set[str], set[str]]:
    inspector = sa.inspect(engine)
    tables = set(inspector.get_table_names()) & TABLES
    return tables, {column["name"] for column in inspector.get_columns("followups")}


def test_the_upgrade_adds_the_intervention_tables_and_the_downgrade_removes_them(at_records):
    tables, columns = schema(at_records)
    assert (tables, "content_key" in columns) == (set(), False)
    migrate.upgrade(at_records, "0008_interventions")
    assert migrate.current_revision(at_records) == "0008_interventions"
    tables, columns = schema(at_records)
    assert (tables, "content_key" in columns) == (TABLES, True)
    migrate.downgrade(at_records, "0007_records")
    tables, columns = schema(at_records)
    assert (tables, "content_key" in columns) == (set(), False)
