"""Alembic environment: runs on the connection the caller hands in (see careloop.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import bot.models  # noqa: F401 - registers the conversation tables on the shared metadata
import care.models  # noqa: F401 - registers every record table on the shared metadata
import security.key_identity  # noqa: F401 - registers the record of the database's master key
from security.storage import metadata

config = context.config


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `careloop init` (careloop.migrate.upgrade)")
run_migrations(connection)
