"""``careloop doctor``: check the installation, one line per check, exit 1 if any fails.

    ok    settings: read (channels: console)
    ok    key: instance/master.key (mode 600)
    ok    database: sqlite, schema at revision 0002
    ok    files: key, audit, database and blob files private (0600, folders 0700)
    FAIL  flows: 9 installed, 1 file left out
            flow left out: /srv/flows/typo.yaml:nps_got: 'cases[2].next' names the node 'sory', which does not exist

Each check is a function in :data:`CHECKS`, run in order; a check that needs the database is skipped
(and says so) when the database could not be opened.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from careloop.backups import backups_in
from careloop.cli.base import CliContext, main, pass_cli
from careloop.file_modes import loose_file_lines
from careloop.flow_library import load_flow_library, problem_lines
from careloop.readiness import NotReadyError
from careloop.runtime import Runtime
from careloop.settings import Settings, SettingsError
from security import audit
from security.audit import AuditKeyError
from security.erasure_ledger import LedgerError, read_ledger
from security.files import write_private
from security.session import audit_keys_of

#: The most the application's clock and the database's may differ before the check fails.
MAX_CLOCK_SKEW_SECONDS = 120.0
#: The oldest the newest scheduled backup may be (the worker writes one a day).
MAX_BACKUP_AGE_DAYS = 2


@dataclass
class Finding:
    """What one check found: passed or not, one line of summary, and lines of detail under it."""

    name: str
    ok: bool
    summary: str
    details: list[str] = field(default_factory=list)


@dataclass
class Scene:
    """What the checks look at: the settings, and the runtime once the database check opened it."""

    cli: CliContext
    settings: Settings
    runtime: Runtime | None = None
    audit_key_problem: str | None = None


def check_key(scene: Scene) -> Finding:
    settings = scene.settings
    if settings.master_key:
        return Finding("key", True, "from CARELOOP_MASTER_KEY")
    path = settings.key_file
    if not path.is_file():
        return Finding("key", False, f"no key file at {path} (run careloop init, or restore it from your backup)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return Finding("key", False, f"{path} is mode {mode:o}, readable by others: chmod 600 {path}")
    return Finding("key", True, f"{path} (mode {mode:o})")


def check_database(scene: Scene) -> Finding:
    try:
        scene.runtime = scene.cli.runtime(sealing=True)
    except AuditKeyError as missing:
        # The audit key belongs to the worker's machine; without it everything else is still checked.
        scene.audit_key_problem = str(missing)
        try:
            scene.runtime = scene.cli.runtime()
        except NotReadyError as refused:
            return Finding("database", False, str(refused))
    except NotReadyError as refused:
        return Finding("database", False, str(refused))
    runtime = scene.runtime
    with runtime.db.engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
    return Finding("database", True, f"{runtime.db.dialect}, schema at revision {revision}, "
                                     f"master key {runtime.key_ring.key_id} matches")


def check_files(scene: Scene) -> Finding:
    # The key file has its own check above; every other file and blob folder is told here.
    loose = loose_file_lines(scene.settings, leave_out=frozenset({scene.settings.key_file}))
    if loose:
        return Finding("files", False, f"{len(loose)} readable by group or others", loose)
    return Finding("files", True, "key, audit, database and blob files private (0600, folders 0700)")


def check_channels(scene: Scene) -> Finding:
    status = scene.settings.channel_status()
    off = {channel: why for channel, why in status.items() if why is not None}
    shown = ", ".join(channel if why is None else f"{channel} off ({why})" for channel, why in status.items())
    return Finding("channels", not off, shown)


def check_blob_store(scene: Scene) -> Finding:
    folder = scene.settings.blob_dir
    if folder.exists():
        if not folder.is_dir():
            return Finding("blob store", False, f"{folder} is not a folder")
        # A file written and removed: permission bits say nothing of a read-only mount or a full disk.
        probe = folder / f".doctor-{uuid.uuid4().hex}.tmp"
        try:
            write_private(probe, b"careloop doctor")
        except OSError as problem:
            return Finding("blob store", False, f"{folder}: a file cannot be written ({problem.strerror})")
        finally:
            probe.unlink(missing_ok=True)
        return Finding("blob store", True, f"{folder} (writable)")
    parent = next((path for path in folder.absolute().parents if path.exists()), Path("/"))
    if os.access(parent, os.W_OK | os.X_OK):
        return Finding("blob store", True, f"{folder} (made at first use)")
    return Finding("blob store", False, f"{folder} does not exist and {parent} is not writable")


def check_erasure_ledger(scene: Scene) -> Finding:
    path = scene.settings.erasure_ledger_path
    if scene.runtime is None:
        return Finding("erasure ledger", False, "not checked: the database could not be opened")
    try:
        entries = read_ledger(path, scene.runtime.key_ring)
    except LedgerError as problem:
        return Finding("erasure ledger", False, str(problem))
    if not entries:
        return Finding("erasure ledger", True, f"{path} (no erasure yet)")
    return Finding("erasure ledger", True, f"{path} ({len(entries)} erasure(s), each authenticates)")


def check_backups(scene: Scene) -> Finding:
    folder = scene.settings.backup_dir
    if folder is None:
        return Finding("backups", True, "no scheduled backup (CARELOOP_BACKUP_DIR not set)")
    if folder.exists() and not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        return Finding("backups", False, f"{folder} is not a folder this user can write to")
    found = backups_in(folder)
    if not found:
        return Finding("backups", True, f"{folder} (none yet: the worker writes one a day)")
    newest = max(found)
    now = scene.runtime.clock.now() if scene.runtime is not None else datetime.now(UTC)
    age_days = (now.astimezone(UTC).date() - newest).days
    if age_days > MAX_BACKUP_AGE_DAYS:
        return Finding("backups", False, f"the newest backup, {found[newest].name}, is {age_days} days old: "
                                         "is the worker running?")
    return Finding("backups", True, f"{folder} ({len(found)} kept, newest {found[newest].name})")


def check_flows(scene: Scene) -> Finding:
    library = load_flow_library(scene.settings)
    extra = f" (with {', '.join(map(str, scene.settings.flows_dirs))})" if scene.settings.flows_dirs else ""
    if not library.problems:
        return Finding("flows", True, f"{len(library)} installed{extra}")
    left_out = len({problem.file for problem in library.problems})
    noun = "file" if left_out == 1 else "files"
    return Finding("flows", False, f"{len(library)} installed{extra}, {left_out} {noun} left out",
                   problem_lines(library))


def check_audit(scene: Scene) -> Finding:
    if scene.runtime is None:
        return Finding("audit", False, "not checked: the database could not be opened")
    if scene.audit_key_problem is not None:
        return Finding("audit", False, f"not checked: {scene.audit_key_problem} (run doctor where the worker runs)")
    with scene.runtime.db.unit_of_work() as session:
        report = audit.verify(session, audit_keys_of(session))
    if not report.ok:
        first = report.problems[0]
        where = f"first affected seq {first.seq}" if first.seq is not None else "an entry awaiting sealing"
        return Finding("audit", False, f"BROKEN, {where}: {first.message}")
    return Finding("audit", True, f"chain intact ({report.sealed} sealed, {report.unsealed} awaiting sealing)")


def check_clock(scene: Scene) -> Finding:
    if scene.runtime is None:
        return Finding("clock", False, "not checked: the database could not be opened")
    runtime = scene.runtime
    with runtime.db.engine.connect() as connection:
        value = connection.execute(text("SELECT CURRENT_TIMESTAMP")).scalar()
    database_now = _as_utc(value)
    now = runtime.clock.now()
    if database_now is None or now.tzinfo is None:
        return Finding("clock", False, f"cannot compare the clock ({now.isoformat()}) with the database's ({value})")
    skew = abs((now - database_now).total_seconds())
    if skew > MAX_CLOCK_SKEW_SECONDS:
        return Finding("clock", False, f"this machine and the database differ by {skew:.0f} s: set the time (NTP)")
    return Finding("clock", True, f"{now.astimezone(UTC).isoformat(timespec='seconds')} (database within {skew:.0f} s)")


def _as_utc(value: object) -> datetime | None:
    """Read the database's CURRENT_TIMESTAMP: an aware datetime, or UTC as a naive one or as text."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


CHECKS: tuple[Callable[[Scene], Finding], ...] = (
    check_key, check_database, check_files, check_channels, check_blob_store, check_flows, check_audit, check_clock,
    check_erasure_ledger, check_backups,
)


@main.command()
@pass_cli
def doctor(cli: CliContext) -> None:
    """Check settings, key file, database and schema, file modes, channels, blob store, flows, audit, clock,
    erasure ledger and backups."""
    try:
        settings = cli.settings
    except SettingsError as bad:
        click.echo(f"FAIL  settings: {bad}")
        raise click.ClickException(str(bad)) from None
    click.echo(f"ok    settings: read (channels: {', '.join(settings.channels)})")
    scene = Scene(cli=cli, settings=settings)
    failed: list[Finding] = []
    for check in CHECKS:
        finding = check(scene)
        if not finding.ok:
            failed.append(finding)
        click.echo(f"{'ok  ' if finding.ok else 'FAIL'}  {finding.name}: {finding.summary}")
        for line in finding.details:
            click.echo(f"        {line}")
    if not failed:
        return
    # One line on stderr, as every command gives: the database's refusal (init first, the wrong key) says
    # what to do before anything else can be checked; otherwise, which checks failed.
    database = next((finding for finding in failed if finding.name == "database"), None)
    if database is not None:
        raise click.ClickException(database.summary)
    names = ", ".join(finding.name for finding in failed)
    raise click.ClickException(f"{len(failed)} check{'s' if len(failed) > 1 else ''} failed: {names}")
