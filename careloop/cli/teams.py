"""``careloop teams add|list|show`` / ``teams members add|remove`` / ``teams patients add|remove``: care teams.

A staff member sees in the panel only the patients of their care teams (administrators and the
clinic lead see everyone); these commands make the teams and fill them. Each change is audited
under the command's actor (``--as EMAIL``, else the operating-system user and host); a command
naming one unknown account or patient changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import click
from sqlalchemy.orm import Session

from care import care_teams, staff
from care.errors import ConflictError, NotFoundError, ValidationFailedError
from care.models import CareTeam
from care.patients import get_patient
from careloop.cli.base import CliContext, main, pass_cli
from security.audit import Actor, log


@main.group(name="teams")
def teams_group() -> None:
    """Care teams: which staff members look after which patients (what each sees in the panel)."""


def _team(session: Session, name: str) -> CareTeam:
    try:
        return care_teams.get_team(session, name)
    except NotFoundError as problem:
        raise click.ClickException(str(problem)) from None


@teams_group.command(name="add")
@click.argument("name")
@pass_cli
def add(cli: CliContext, name: str) -> None:
    """Make the care team NAME (one line, at most 64 characters; unique whatever the case)."""
    try:
        with cli.unit_of_work() as session:
            team = care_teams.create_team(session, name, actor=cli.actor)
            created = team.name
    except ValidationFailedError as problem:
        raise click.BadParameter(problem.problems[0].reason, param_hint="'NAME'") from None
    except ConflictError as problem:
        raise click.ClickException(str(problem)) from None
    click.echo(f"Care team {created!r} created. Add staff with: careloop teams members add {created!r} EMAIL")


@teams_group.command(name="list")
@pass_cli
def list_teams(cli: CliContext) -> None:
    """List the care teams: name, members' e-mails, number of patients (no patient is shown)."""
    with cli.unit_of_work() as session:
        rows = [(team.name, ",".join(team.member_emails) or "-", str(team.patient_count))
                for team in care_teams.list_teams(session)]
    if not rows:
        click.echo("no care teams (add one with: careloop teams add NAME)")
        return
    header = ("team", "members", "patients")
    widths = [max(len(header[column]), *(len(row[column]) for row in rows)) for column in range(3)]
    for row in [header, *rows]:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


@teams_group.command(name="show")
@click.argument("name")
@pass_cli
def show(cli: CliContext, name: str) -> None:
    """Show the team NAME: its members (e-mail, role) and its patients' card numbers (audited per patient)."""
    with cli.unit_of_work() as session:
        team = _team(session, name)
        members = [(user.email, user.role.name) for user in care_teams.members_of(session, team)]
        cards = []
        for patient in care_teams.patients_of(session, team):
            cards.append(patient.card_no or "")
            log(session, actor=cli.actor, action="patient.view", resource_type="patient", resource_id=patient.id,
                patient_id=patient.id, details={"view": "care_team"})
        title = team.name
    click.echo(f"care team {title!r}: {len(members)} member(s), {len(cards)} patient(s)")
    for email, role in members:
        click.echo(f"  member   {email}  ({role})")
    for card in cards:
        click.echo(f"  patient  {card}")


Change = Callable[..., bool]


def _apply(cli: CliContext, name: str, references: tuple[str, ...], *, find: Callable[[Session, str], object],
           change: Change, done: str, unchanged: str) -> None:
    """Find every account or patient first (one unknown: nothing changes), then change each; say what happened."""
    lines = []
    with cli.unit_of_work() as session:
        team = _team(session, name)
        found = [(reference, find(session, reference)) for reference in references]
        actor: Actor = cli.actor
        for reference, target in found:
            changed = change(session, team, target, actor=actor)
            lines.append(f"{reference}: {done if changed else unchanged} {team.name!r}")
    for line in lines:
        click.echo(line)


def _find_user(session: Session, email: str) -> object:
    try:
        return staff.get_user(session, email)
    except NotFoundError as problem:
        raise click.ClickException(str(problem)) from None


def _find_patient(session: Session, reference: str) -> object:
    try:
        return get_patient(session, reference)
    except NotFoundError as problem:
        raise click.ClickException(str(problem)) from None


@teams_group.group(name="members")
def members_group() -> None:
    """The staff members of a care team."""


@members_group.command(name="add")
@click.argument("name")
@click.argument("emails", metavar="EMAIL...", nargs=-1, required=True)
@pass_cli
def members_add(cli: CliContext, name: str, emails: tuple[str, ...]) -> None:
    """Put the staff accounts EMAIL... in the team NAME: they see its patients from their next page."""
    _apply(cli, name, emails, find=_find_user, change=care_teams.add_member, done="added to",
           unchanged="already a member of")


@members_group.command(name="remove")
@click.argument("name")
@click.argument("emails", metavar="EMAIL...", nargs=-1, required=True)
@pass_cli
def members_remove(cli: CliContext, name: str, emails: tuple[str, ...]) -> None:
    """Take the staff accounts EMAIL... out of the team NAME: they stop seeing its patients at once."""
    _apply(cli, name, emails, find=_find_user, change=care_teams.remove_member, done="removed from",
           unchanged="not in")


@teams_group.group(name="patients")
def patients_group() -> None:
    """The patients a care team looks after."""


@patients_group.command(name="add")
@click.argument("name")
@click.argument("references", metavar="PATIENT_REF...", nargs=-1, required=True)
@pass_cli
def patients_add(cli: CliContext, name: str, references: tuple[str, ...]) -> None:
    """Put the patients PATIENT_REF... (card numbers or ids) in the care of the team NAME."""
    _apply(cli, name, references, find=_find_patient, change=care_teams.add_patient, done="added to",
           unchanged="already in")


@patients_group.command(name="remove")
@click.argument("name")
@click.argument("references", metavar="PATIENT_REF...", nargs=-1, required=True)
@pass_cli
def patients_remove(cli: CliContext, name: str, references: tuple[str, ...]) -> None:
    """Take the patients PATIENT_REF... out of the care of the team NAME."""
    _apply(cli, name, references, find=_find_patient, change=care_teams.remove_patient, done="removed from",
           unchanged="not in")
