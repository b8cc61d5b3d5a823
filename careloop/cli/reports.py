"""``careloop report PATIENT_REF --out FILE.pdf [--lang zh|en]``: the printable health report of one patient."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click

from care.clinical.common import Lang
from care.errors import NotFoundError
from care.patients import get_patient
from careloop.cli.base import CliContext, main, pass_cli


@main.command(name="report")
@click.argument("patient_ref")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the PDF.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default=None,
              help="Language of the report (default: the patient's language).")
@pass_cli
def report(cli: CliContext, patient_ref: str, out: Path, lang: str | None) -> None:
    """Print the A4 health report of PATIENT_REF (a card number or internal id) to a PDF file."""
    # Imported here: charts and PDF pull in matplotlib and ReportLab, which every other command can do without.
    from care.health_reports import print_health_report

    runtime = cli.runtime()
    # One unit of work: the printing is audited only when the file was written.
    with cli.unit_of_work() as session:
        try:
            patient = get_patient(session, patient_ref)
        except NotFoundError as problem:
            click.echo(f"error: {problem}", err=True)
            raise click.exceptions.Exit(1) from None
        settings = runtime.settings
        clinic_name = settings.clinic.name.in_language(lang or patient.language)
        pdf = print_health_report(session, patient, clinic_name=clinic_name, actor=cli.actor,
                                  lang=cast(Lang | None, lang), risk_defaults=settings.risk_defaults)
        try:
            out.write_bytes(pdf)
        except OSError as problem:
            click.echo(f"error: cannot write {out}: {problem.strerror or problem}", err=True)
            raise click.exceptions.Exit(1) from None
    click.echo(f"{out}: {len(pdf) // 1024 + 1} KB written")
