"""``careloop import patients FILE...`` and ``careloop import reports FILE...``."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Mapping
from pathlib import Path

import click

from care.imports.mappings import (
    ANY_SOURCE,
    MappedCode,
    MappingFileError,
    MappingRow,
    code_map,
    code_map_for,
    list_mappings,
    read_mapping_file,
    remove_mapping,
    store_mappings,
)
from care.imports.patients import PATIENT_TEMPLATE, PatientImport, batches
from care.imports.report_formats import (
    ParseContext,
    ReportFileError,
    ReportSource,
    UnknownFormatError,
    format_for_path,
)
from care.imports.reports import ReportImport
from care.imports.tabular import TemplateError, read_rows_from
from careloop.cli.base import CliContext, main, pass_cli, progress_enabled
from careloop.runtime import Runtime
from security.audit import log

# Rows per committed batch: large enough that each commit writes an index page once for many rows.
BATCH_ROWS = 2000


def file_digest(path: Path) -> str:
    """Return the SHA-256 of a file's bytes (hex): what an import's audit entry holds instead of its name.

    A file's name can be PHI ("zhang_san.xlsx"); its digest ties the entry to the file for whoever holds it.
    """
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@main.group(name="import")
def import_group() -> None:
    """Import patients or results from files."""


@import_group.command(name="patients")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@pass_cli
def import_patients(cli: CliContext, files: tuple[Path, ...]) -> None:
    """Enrol patients (开卡) from .xlsx/.csv files in the documented template; idempotent by card number."""
    runtime = cli.runtime()
    # A large import makes millions of short-lived objects; freezing what start-up loaded (SQLAlchemy,
    # phone-number metadata...) spares every full garbage collection from walking it again.
    gc.freeze()
    try:
        _import_patient_files(cli, runtime, files)
    finally:
        gc.unfreeze()


def _import_patient_files(cli: CliContext, runtime: Runtime, files: tuple[Path, ...]) -> None:
    failed_files = 0
    any_rejected = False
    for path in files:
        if not path.is_file():
            click.echo(f"{path}: no such file", err=True)
            failed_files += 1
            continue
        job = PatientImport(actor=cli.actor)
        try:
            handle = path.open("rb")
        except OSError as problem:
            click.echo(f"{path}: cannot be opened: {problem.strerror}", err=True)
            failed_files += 1
            continue
        try:
            with handle, click.progressbar(length=0, label=path.name, file=None, hidden=not progress_enabled(),
                                           show_pos=True) as bar:
                # The streaming reader: the same rows as openpyxl's, several times faster on a large workbook.
                rows = read_rows_from(handle, path.suffix.lower().lstrip("."), PATIENT_TEMPLATE, name=path.name)
                for batch in batches(rows, BATCH_ROWS):
                    with runtime.db.unit_of_work() as session:
                        job.process(session, batch)
                    bar.update(len(batch))
        except TemplateError as problem:
            click.echo(f"{path}: {problem}", err=True)
            failed_files += 1
            continue
        tally = job.tally
        with runtime.db.unit_of_work() as session:
            log(session, actor=cli.actor, action="import.patients", resource_type="file",
                details={"file_sha256": file_digest(path), "created": tally.created, "updated": tally.updated,
                         "unchanged": tally.unchanged, "rejected": tally.rejected})
        click.echo(f"{path}: {tally.created} created, {tally.updated} updated, {tally.unchanged} unchanged, "
                   f"{tally.rejected} rejected")
        for row_problem in tally.problems:
            click.echo(f"  {path.name}: {row_problem}", err=True)
        any_rejected = any_rejected or bool(tally.rejected)
    if failed_files or any_rejected:
        raise click.exceptions.Exit(1)


def _mapping_rows(path: Path) -> list[MappingRow]:
    """Read a mapping file, or print its problems (one a line) and exit 1."""
    try:
        return read_mapping_file(path)
    except MappingFileError as problem:
        click.echo(f"error: {problem}", err=True)
        for row_problem in problem.problems:
            click.echo(f"  {path.name}: {row_problem}", err=True)
        raise click.exceptions.Exit(1) from None


@import_group.command(name="reports")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--source", "source_name", default="file", show_default=True, metavar="NAME",
              help="The system the reports come from; a report id is unique per source.")
@click.option("--map", "map_file", type=click.Path(path_type=Path, dir_okay=False, exists=True), metavar="FILE.csv",
              help="The clinic's local codes for this import (local_code, code, unit); over the stored ones.")
@pass_cli
def import_reports(cli: CliContext, files: tuple[Path, ...], source_name: str, map_file: Path | None) -> None:
    """Import checkup and lab results: .xlsx/.csv (results template), HL7 v2 ORU^R01 (.hl7), FHIR R4 (.json).

    Idempotent by report id: importing a report again replaces its results, never duplicates them.
    A result whose code is not in the indicator table is kept as it came and counted, not refused.
    A report with any bad row is refused whole (each bad row is named); a file imports its good reports.
    """
    extra = code_map(_mapping_rows(map_file)) if map_file is not None else {}
    runtime = cli.runtime()
    with runtime.db.unit_of_work() as session:
        mapping = code_map_for(session, source_name, extra)
    # As for patients: freeze what start-up loaded, so that collections during a long import skip it.
    gc.freeze()
    try:
        failed = _import_report_files(cli, runtime, files, source_name, mapping)
    finally:
        gc.unfreeze()
    if failed:
        raise click.exceptions.Exit(1)


def _import_report_files(
    cli: CliContext, runtime: Runtime, files: tuple[Path, ...], source_name: str, mapping: Mapping[str, MappedCode]
) -> bool:
    """Import each file in turn; return True when anything failed or was refused."""
    failed = False
    for path in files:
        if not path.is_file():
            click.echo(f"{path}: no such file", err=True)
            failed = True
            continue
        try:
            fmt = format_for_path(path)
        except UnknownFormatError as problem:
            click.echo(f"{path}: {problem}", err=True)
            failed = True
            continue
        job = ReportImport(source=source_name, fmt=fmt, actor=cli.actor)
        context = ParseContext(today=runtime.clock.now().date(), code_map=mapping)
        try:
            with click.progressbar(length=0, label=path.name, file=None, hidden=not progress_enabled(),
                                   show_pos=True) as bar:
                for chunk in job.reports(ReportSource.from_path(path), context):
                    with runtime.db.unit_of_work() as session:
                        job.process(session, chunk)
                    bar.update(sum(report.rows for report in chunk))
        except ReportFileError as problem:
            # Reports already committed stay (each one whole); the rest of the file is not read.
            click.echo(f"{path}: {problem}", err=True)
            failed = True
        tally = job.tally
        with runtime.db.unit_of_work() as session:
            log(session, actor=cli.actor, action="import.reports", resource_type="file",
                details={"file_sha256": file_digest(path), "format": fmt.name, "source": source_name,
                         "patients": len(tally.patients),
                         **{f"reports_{name}": count for name, count in tally.reports.to_dict().items()},
                         **{f"rows_{name}": count for name, count in tally.rows.to_dict().items()},
                         **{f"rows_kept_{reason}": count.rows for reason, count in tally.kept.items()}})
        click.echo(f"{path}: {tally.summary()}")
        for report_problem in tally.problems:
            click.echo(f"  {path.name}: {report_problem}", err=True)
        if tally.problems_not_kept:
            click.echo(f"  {path.name}: ... and {tally.problems_not_kept} more problems", err=True)
        failed = failed or tally.reports.rejected > 0
    return failed


@import_group.group(name="mappings")
def mappings_group() -> None:
    """The clinic's local codes: what a checkup centre's own code means (used by every import of its source)."""


@mappings_group.command(name="add")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--source", "source_name", default=ANY_SOURCE, show_default=True, metavar="NAME",
              help="The source whose codes these are ('*': every source).")
@pass_cli
def mappings_add(cli: CliContext, file: Path, source_name: str) -> None:
    """Store the mappings of FILE (.csv/.xlsx: local_code, code, unit); a code stored before is updated."""
    rows = _mapping_rows(file)
    with cli.unit_of_work() as session:
        try:
            tally = store_mappings(session, rows, source=source_name, actor=cli.actor)
        except ValueError as problem:
            click.echo(f"error: {problem}", err=True)
            raise click.exceptions.Exit(2) from None
    click.echo(f"{file}: {tally} (source {source_name})")


@mappings_group.command(name="list")
@click.option("--source", "source_name", default=None, metavar="NAME", help="Only this source's mappings.")
@pass_cli
def mappings_list(cli: CliContext, source_name: str | None) -> None:
    """List the stored mappings: source, local code, code, unit."""
    with cli.unit_of_work() as session:
        rows = list_mappings(session, source_name)
        lines = [f"{row.source}\t{row.local_code}\t{row.target}\t{row.unit or ''}" for row in rows]
    if not lines:
        click.echo("no mappings stored")
        return
    click.echo("source\tlocal_code\tcode\tunit")
    for line in lines:
        click.echo(line)


@mappings_group.command(name="remove")
@click.argument("local_code")
@click.option("--source", "source_name", default=ANY_SOURCE, show_default=True, metavar="NAME")
@pass_cli
def mappings_remove(cli: CliContext, local_code: str, source_name: str) -> None:
    """Remove the stored mapping of LOCAL_CODE."""
    with cli.unit_of_work() as session:
        removed = remove_mapping(session, local_code, source=source_name, actor=cli.actor)
    if not removed:
        click.echo(f"error: no mapping of {local_code!r} is stored for source {source_name}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"{local_code}: removed (source {source_name})")
