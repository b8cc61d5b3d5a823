"""``careloop patients quiet-hours|hold``: a patient's own settings and legal holds, as staff keep them.

``patients quiet-hours PATIENT_REF 21:30-07:30`` gives the patient quiet hours of their own (local
times where they live; the worker sends them no follow-up message then), ``--clear`` returns them to
the clinic's (``CARELOOP_QUIET_HOURS``), and without a range it says which hold. Audited; patients are
named by card number only.
"""

from __future__ import annotations

import click

from care.erasure import place_hold, release_hold
from care.errors import NotFoundError, ValidationFailedError
from care.patients import get_patient, set_quiet_hours
from care.quiet_hours import FORMAT, parse_quiet_hours, quiet_hours_text
from careloop.cli.base import CliContext, main, pass_cli


@main.group(name="patients")
def patients_group() -> None:
    """A patient's own settings (quiet hours) and legal holds."""


@patients_group.command(name="quiet-hours")
@click.argument("patient_ref")
@click.argument("hours", required=False, metavar="[HH:MM-HH:MM]")
@click.option("--clear", is_flag=True, help="Back to the clinic's quiet hours (CARELOOP_QUIET_HOURS).")
@pass_cli
def quiet_hours(cli: CliContext, patient_ref: str, hours: str | None, clear: bool) -> None:
    """Set (HH:MM-HH:MM, may cross midnight), clear or show the quiet hours of PATIENT_REF (card number or id)."""
    if hours is not None and clear:
        raise click.UsageError("give a range or --clear, not both")
    if hours is not None and parse_quiet_hours(hours) is None:
        raise click.BadParameter(f"must be a range of local times {FORMAT}", param_hint="'HH:MM-HH:MM'")
    clinic = quiet_hours_text(cli.settings.quiet_hours)
    with cli.unit_of_work() as session:
        try:
            patient = get_patient(session, patient_ref)
            if hours is not None or clear:
                set_quiet_hours(session, patient, None if clear else hours, actor=cli.actor)
        except (NotFoundError, ValidationFailedError) as problem:
            raise click.ClickException(str(problem)) from None
        own, zone, card = patient.quiet_hours, patient.timezone, patient.card_no
    if own is not None:
        click.echo(f"{card}: quiet hours {own} ({zone}), the patient's own (the clinic's: {clinic})")
    else:
        click.echo(f"{card}: quiet hours {clinic} ({zone}), the clinic's")


@patients_group.command()
@click.argument("patient_ref")
@click.option("--reason", required=True, help="Why the record must be kept (or why the hold ends).")
@click.option("--release", is_flag=True, help="Release the hold instead of placing it.")
@pass_cli
def hold(cli: CliContext, patient_ref: str, reason: str, release: bool) -> None:
    """Place (or release) a legal hold: a held patient cannot be erased."""
    with cli.unit_of_work() as session:
        patient = get_patient(session, patient_ref)
        if release:
            release_hold(session, patient, reason=reason, actor=cli.actor)
        else:
            place_hold(session, patient, reason=reason, actor=cli.actor)
    click.echo(f"legal hold on patient {patient.id} {'released' if release else 'placed'}")
