"""The worker: the only process where APScheduler runs.

Each job is a function that takes a session, does one batch of due work found in the database
(rows, not in-memory jobs) and returns how many items it handled. A tick runs a job's batches
until it reports none left (or its time budget is spent), committing after every batch, so a
worker killed mid-tick loses at most one uncommitted batch, which the next tick redoes.
On PostgreSQL any number of workers may run (rows are claimed with SKIP LOCKED or a row lock);
on SQLite one worker holds a lock file and a second one refuses to start.

While it runs, a worker beats (:class:`Heartbeat`, a thread of its own, every couple of seconds):
that is how the others know that the outbox rows it claimed are still its own. A worker killed
mid-batch stops beating, and the rows it never attempted go to the next worker within seconds
instead of waiting out the lease (:mod:`bot.outbox.queue`). A worker that stops cleanly retires its
heartbeat at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, Any

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bot.jobs import Job, bot_jobs
from bot.outbox.queue import beat, retire
from care.exports import exports_folder, purge_files
from careloop.backups import backup_jobs
from careloop.bot_runtime import BotRuntime, bot_for
from careloop.runtime import KEY_RING_CHECK_SECONDS, Runtime
from security import audit
from security.fields import cipher_of, clock_of
from security.files import open_private
from security.session import audit_keys_of

logger = logging.getLogger("careloop.worker")

def seal_audit_batch(session: Session) -> int:
    """Seal the next batch of audit entries into the hash chain."""
    return audit.seal(session, audit_keys_of(session), now=clock_of(session).now(), limit=5000)


def rewrap_keys_batch(session: Session) -> int:
    """Move the next batch of data keys onto the primary master key (after ``keys rotate``)."""
    return cipher_of(session).rewrap_batch(session, now=clock_of(session).now(), limit=500)


FOUNDATION_JOBS: tuple[Job, ...] = (
    Job("rewrap_keys", 30, run_batch=rewrap_keys_batch),
    Job("seal_audit", 10, run_batch=seal_audit_batch),
)


def all_jobs(bot: BotRuntime | None = None) -> tuple[Job, ...]:
    """Every job the worker runs: the bot's (when there is a bot) and the foundation's."""
    if bot is None:
        return FOUNDATION_JOBS
    return (*bot_jobs(bot.services, bot.dispatcher), *FOUNDATION_JOBS)


class WorkerLockedError(RuntimeError):
    """Another worker already serves this SQLite database."""


@contextmanager
def single_worker_lock(runtime: Runtime) -> Iterator[None]:
    """On SQLite, hold an exclusive lock file beside the database for the worker's lifetime."""
    url = make_url(runtime.settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    lock_path = Path(url.database + ".worker.lock")
    handle: IO[str] = os.fdopen(open_private(lock_path, os.O_WRONLY | os.O_TRUNC), "w")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as busy:
            raise WorkerLockedError(
                "another worker is already running on this SQLite database (one worker per SQLite file)"
            ) from busy
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


class Heartbeat:
    """This worker's heartbeat, written every ``seconds`` by a thread of its own while the worker runs.

    Each beat is one short transaction of its own (no job's transaction is ever open around it);
    a failed beat is logged and the next one tried. Leaving the context retires the worker.
    """

    def __init__(self, runtime: Runtime, worker_id: str, seconds: float) -> None:
        self.runtime = runtime
        self.worker_id = worker_id
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        with self.runtime.db.unit_of_work() as session:
            beat(session, self.worker_id)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.beat()
            except Exception:
                logger.exception("worker %s: heartbeat not written; trying again", self.worker_id)

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread = threading.Thread(target=self._run, daemon=True, name="worker-heartbeat")
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.seconds + 5)
        try:
            with self.runtime.db.unit_of_work() as session:
                retire(session, self.worker_id)
        except Exception:  # its heartbeat then simply goes stale
            logger.exception("worker %s: could not retire its heartbeat", self.worker_id)


class Worker:
    """Runs jobs once (``--once``) or on a schedule, beating while it does when it has a ``worker_id``."""

    def __init__(self, runtime: Runtime, jobs: tuple[Job, ...], *, worker_id: str | None = None,
                 heartbeat_seconds: float = 2.0) -> None:
        self.runtime = runtime
        self.jobs = jobs
        self.worker_id = worker_id
        self.heartbeat_seconds = heartbeat_seconds

    @contextmanager
    def alive(self) -> Iterator[None]:
        """Beat for as long as the block runs (nothing to beat for without a worker id)."""
        if self.worker_id is None:
            yield
            return
        with Heartbeat(self.runtime, self.worker_id, self.heartbeat_seconds):
            yield

    def run_job(self, job: Job) -> int:
        """Run batches of ``job`` until it has nothing due or its budget is spent; return items handled.

        Each tick first picks up a key rotation made by another process (a ``stat`` of the key file),
        so that new data keys, and the re-wrapping job, use the primary version ``keys rotate`` made.
        """
        self.runtime.refresh_key_ring()
        self.runtime.forget_erased_keys(every_seconds=KEY_RING_CHECK_SECONDS)
        started = time.monotonic()
        handled = 0
        while True:
            if job.run_tick is not None:
                count = job.run_tick()
            else:
                assert job.run_batch is not None  # noqa: S101 - a Job has one or the other
                with self.runtime.db.unit_of_work() as session:
                    count = job.run_batch(session)
            handled += count
            if count == 0 or time.monotonic() - started > job.budget_seconds:
                break
        if handled:
            logger.info("job %s handled %d item(s)", job.name, handled)
        return handled

    def run_once(self) -> dict[str, int]:
        """Run every job's due work once (cron and tests)."""
        with self.alive():
            return {job.name: self.run_job(job) for job in self.jobs}

    def run_forever(self) -> None:
        """Tick every job on its interval until SIGTERM or SIGINT."""
        from apscheduler.schedulers.blocking import BlockingScheduler

        with self.alive():
            self._schedule(BlockingScheduler(timezone="UTC"))

    def _schedule(self, scheduler: Any) -> None:
        for job in self.jobs:
            scheduler.add_job(
                self.run_guarded, "interval", seconds=job.every_seconds, args=[job], id=job.name,
                max_instances=1, coalesce=True,
            )
            self.run_guarded(job)

        def stop(_signum: int, _frame: FrameType | None) -> None:
            scheduler.shutdown(wait=True)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        scheduler.start()

    def run_guarded(self, job: Job) -> None:
        try:
            self.run_job(job)
        except Exception:
            # One failing job must not stop the others; the row stays due and is retried next tick.
            logger.exception("job %s failed; it will be retried", job.name)


def worker_for(runtime: Runtime) -> Worker:
    """The worker process's runner: every job, beating under its dispatcher's id (the id its claims carry)."""
    bot = bot_for(runtime)
    folder = exports_folder(runtime.settings.blob_dir)
    # The panel's export files are removed after their hour even when nobody opens the exports page.
    purge = Job("purge_exports", 300, run_batch=lambda session: purge_files(session, folder))
    return Worker(runtime, (*all_jobs(bot), *backup_jobs(runtime), purge), worker_id=bot.dispatcher.worker_id,
                  heartbeat_seconds=bot.services.config.worker_heartbeat_seconds)
