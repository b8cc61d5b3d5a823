"""``careloop report PATIENT_REF --out FILE.pdf [--lang zh|en]``: the printable health report of one patient."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from care.clinical.common import Label, Lang
from care.errors import NotFoundError
from care.patients import get_patient
from careloop.cli.base import CliContext, main, pass_cli
from careloop.settings import Settings
from security.files import open_private

if TYPE_CHECKING:  # the PDF module pulls in ReportLab, which only printing needs
    from care.clinical.report_pdf import ReportClinic

#: The English name printed when the clinic has set only a Chinese one.
#: The demo clinic's English name (the settings' default), for a clinic that gave only a Chinese one.
DEFAULT_CLINIC_NAME_EN = Settings().clinic_name_en


def _has_cjk(text: str) -> bool:
    return any("\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff" for char in text)


def report_clinic(settings: Settings) -> ReportClinic:
    """Return the clinic lines of the report from the clinic settings (CONTRACT.md), each language its own.

    ``CARELOOP_CLINIC_NAME``/``_ADDRESS`` are the Chinese text, ``..._EN`` the English; an English
    report never prints the Chinese name or address: without ``_EN`` it prints the name only when it
    has no Chinese characters (else :data:`DEFAULT_CLINIC_NAME_EN`) and leaves the address out.
    """
    from care.clinical.report_pdf import ReportClinic

    def text(name: str) -> str:
        value = getattr(settings, name, None)
        return value.strip() if isinstance(value, str) else ""

    name_zh = text("clinic_name") or text("clinic_name_en")
    name_en = text("clinic_name_en") or (name_zh if name_zh and not _has_cjk(name_zh) else DEFAULT_CLINIC_NAME_EN)
    address_zh = text("clinic_address") or text("clinic_address_en")
    address_en = text("clinic_address_en") or (address_zh if not _has_cjk(address_zh) else "")
    address = Label(address_zh, address_en) if address_zh or address_en else None
    return ReportClinic(name=Label(name_zh or name_en, name_en), address=address, phone=text("clinic_phone") or None)


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
        pdf = print_health_report(session, patient, clinic=report_clinic(settings), actor=cli.actor,
                                  lang=cast(Lang | None, lang), risk_defaults=settings.risk_defaults)
        try:
            with os.fdopen(open_private(out, os.O_WRONLY | os.O_TRUNC), "wb") as handle:  # 0600: it is PHI
                handle.write(pdf)
        except OSError as problem:
            click.echo(f"error: cannot write {out}: {problem.strerror or problem}", err=True)
            raise click.exceptions.Exit(1) from None
    click.echo(f"{out}: {len(pdf) // 1024 + 1} KB written")
