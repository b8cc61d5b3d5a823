"""Backups of a running clinic: create (one consistent snapshot), verify, restore into an empty database.

The file format is :mod:`security.backup`. A backup holds every table of the schema (rows read by the
models' column types, so the same rows go into SQLite or PostgreSQL), the blob store's files (already
sealed under their patients' data keys) and a manifest. Restoring migrates the empty database to the
backup's revision, inserts everything in one transaction, and then re-applies every erasure of the
erasure ledger (:mod:`careloop.erasure`): a patient erased after the backup was taken stays erased.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, Table, bindparam, delete, func, insert, inspect, select, text
from sqlalchemy.orm import Session

import bot.models  # noqa: F401 - registers the conversation tables on the shared metadata
import care.models  # noqa: F401 - registers every record table on the shared metadata
import security.key_identity  # noqa: F401 - registers the record of the database's master key
from bot.jobs import Job
from care.blobs import LocalBlobStore
from care.erasure import reapply_erasures
from careloop import migrate
from careloop.db import Database, snapshot
from careloop.runtime import Runtime
from security.audit import Actor, log
from security.backup import (
    BackupDamagedError,
    BackupError,
    BackupReader,
    BackupWriter,
    read_header,
    table_payload,
    table_rows,
)
from security.clock import FixedClock
from security.dialects import reset_identity
from security.erasure_ledger import read_ledger
from security.files import open_private, private_folder
from security.keys import KeyRing
from security.storage import metadata

#: Who the audit trail names for the worker's scheduled backups.
WORKER = Actor("system", "worker", "worker")
#: Rows a part holds: a few MB at most, so the writer and the reader hold one part at a time.
ROWS_PER_PART = 2000
#: Bytes of a blob a part holds.
BLOB_BYTES_PER_PART = 1024 * 1024
TABLE_PART = "table/"
BLOB_PART = "blob/"


@dataclass
class BackupSummary:
    path: Path
    revision: str
    tables: int
    rows: int
    blobs: int
    size: int


def _tables() -> list[Table]:
    return list(metadata.sorted_tables)


def create_backup(engine: Engine, key_ring: KeyRing, blob_dir: Path, out: Path, *, now: datetime) -> BackupSummary:
    """Write a backup of the whole database and blob store to ``out`` (mode 0600, written then renamed).

    The rows come from one snapshot (:func:`careloop.db.snapshot_options`), taken while the service runs.

    Raises:
        FileExistsError: ``out`` exists (a backup is never overwritten).
    """
    if out.exists():
        raise FileExistsError(f"{out} exists: a backup is never overwritten (choose another name)")
    temporary = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        with os.fdopen(open_private(temporary, os.O_WRONLY | os.O_EXCL), "wb") as handle:
            writer = BackupWriter(handle, key_ring, created_at=now)
            manifest = _write_snapshot(writer, engine, LocalBlobStore(blob_dir))
            manifest.update(created_at=now.isoformat(), key_id=key_ring.key_id)
            writer.finish(manifest)
            handle.flush()
            os.fsync(handle.fileno())
        # A link, not a rename: a backup that appeared meanwhile (another worker's) is never replaced.
        os.link(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    tables = cast(dict[str, int], manifest["tables"])
    return BackupSummary(out, str(manifest["revision"]), len(tables), sum(tables.values()),
                         len(cast(dict[str, Any], manifest["blobs"])), out.stat().st_size)


def _write_snapshot(writer: BackupWriter, engine: Engine, store: LocalBlobStore) -> dict[str, Any]:
    counts: dict[str, int] = {}
    with snapshot(engine) as connection:
        revision = connection.scalar(text("SELECT version_num FROM alembic_version"))
        present = _present_columns(connection)
        for table in _tables():
            if table.name in present:
                counts[table.name] = _write_table(writer, connection, table, present[table.name])
    blobs: dict[str, dict[str, Any]] = {}
    # After the snapshot: a recording's blob is written before the row naming it commits, so every blob
    # the snapshot names is here (a newer one too, which nothing in the backup names).
    for key in store.blob_keys():
        digest, size, piece = hashlib.sha256(), 0, 0
        with store.root.joinpath(key).open("rb") as blob:
            while chunk := blob.read(BLOB_BYTES_PER_PART):
                writer.add_part(f"{BLOB_PART}{key}/{piece}", chunk)
                digest.update(chunk)
                size += len(chunk)
                piece += 1
        blobs[key] = {"sha256": digest.hexdigest(), "bytes": size, "parts": piece}
    return {"revision": revision, "dialect": engine.dialect.name, "tables": counts, "blobs": blobs}


def _present_columns(connection: Connection) -> dict[str, set[str]]:
    """The columns each table of the database has (at its revision, which may be older than the models')."""
    inspector = inspect(connection)
    return {name: {column["name"] for column in inspector.get_columns(name)} for name in inspector.get_table_names()}


def _write_table(writer: BackupWriter, connection: Connection, table: Table, present: set[str]) -> int:
    # Read by the models' column types (engine-neutral values), limited to the columns the schema has.
    chosen = [column for column in table.columns if column.name in present]
    columns = [column.name for column in chosen]
    query = select(*chosen).order_by(*table.primary_key.columns)
    result = connection.execution_options(stream_results=True, yield_per=ROWS_PER_PART).execute(query)
    rows = 0
    for number, chunk in enumerate(result.partitions(ROWS_PER_PART)):
        writer.add_part(f"{TABLE_PART}{table.name}/{number}", table_payload(columns, [tuple(row) for row in chunk]))
        rows += len(chunk)
    return rows


# -- verify ---------------------------------------------------------------------------------------
def backup_key_id(path: Path) -> str:
    """The master key id a backup was made under (read from its clear header; no key needed)."""
    with _open(path) as handle:
        return read_header(handle, what=str(path)).key_id


def _open(path: Path) -> Any:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise BackupError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise BackupError(f"{path} is a folder, not a backup file") from None
    except OSError as problem:
        raise BackupError(f"{path} cannot be read: {problem.strerror}") from None


def verify_backup(path: Path, key_ring: KeyRing) -> dict[str, Any]:
    """Read and authenticate every part of the backup; return its manifest.

    Raises:
        BackupError: not a backup, or made under another key.
        BackupDamagedError: naming the first damaged part.
    """
    with _open(path) as handle:
        reader = BackupReader(handle, key_ring, what=str(path))
        counted: dict[str, int] = {}
        blob_digests: dict[str, Any] = {}
        for part in reader.parts():
            if part.name.startswith(TABLE_PART):
                name = part.name.split("/")[1]
                counted[name] = counted.get(name, 0) + len(table_rows(part.payload)[1])
            elif part.name.startswith(BLOB_PART):
                key = part.name[len(BLOB_PART):].rpartition("/")[0]
                blob_digests.setdefault(key, hashlib.sha256()).update(part.payload)
        assert reader.manifest is not None  # noqa: S101 - set when parts() ends without raising
        manifest = reader.manifest
    for name, rows in manifest["tables"].items():
        if counted.get(name, 0) != rows:
            raise BackupDamagedError(f"{path}: table {name} holds {counted.get(name, 0)} rows, "
                                     f"the manifest says {rows}")
    for key, facts in manifest["blobs"].items():
        digest = blob_digests.pop(key, None)
        if digest is None or digest.hexdigest() != facts["sha256"]:
            raise BackupDamagedError(f"{path}: blob {key} is not the one the manifest names")
    if blob_digests:
        raise BackupDamagedError(f"{path}: blob {min(blob_digests)} is not in the manifest")
    return manifest


def _parts(path: Path, key_ring: KeyRing) -> Iterator[tuple[str, bytes]]:
    with _open(path) as handle:
        for part in BackupReader(handle, key_ring, what=str(path)).parts():
            yield part.name, part.payload


# -- restore --------------------------------------------------------------------------------------
@dataclass
class RestoreSummary:
    revision: str
    rows: int
    blobs: int
    erasures_reapplied: int


def database_has_rows(connection: Connection) -> bool:
    """Whether any table of the schema holds a row (the ``alembic_version`` row aside)."""
    tables = set(connection.dialect.get_table_names(connection))
    return any(connection.scalar(select(func.count()).select_from(table)) for table in _tables()
               if table.name in tables)


def restore_backup(engine: Engine, key_ring: KeyRing, blob_dir: Path, path: Path, manifest: dict[str, Any], *,
                   force: bool, actor: Actor, ledger: Path, now: datetime) -> RestoreSummary:
    """Restore a verified backup into ``engine``'s database, in one transaction: migrate it to the backup's
    revision, insert every row (and write the blobs), migrate to this build's head, re-apply the erasure ledger.

    With ``force`` an initialised database is emptied first (in the same transaction).

    Raises:
        BackupError: a newer Careloop made the backup, a blob of another content is in the way, or (``force``)
            the database is at another revision than the backup.
        security.erasure_ledger.LedgerError: the erasure ledger is garbled or altered (nothing was restored).
    """
    revision = str(manifest["revision"])
    head = migrate.head_revision()
    if not migrate.is_known_revision(revision):
        raise BackupError(f"{path} was made by a newer Careloop (schema revision {revision}); restore it with "
                          "that version")
    store = LocalBlobStore(blob_dir)
    blobs: dict[str, dict[str, Any]] = manifest["blobs"]
    if not force:
        for key, facts in blobs.items():
            if store.exists(key) and hashlib.sha256(store.get(key)).hexdigest() != facts["sha256"]:
                raise BackupError(f"the blob store already holds {key} with other content (use --force to "
                                  "replace it)")
    erasures = read_ledger(ledger, key_ring)  # a garbled or altered ledger stops the restore before it begins
    rows = 0
    with engine.begin() as connection:
        if force:
            current = MigrationContext.configure(connection).get_current_revision()
            if current is not None and current != revision:
                raise BackupError(f"the database is at schema revision {current} and {path} at {revision}: "
                                  "restore it into an empty database")
            for table in reversed(_tables()):
                if connection.dialect.has_table(connection, table.name):
                    connection.execute(delete(table))
        # The backup's own schema first: its rows fit it; then this build's migrations take them to the head.
        migrate.upgrade_on(connection, revision, key_ring=key_ring)
        tables = {table.name: table for table in _tables()}
        present = _present_columns(connection)
        pieces: dict[str, list[bytes]] = {}
        for name, payload in _parts(path, key_ring):
            if name.startswith(TABLE_PART):
                table = tables[name.split("/")[1]]
                _, records = table_rows(payload)
                if records:
                    connection.execute(insert(table).values(
                        {column: bindparam(column, type_=table.c[column].type) for column in records[0]
                         if column in present[table.name]}), records)
                rows += len(records)
            elif name.startswith(BLOB_PART):
                key, _, _piece = name[len(BLOB_PART):].rpartition("/")
                pieces.setdefault(key, []).append(payload)
                if len(pieces[key]) == blobs[key]["parts"]:
                    store.put(key, b"".join(pieces.pop(key)))
        if revision != head:
            migrate.upgrade_on(connection, "head", key_ring=key_ring)
        for table in _tables():
            reset_identity(connection, table)
        session = _session_on(connection, key_ring, now)
        reapplied = reapply_erasures(session, erasures, actor=actor)
        log(session, actor=actor, action="backup.restore", resource_type="backup",
            details={"file": path.name, "revision": revision, "rows": rows, "blobs": len(blobs),
                     "erasures_reapplied": reapplied})
        session.commit()  # the savepoint; the restore's transaction commits as the block ends
        session.close()
    return RestoreSummary(revision, rows, len(blobs), reapplied)


def _session_on(connection: Connection, key_ring: KeyRing, now: datetime) -> Session:
    """A session in the restore's own transaction, carrying the security context (audit keys, cipher)."""
    return Database(connection.engine, key_ring=key_ring, clock=FixedClock(now), bind=connection).sessions()


# -- the worker's daily backup ----------------------------------------------------------------------
DAILY_NAME = re.compile(r"^careloop-(\d{4})(\d{2})(\d{2})\.backup$")


def daily_backup_name(day: date) -> str:
    return f"careloop-{day:%Y%m%d}.backup"


def retained(days: Iterable[date], *, keep_daily: int, keep_weekly: int) -> set[date]:
    """The days whose backups retention keeps: the newest ``keep_daily``, and the newest of each of the
    newest ``keep_weekly`` ISO weeks."""
    newest_first = sorted(set(days), reverse=True)
    kept = set(newest_first[:keep_daily])
    weeks: dict[tuple[int, int], date] = {}
    for day in newest_first:
        weeks.setdefault(day.isocalendar()[:2], day)
    kept.update(list(weeks.values())[:keep_weekly])
    return kept


def backups_in(folder: Path) -> dict[date, Path]:
    """The daily backups of ``folder`` by day (other files are left alone)."""
    found: dict[date, Path] = {}
    for path in folder.iterdir() if folder.is_dir() else ():
        match = DAILY_NAME.match(path.name)
        if match:
            try:
                found[date(*map(int, match.groups()))] = path
            except ValueError:
                continue
    return found


@dataclass
class DailyBackup:
    """The worker's job: once a (UTC) day, a backup into ``CARELOOP_BACKUP_DIR``, then retention; audited.

    Several workers may run: the file of the day is written under a temporary name and linked into place,
    so the second worker of the day finds it there and writes nothing.
    """

    runtime: Runtime

    def tick(self) -> int:
        settings = self.runtime.settings
        folder = settings.backup_dir
        if folder is None:
            return 0
        now = self.runtime.clock.now()
        today = now.astimezone(UTC).date()
        path = folder / daily_backup_name(today)
        if path.exists():
            return 0
        private_folder(folder)
        try:
            summary = create_backup(self.runtime.db.engine, self.runtime.key_ring, settings.blob_dir, path, now=now)
        except FileExistsError:
            return 0  # another worker wrote today's
        except Exception as failure:
            with self.runtime.db.unit_of_work() as session:
                log(session, actor=WORKER, action="backup.scheduled", resource_type="backup",
                    details={"outcome": "failed", "file": path.name, "error": type(failure).__name__})
            raise
        keep = retained(backups_in(folder), keep_daily=settings.backup_keep_daily,
                        keep_weekly=settings.backup_keep_weekly)
        removed = sorted(found.name for day, found in backups_in(folder).items() if day not in keep)
        for name in removed:
            (folder / name).unlink(missing_ok=True)
        with self.runtime.db.unit_of_work() as session:
            log(session, actor=WORKER, action="backup.scheduled", resource_type="backup",
                details={"outcome": "ok", "file": path.name, "rows": summary.rows, "blobs": summary.blobs,
                         "bytes": summary.size, "removed": " ".join(removed)})
        return 1


def backup_jobs(runtime: Runtime) -> tuple[Job, ...]:
    """The daily backup job, when ``CARELOOP_BACKUP_DIR`` names where backups go."""
    if runtime.settings.backup_dir is None:
        return ()
    return (Job("daily_backup", 3600, run_tick=DailyBackup(runtime).tick, budget_seconds=600),)
