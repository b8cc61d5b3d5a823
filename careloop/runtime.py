"""The running product's parts, built once from settings: key ring, database, blob folder, clock.

The web app, the CLI and the worker each build one :class:`Runtime`; nothing here starts a
server or a scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from careloop.db import Database, make_engine
from careloop.settings import Settings
from security.clock import Clock, SystemClock
from security.keys import KeyRing, open_key_ring


@dataclass
class Runtime:
    settings: Settings
    key_ring: KeyRing
    db: Database
    clock: Clock
    # The bot's wiring (careloop.bot_runtime.BotRuntime), built on first use by ``bot_for``.
    bot: Any = field(default=None, repr=False)

    @property
    def blob_dir(self) -> Path:
        return self.settings.blob_dir

    def close(self) -> None:
        self.db.engine.dispose()


def build_runtime(settings: Settings, *, clock: Clock | None = None, create_key: bool = False) -> Runtime:
    """Open the key ring (creating the key file if asked) and the database engine.

    Nothing is checked against the database; the CLI opens its runtime through
    :mod:`careloop.readiness`, which first makes sure the database is initialised and the key is its own.
    """
    key_ring = open_key_ring(key_file=settings.key_file, environment_value=settings.master_key, create=create_key)
    return assemble_runtime(settings, key_ring, make_engine(settings.database_url), clock=clock)


def assemble_runtime(settings: Settings, key_ring: KeyRing, engine: Engine, *, clock: Clock | None = None) -> Runtime:
    """Put a runtime together from a key ring and an engine already opened."""
    clock = clock or SystemClock()
    return Runtime(settings=settings, key_ring=key_ring, db=Database(engine, key_ring=key_ring, clock=clock),
                   clock=clock)
