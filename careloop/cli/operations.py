"""``careloop backup create|verify|restore`` and ``careloop erase`` (a legal hold: ``careloop patients hold``)."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import Engine

from care.erasure import erase_patient
from care.patients import get_patient
from careloop import migrate
from careloop.backups import backup_key_id, create_backup, database_has_rows, restore_backup, verify_backup
from careloop.cli.base import CliContext, main, operator, pass_cli
from careloop.db import make_engine
from careloop.readiness import NotReadyError, check_key, inspect_database, open_key, sqlite_file_absent
from careloop.settings import Settings
from security.audit import Actor, log
from security.backup import BackupError
from security.clock import SystemClock
from security.erasure_ledger import LedgerEntry, LedgerError, append_erasure
from security.keys import KeyRing, KeyRingError, open_key_ring

BACKUP_FILE = click.Path(path_type=Path, dir_okay=False)


@main.group()
def backup() -> None:
    """Encrypted, checksummed backups; restore into an empty database of either engine."""


@backup.command(name="create")
@click.option("--out", "out", required=True, type=BACKUP_FILE, help="The backup file to write (mode 0600).")
@pass_cli
def backup_create(cli: CliContext, out: Path) -> None:
    """Write a consistent snapshot of every table and the blob store, compressed and encrypted."""
    runtime = cli.runtime()
    now = runtime.clock.now()
    try:
        summary = create_backup(runtime.db.engine, runtime.key_ring, runtime.settings.blob_dir, out, now=now)
    except FileExistsError as exists:
        raise click.ClickException(str(exists)) from None
    except OSError as problem:
        raise click.ClickException(f"{out} cannot be written: {problem.strerror}") from None
    with cli.unit_of_work() as session:
        log(session, actor=cli.actor, action="backup.create", resource_type="backup",
            details={"file": out.name, "revision": summary.revision, "rows": summary.rows, "blobs": summary.blobs,
                     "bytes": summary.size})
    click.echo(f"backup written: {out} ({summary.tables} tables, {summary.rows} rows, {summary.blobs} blobs, "
               f"{summary.size} bytes, schema revision {summary.revision})")


def _key_for_backup(settings: Settings, path: Path) -> KeyRing:
    """The key ring a backup file needs (never made here), the file's own header read first."""
    try:
        key_id = backup_key_id(path)
    except BackupError as problem:
        raise click.ClickException(str(problem)) from None
    if not settings.master_key and not settings.key_file.exists():
        raise click.ClickException(
            f"the master key is missing: {path} was made under key id {key_id}, and there is no key file at "
            f"{settings.key_file} and no CARELOOP_MASTER_KEY; restore the key file the backup was made with")
    try:
        return open_key_ring(key_file=settings.key_file, environment_value=settings.master_key)
    except KeyRingError as problem:
        raise click.ClickException(f"the master key cannot be used: {problem}") from None


@backup.command(name="verify")
@click.argument("path", type=BACKUP_FILE)
@pass_cli
def backup_verify(cli: CliContext, path: Path) -> None:
    """Check every part of a backup against its manifest without restoring; exit 1 naming the first damaged."""
    key_ring = _key_for_backup(cli.settings, path)
    try:
        manifest = verify_backup(path, key_ring)
    except BackupError as problem:
        raise click.ClickException(str(problem)) from None
    rows = sum(manifest["tables"].values())
    click.echo(f"backup intact: {path} made {manifest['created_at']}, schema revision {manifest['revision']}, "
               f"{len(manifest['tables'])} tables, {rows} rows, {len(manifest['blobs'])} blobs, "
               f"{len(manifest['parts'])} parts checked")


def _target(settings: Settings, force: bool) -> Engine | None:
    """The database to restore into, refused if it holds data (unless ``force``) or has another key."""
    if sqlite_file_absent(settings.database_url):
        return None  # made only once the backup has been verified
    engine = make_engine(settings.database_url)
    try:
        state = inspect_database(engine)
        if not state.initialised:
            return engine
        key_ring = open_key(settings, state)
        check_key(engine, key_ring, state)
        with engine.connect() as connection:
            has_rows = database_has_rows(connection)
    except BaseException:
        engine.dispose()
        raise
    if has_rows and not force:
        engine.dispose()
        raise click.ClickException("the database is not empty: restore into an empty database, or add --force to "
                                   "replace everything in it with the backup")
    return engine


@backup.command(name="restore")
@click.argument("path", type=BACKUP_FILE)
@click.option("--force", is_flag=True, help="Replace the contents of a database that is not empty.")
@pass_cli
def backup_restore(cli: CliContext, path: Path, force: bool) -> None:
    """Restore a backup into an empty database (SQLite or PostgreSQL), then re-apply the erasure ledger."""
    settings = cli.settings
    try:
        engine = _target(settings, force)
    except NotReadyError as refused:
        raise click.ClickException(str(refused)) from None
    try:
        key_ring = _key_for_backup(settings, path)
        try:
            manifest = verify_backup(path, key_ring)
        except BackupError as problem:
            raise click.ClickException(str(problem)) from None
        if engine is None:
            engine = make_engine(settings.database_url)
        actor = Actor("system", f"cli:{operator()}", f"cli:{operator()}")
        try:
            summary = restore_backup(engine, key_ring, settings.blob_dir, path, manifest, force=force, actor=actor,
                                     ledger=settings.erasure_ledger_path, now=SystemClock().now())
        except (BackupError, LedgerError) as problem:
            raise click.ClickException(str(problem)) from None
    finally:
        if engine is not None:
            engine.dispose()
    upgraded = "" if summary.revision == migrate.head_revision() else f" (migrated to {migrate.head_revision()})"
    click.echo(f"restored {path}: schema revision {summary.revision}{upgraded}, {summary.rows} rows, "
               f"{summary.blobs} blobs; "
               f"{summary.erasures_reapplied} erasure(s) of the ledger re-applied")


@main.command()
@click.argument("patient_ref")
@click.option("--reason", required=True, help="Why (kept in the audit trail), e.g. the patient's written request.")
@pass_cli
def erase(cli: CliContext, patient_ref: str, reason: str) -> None:
    """Erase one patient by destroying their data key (crypto-shredding); the audit trail keeps that it happened."""
    runtime = cli.runtime()
    with cli.unit_of_work() as session:
        patient_id = get_patient(session, patient_ref).id
        erasure = erase_patient(session, patient_id, reason=reason, actor=cli.actor)
        session.flush()
        # Before the commit: an erasure that commits is always in the ledger that every restore re-applies.
        try:
            append_erasure(runtime.settings.erasure_ledger_path, runtime.key_ring,
                           LedgerEntry(patient_id, erasure.erased_at))
        except OSError as problem:
            raise click.ClickException(f"the erasure ledger {runtime.settings.erasure_ledger_path} cannot be "
                                       f"written ({problem.strerror}); nothing was erased") from None
    click.echo(f"patient {patient_id} erased: their data key is destroyed, their records are unreadable "
               f"(ledger: {runtime.settings.erasure_ledger_path})")
