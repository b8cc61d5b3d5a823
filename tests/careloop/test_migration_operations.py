"""Migration 0009_operations: legal holds and the erasure record, and back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from careloop import migrate
from careloop.db import make_engine

TABLES = {"legal_holds", "erasures"}


@pytest.fixture
def at_interventions(fresh_database_url):
    engine = make_engine(fresh_database_url)
    migrate.upgrade(engine, "0008_interventions")
    yield engine
    engine.dispose()


def tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) & TABLES


def test_the_upgrade_adds_the_hold_and_erasure_tables_and_the_downgrade_removes_them(at_interventions):
    assert tables(at_interventions) == set()
    migrate.upgrade(at_interventions, "0009_operations")
    assert migrate.current_revision(at_interventions) == migrate.head_revision() == "0009_operations"
    assert tables(at_interventions) == TABLES
    unique = {tuple(constraint["column_names"]) for constraint in
              sa.inspect(at_interventions).get_unique_constraints("erasures")}
    assert ("patient_id",) in unique
    migrate.downgrade(at_interventions, "0008_interventions")
    assert tables(at_interventions) == set()
