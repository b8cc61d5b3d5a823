"""``careloop export observations|followups --out FILE.xlsx [--patient REF] [--lang zh|en]``: the record's results,
the follow-up records."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from care.clinical.common import Lang
from care.errors import NotFoundError
from care.followups import export_rows as followup_export_rows
from care.models import FollowUp, Patient, PatientStatus
from care.patients import get_patient, real_patients
from care.record_results import export_rows
from care.spreadsheet import safe_cell
from careloop.cli.base import CliContext, main, pass_cli, progress_enabled
from security.files import open_private

if TYPE_CHECKING:  # openpyxl is imported by the export commands themselves
    from openpyxl import Workbook


@main.group(name="export")
def export_group() -> None:
    """Export parts of the record to Excel (streamed, audited)."""


def _patients(session: Session, reference: str | None) -> list[Patient]:
    if reference is not None:
        return [get_patient(session, reference)]
    # Test patients (the simulator's) are nobody: the clinic's exports leave them out.
    query = select(Patient).where(Patient.status != PatientStatus.ERASED.value, real_patients()).order_by(Patient.id)
    return list(session.scalars(query))


def _save(workbook: Workbook, out: Path) -> None:
    """Write the workbook to ``out``, created 0600 (it is PHI); a file that cannot be written exits 1."""
    try:
        with os.fdopen(open_private(out, os.O_WRONLY | os.O_TRUNC), "wb") as handle:
            workbook.save(handle)
    except OSError as problem:
        click.echo(f"error: cannot write {out}: {problem.strerror or problem}", err=True)
        raise click.exceptions.Exit(1) from None


@export_group.command(name="observations")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the workbook (.xlsx).")
@click.option("--patient", "patient_ref", default=None, metavar="REF", help="Only this patient (card number or id).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="Language of the header and the names.")
@pass_cli
def export_observations(cli: CliContext, out: Path, patient_ref: str | None, lang: str) -> None:
    """Write every result of the record, those kept as they came (codes outside the indicator table) included."""
    from openpyxl import Workbook

    if out.suffix.lower() != ".xlsx":
        raise click.UsageError("--out must name an .xlsx file")
    with cli.unit_of_work() as session:
        try:
            patients = _patients(session, patient_ref)
        except NotFoundError as problem:
            click.echo(f"error: {problem}", err=True)
            raise click.exceptions.Exit(1) from None
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("observations" if lang == "en" else "检查结果")
        rows = 0
        with click.progressbar(length=len(patients), label=out.name, file=None, hidden=not progress_enabled(),
                               show_pos=True) as bar:
            def counted() -> Iterator[Patient]:
                for patient in patients:
                    yield patient
                    bar.update(1)

            for row in export_rows(session, counted(), lang=cast(Lang, lang), actor=cli.actor):
                sheet.append([safe_cell(value) for value in row])
                rows += 1
        _save(workbook, out)
    click.echo(f"{out}: {rows - 1} results of {len(patients)} patient(s) written")


@export_group.command(name="followups")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the workbook (.xlsx).")
@click.option("--patient", "patient_ref", default=None, metavar="REF", help="Only this patient (card number or id).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="Language of the header.")
@pass_cli
def export_followups(cli: CliContext, out: Path, patient_ref: str | None, lang: str) -> None:
    """Write the follow-up records: due, status, channel, outcome, staff member, notes and answers."""
    from openpyxl import Workbook

    if out.suffix.lower() != ".xlsx":
        raise click.UsageError("--out must name an .xlsx file")
    with cli.unit_of_work() as session:
        query = select(FollowUp).join(Patient, Patient.id == FollowUp.patient_id).where(
            Patient.status != PatientStatus.ERASED.value, real_patients())
        if patient_ref is not None:
            try:
                query = query.where(FollowUp.patient_id == get_patient(session, patient_ref).id)
            except NotFoundError as problem:
                click.echo(f"error: {problem}", err=True)
                raise click.exceptions.Exit(1) from None
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("followups" if lang == "en" else "随访记录")
        rows = 0
        # Streamed in pages: the clinic's follow-ups are never all in memory at once.
        followups = session.scalars(query.order_by(FollowUp.due_at, FollowUp.id).execution_options(yield_per=500))
        for row in followup_export_rows(session, followups, lang=lang, actor=cli.actor):
            sheet.append(list(row))
            rows += 1
        _save(workbook, out)
    click.echo(f"{out}: {rows - 1} follow-up(s) written")
