"""``careloop import patients FILE...`` (and the ``import`` group that report import joins)."""

from __future__ import annotations

from pathlib import Path

import click

from care.imports.patients import PATIENT_TEMPLATE, PatientImport, batches
from care.imports.tabular import TemplateError, read_rows
from careloop.cli.base import CliContext, main, pass_cli, progress_enabled
from security.audit import log

BATCH_ROWS = 500


@main.group(name="import")
def import_group() -> None:
    """Import patients or results from files."""


@import_group.command(name="patients")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@pass_cli
def import_patients(cli: CliContext, files: tuple[Path, ...]) -> None:
    """Enrol patients (开卡) from .xlsx/.csv files in the documented template; idempotent by card number."""
    runtime = cli.runtime()
    failed_files = 0
    any_rejected = False
    for path in files:
        if not path.is_file():
            click.echo(f"{path}: no such file", err=True)
            failed_files += 1
            continue
        job = PatientImport(actor=cli.actor)
        try:
            rows = read_rows(path, PATIENT_TEMPLATE)
            with click.progressbar(length=0, label=path.name, file=None, hidden=not progress_enabled(),
                                   show_pos=True) as bar:
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
                details={"file": path.name, "created": tally.created, "updated": tally.updated,
                         "unchanged": tally.unchanged, "rejected": tally.rejected})
        click.echo(f"{path}: {tally.created} created, {tally.updated} updated, {tally.unchanged} unchanged, "
                   f"{tally.rejected} rejected")
        for row_problem in tally.problems:
            click.echo(f"  {path.name}: {row_problem}", err=True)
        any_rejected = any_rejected or bool(tally.rejected)
    if failed_files or any_rejected:
        raise click.exceptions.Exit(1)
