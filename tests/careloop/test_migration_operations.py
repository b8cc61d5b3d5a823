"""Migration 0009_operations: legal holds and the erasure record, and back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from careloop import migrate
from careloop.db import make_engine

TABLES = {"legal_holds", "erasures"}


@pytest.fixture
def at_break_glass(fresh_database_url):
    engine = make_engine(fresh_database_url)
    migrate.upgrade(engine, "0009_break_glass")
    yield engine
    engine.dispose()


def tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) & TABLES


def test_the_upgrade_adds_the_hold_and_erasure_tables_and_the_downgrade_removes_them(at_break_glass):
    assert tables(at_break_glass) == set()
    migrate.upgrade(at_break_glass, "0009_operations")
    assert migrate.current_revision(at_break_glass) == migrate.head_revision() == "0009_operations"
    assert tables(at_break_glass) == TABLES
    unique = {tuple(constraint["column_names"]) for constraint in
              sa.inspect(at_break_glass).get_unique_constraints("erasures")}
    assert ("patient_id",) in unique
    migrate.downgrade(at_break_glass, "0009_break_glass")
    assert tables(at_break_glass) == set()
