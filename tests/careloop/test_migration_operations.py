"""Migration 0011_operations: legal holds and the erasure record, and back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from careloop import migrate
from careloop.db import make_engine

TABLES = {"legal_holds", "erasures"}


@pytest.fixture
def before_operations(fresh_database_url):
    engine = make_engine(fresh_database_url)
    migrate.upgrade(engine, "0010_quiet_hours")
    yield engine
    engine.dispose()


def tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) & TABLES


def test_the_upgrade_adds_the_hold_and_erasure_tables_and_the_downgrade_removes_them(before_operations):
    assert tables(before_operations) == set()
    migrate.upgrade(before_operations, "0011_operations")
    assert migrate.current_revision(before_operations) == "0011_operations"
    assert tables(before_operations) == TABLES
    unique = {tuple(constraint["column_names"]) for constraint in
              sa.inspect(before_operations).get_unique_constraints("erasures")}
    assert ("patient_id",) in unique
    migrate.downgrade(before_operations, "0010_quiet_hours")
    assert tables(before_operations) == set()
