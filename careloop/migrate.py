"""Schema migrations (Alembic) run programmatically on an engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine

from security.keys import KeyRing

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    return config


def upgrade(engine: Engine, revision: str = "head", *, key_ring: KeyRing | None = None) -> None:
    """Bring the schema to ``revision`` (creating it in an empty database).

    ``key_ring`` lets a migration re-encrypt the rows it changes (``careloop init`` passes it); a
    migration that finds rows to re-encrypt without it stops with a clear error.
    """
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        config.attributes["key_ring"] = key_ring
        command.upgrade(config, revision)


def upgrade_on(connection: Connection, revision: str, *, key_ring: KeyRing | None = None) -> None:
    """Bring the schema to ``revision`` inside the caller's transaction (a restore migrates and fills the
    database in one)."""
    config = alembic_config()
    config.attributes["connection"] = connection
    config.attributes["key_ring"] = key_ring
    command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str, *, key_ring: KeyRing | None = None) -> None:
    """Take the schema back to ``revision`` (developers and migration tests)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        config.attributes["key_ring"] = key_ring
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def autogenerate(engine: Engine, message: str) -> None:
    """Write a new revision from the difference between the models and the database (developers)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)


def is_known_revision(revision: str) -> bool:
    """Tell whether this build's migrations include ``revision`` (a newer build's database would not)."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False
