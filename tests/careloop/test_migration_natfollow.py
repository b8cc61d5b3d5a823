"""Migration 0007_natfollow: a follow-up's and an observation's source holds "flow:<flow id>" for a long id."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from careloop import migrate
from careloop.db import make_engine

COLUMNS = (("followups", "source"), ("observations", "source"))


@pytest.fixture
def at_tagrules(fresh_database_url):
    engine = make_engine(fresh_database_url)
    migrate.upgrade(engine, "0007_plans")
    yield engine
    engine.dispose()


def lengths(engine) -> dict[tuple[str, str], int | None]:
    inspector = sa.inspect(engine)
    found = {}
    for table, column in COLUMNS:
        kind = next(item["type"] for item in inspector.get_columns(table) if item["name"] == column)
        found[(table, column)] = getattr(kind, "length", None)
    return found


def test_the_upgrade_widens_the_sources_and_the_downgrade_narrows_them_again(at_tagrules):
    assert set(lengths(at_tagrules).values()) == {32}
    migrate.upgrade(at_tagrules, "0007_natfollow")
    assert set(lengths(at_tagrules).values()) == {80}
    assert len("flow:national_hypertension_followup") > 32
    migrate.downgrade(at_tagrules, "0007_plans")
    assert set(lengths(at_tagrules).values()) == {32}
