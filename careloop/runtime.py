"""The running product's parts, built once from settings: key ring, database, blob folder, clock.

The web app, the CLI and the worker each build one :class:`Runtime`; nothing here starts a
server or a scheduler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from care.models import Erasure
from careloop.db import Database, make_engine
from careloop.settings import Settings
from security.audit import Sealing, open_audit_secret
from security.clock import Clock, SystemClock
from security.keys import KeyRing, KeyRingError, open_key_ring

logger = logging.getLogger("careloop.runtime")

# How long a web process may go on with the key ring it holds after ``careloop keys rotate`` elsewhere:
# the first request after this many seconds looks at the key file (a ``stat``; read only if it changed).
KEY_RING_CHECK_SECONDS = 10.0
# How far before the last erasure seen (or the start) the next look for erasures begins.
ERASURE_CLOCK_MARGIN = timedelta(minutes=5)


@dataclass
class Runtime:
    settings: Settings
    key_ring: KeyRing
    db: Database
    clock: Clock
    # The bot's wiring (careloop.bot_runtime.BotRuntime), built on first use by ``bot_for``.
    bot: Any = field(default=None, repr=False)
    # When the key file was last looked at (:meth:`refresh_key_ring`).
    _key_ring_looked_at: datetime | None = field(default=None, repr=False)
    # Erasures since this moment are looked for (:meth:`forget_erased_keys`); the runtime's start at first.
    _erasures_since: datetime | None = field(default=None, repr=False)
    _erasures_looked_at: datetime | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._erasures_since = self.clock.now() - ERASURE_CLOCK_MARGIN

    @property
    def blob_dir(self) -> Path:
        return self.settings.blob_dir

    def refresh_key_ring(self, *, every_seconds: float = 0.0) -> bool:
        """Pick up a key rotation made by another process; True when the ring was read again.

        Looks at the key file (one ``stat``) unless it looked less than ``every_seconds`` ago by the
        runtime's clock; reads it only if it changed. The ring is one object shared by everything of
        this runtime (the field cipher wraps new data keys under its primary), so a reload reaches all.
        A file that cannot be read or holds another root is logged, and the running ring kept.
        """
        now = self.clock.now()
        looked = self._key_ring_looked_at
        if looked is not None and looked <= now < looked + timedelta(seconds=every_seconds):
            return False
        self._key_ring_looked_at = now
        before = self.key_ring.primary
        try:
            reloaded = self.key_ring.refresh()
        except KeyRingError as problem:
            logger.error("key ring not reloaded: %s (primary version stays %d)", problem, before)
            return False
        if reloaded and self.key_ring.primary != before:
            logger.info("key ring reloaded: master key version %d is primary (was %d)", self.key_ring.primary, before)
        return reloaded

    def forget_erased_keys(self, *, every_seconds: float = 0.0) -> int:
        """Drop from this process's key cache the data keys of patients erased by another process since the
        last look (at most every ``every_seconds``); return how many erasures were found.

        ``careloop erase`` destroys the key in the database and in its own process; a web process or worker
        that read the patient earlier still holds the key in memory until this look.
        """
        now = self.clock.now()
        looked = self._erasures_looked_at
        if looked is not None and looked <= now < looked + timedelta(seconds=every_seconds):
            return 0
        self._erasures_looked_at = now
        since = self._erasures_since or now
        try:
            with self.db.read_only() as session:
                found = list(session.execute(select(Erasure.patient_id, Erasure.erased_at)
                                             .where(Erasure.erased_at >= since)))
        except SQLAlchemyError as failure:
            # The request or job goes on and meets the database's state itself (/healthz answers 503); the
            # look is made again after ``every_seconds``.
            logger.error("erasures not looked up (%s); looking again in %.0f s", type(failure).__name__,
                         every_seconds)
            return 0
        if not found:
            return 0
        self.db.cipher.forget(patient_id for patient_id, _ in found)
        # Erasing processes' clocks may lag this one's a little: the margin looks back past the newest seen.
        self._erasures_since = max(erased_at for _, erased_at in found) - ERASURE_CLOCK_MARGIN
        logger.info("dropped the data keys of %d erased patient(s) from this process's cache", len(found))
        return len(found)

    def close(self) -> None:
        self.db.engine.dispose()


def open_sealing(settings: Settings, *, create: bool = False) -> Sealing:
    """The audit chain key and anchor file, for the processes that seal or check the chain.

    Raises:
        AuditKeyError: the audit key is missing or unreadable.
    """
    secret = open_audit_secret(key_file=settings.audit_key_path, environment_value=settings.audit_key, create=create)
    return Sealing(secret, settings.audit_anchor_path)


def build_runtime(settings: Settings, *, clock: Clock | None = None, create_key: bool = False,
                  sealing: bool = False) -> Runtime:
    """Open the key ring (creating the key file if asked) and the database engine.

    With ``sealing`` (the worker, ``audit verify``, the demo's in-process worker) the runtime also
    holds the audit key, which the web process is never given. Nothing is checked against the
    database; the CLI opens its runtime through :mod:`careloop.readiness`, which first makes sure the
    database is initialised and the key is its own.
    """
    key_ring = open_key_ring(key_file=settings.key_file, environment_value=settings.master_key, create=create_key)
    chain = open_sealing(settings, create=create_key) if sealing else None
    return assemble_runtime(settings, key_ring, make_engine(settings.database_url), clock=clock, sealing=chain)


def assemble_runtime(settings: Settings, key_ring: KeyRing, engine: Engine, *, clock: Clock | None = None,
                     sealing: Sealing | None = None) -> Runtime:
    """Put a runtime together from a key ring and an engine already opened (``sealing``: the audit key)."""
    clock = clock or SystemClock()
    chain = sealing
    return Runtime(settings=settings, key_ring=key_ring,
                   db=Database(engine, key_ring=key_ring, clock=clock, sealing=chain), clock=clock)
