"""``careloop followups list|show|record`` and ``careloop tasks list|close|reschedule``: the follow-up record and
the staff work queue from a terminal.

Every listing names patients by card number only; showing a follow-up's record (answers and
messages) is audited as a view of the patient's record. Changes are audited under the command's
actor (``--as EMAIL`` names the staff member, who is then the record's staff member too).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import click
from sqlalchemy.orm import Session

from bot.followup_records import followup_record
from care import followups as care_followups
from care import tasks as care_tasks
from care.care_teams import EVERY_PATIENT
from care.errors import ConflictError, NotFoundError, ValidationFailedError
from care.models import FollowUp, Patient, StaffTask
from care.patients import get_patient
from careloop.cli.base import CliContext, main, pass_cli
from security.audit import Actor


def _staff_id(actor: Actor) -> uuid.UUID | None:
    return uuid.UUID(actor.id) if actor.kind == "user" else None


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(header[column]), *(len(row[column]) for row in rows)) for column in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


def _uuid(value: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise click.BadParameter("is not an id (as `list` prints it)", param_hint=f"'{name}'") from None


def _invalid(problem: ValidationFailedError) -> click.BadParameter:
    first = problem.problems[0]
    return click.BadParameter(first.reason, param_hint=f"'--{first.field.replace('_', '-')}'")


def _patient(session: Session, reference: str | None) -> Patient | None:
    if reference is None:
        return None
    try:
        return get_patient(session, reference)
    except NotFoundError as problem:
        raise click.ClickException(str(problem)) from None


def _card(session: Session, patient_id: uuid.UUID) -> str:
    patient = session.get(Patient, patient_id)
    return (patient.card_no or "-") if patient is not None else "-"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


# -- follow-ups -----------------------------------------------------------------------------------------------
@main.group(name="followups")
def followups_group() -> None:
    """The follow-up record (随访记录): list follow-ups, show one's record, record its outcome."""


@followups_group.command(name="list")
@click.option("--patient", "patient_ref", default=None, metavar="REF", help="Only this patient (card number or id).")
@click.option("--due", "due_only", is_flag=True, help="Only those due now and not ended.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@pass_cli
def list_followups(cli: CliContext, patient_ref: str | None, due_only: bool, limit: int) -> None:
    """List follow-ups, the soonest due first: id, card, flow, due, status, channel, outcome."""
    with cli.unit_of_work() as session:
        patient = _patient(session, patient_ref)
        found = care_followups.list_followups(session, patient=patient, due_only=due_only, scope=EVERY_PATIENT,
                                              limit=limit)
        rows = [(str(row.id), _card(session, row.patient_id), row.flow_id, _when(row.due_at), row.status,
                 row.current_channel or "-", row.outcome or "-") for row in found]
    if not rows:
        click.echo("no follow-ups" + (" due" if due_only else ""))
        return
    _table(("id", "card", "flow", "due", "status", "channel", "outcome"), rows)


def _followup(session: Session, value: str) -> FollowUp:
    followup = session.get(FollowUp, _uuid(value, "FOLLOWUP_ID"))
    if followup is None:
        raise click.ClickException(f"no follow-up {value}")
    return followup


@followups_group.command(name="show")
@click.argument("followup_id")
@pass_cli
def show_followup(cli: CliContext, followup_id: str) -> None:
    """Show the record of FOLLOWUP_ID: answers, messages, recordings, the staff member's outcome and notes."""
    with cli.unit_of_work() as session:
        record = followup_record(session, _followup(session, followup_id), actor=cli.actor)
        followup = record.followup
        click.echo(f"follow-up {followup.id}  card {_card(session, followup.patient_id)}  flow {followup.flow_id}")
        click.echo(f"  due {_when(followup.due_at)}  status {followup.status}  channel {record.channel or '-'}"
                   f"  completed {_when(followup.completed_at)}")
        click.echo(f"  outcome {followup.outcome or '-'}  staff {record.staff_email or '-'}")
        if followup.staff_notes:
            click.echo(f"  notes: {followup.staff_notes}")
        click.echo(f"answers ({len(record.answers)}):")
        for answer in record.answers:
            category = f"  [{answer.category}]" if answer.category else ""
            click.echo(f"  {answer.name} = {answer.label or answer.value}{category}")
        click.echo(f"messages ({len(record.messages)}):")
        for line in record.messages:
            arrow = "<-" if line.direction == "in" else "->"
            click.echo(f"  {_when(line.at)} {line.channel} {arrow} {' '.join(line.text.split())}")
        click.echo(f"recordings ({len(record.recordings)}):")
        for recording in record.recordings:
            click.echo(f"  {recording.id}  {recording.status}  {recording.duration_seconds or '-'} s")


@followups_group.command(name="record")
@click.argument("followup_id")
@click.option("--outcome", required=True, type=click.Choice(list(care_followups.FOLLOWUP_OUTCOMES)),
              help="How the follow-up ended.")
@click.option("--notes", default=None, help="The staff member's notes (kept encrypted).")
@pass_cli
def record_outcome(cli: CliContext, followup_id: str, outcome: str, notes: str | None) -> None:
    """Record the outcome of FOLLOWUP_ID (and end it if it is still open)."""
    try:
        with cli.unit_of_work() as session:
            followup = care_followups.record_followup_outcome(
                session, _followup(session, followup_id).id, outcome=outcome, notes=notes,
                staff_id=_staff_id(cli.actor), actor=cli.actor, scope=EVERY_PATIENT)
            status = followup.status
    except ValidationFailedError as problem:
        raise _invalid(problem) from None
    click.echo(f"follow-up {followup_id}: {outcome} ({status})")


# -- tasks ----------------------------------------------------------------------------------------------------
@main.group(name="tasks")
def tasks_group() -> None:
    """The staff work queue: list open tasks (urgent first), close one with its outcome, reschedule one."""


@tasks_group.command(name="list")
@click.option("--patient", "patient_ref", default=None, metavar="REF", help="Only this patient (card number or id).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@pass_cli
def list_tasks(cli: CliContext, patient_ref: str | None, limit: int) -> None:
    """List open tasks, urgent first, then by due time: id, card, priority, kind, due, status (never the reason)."""
    with cli.unit_of_work() as session:
        patient = _patient(session, patient_ref)
        found = care_tasks.open_tasks(session, scope=EVERY_PATIENT, limit=limit,
                                      patient_id=patient.id if patient is not None else None)
        now = cli.runtime().clock.now()
        rows = [(str(task.id), _card(session, task.patient_id), task.priority, task.kind,
                 _when(care_tasks.due_time(task)) + (" (overdue)" if care_tasks.due_time(task) < now else ""),
                 task.status) for task in found]
    if not rows:
        click.echo("no open tasks")
        return
    _table(("id", "card", "priority", "kind", "due", "status"), rows)


def _task_id(session: Session, value: str) -> uuid.UUID:
    task = session.get(StaffTask, _uuid(value, "TASK_ID"))
    if task is None:
        raise click.ClickException(f"no staff task {value}")
    return task.id


@tasks_group.command(name="close")
@click.argument("task_id")
@click.option("--outcome", required=True, type=click.Choice(list(care_tasks.TASK_OUTCOMES)),
              help="How the task ended.")
@click.option("--notes", default=None, help="What was done or said (kept encrypted).")
@pass_cli
def close_task(cli: CliContext, task_id: str, outcome: str, notes: str | None) -> None:
    """Close TASK_ID with its outcome; it stays on the patient's timeline."""
    try:
        with cli.unit_of_work() as session:
            care_tasks.close_task(session, _task_id(session, task_id), outcome=outcome, notes=notes,
                                  user_id=_staff_id(cli.actor), actor=cli.actor, scope=EVERY_PATIENT)
    except ValidationFailedError as problem:
        raise _invalid(problem) from None
    except ConflictError as problem:
        raise click.ClickException(str(problem)) from None
    click.echo(f"task {task_id}: closed ({outcome})")


@tasks_group.command(name="reschedule")
@click.argument("task_id")
@click.option("--due", "due", required=True, metavar="TIME",
              help="The new due time, ISO 8601 with its zone (2026-12-04T09:00+08:00).")
@pass_cli
def reschedule_task(cli: CliContext, task_id: str, due: str) -> None:
    """Move the due time of the open task TASK_ID."""
    try:
        due_at = datetime.fromisoformat(due)
    except ValueError:
        raise click.BadParameter("is not an ISO 8601 time (2026-12-04T09:00+08:00)", param_hint="'--due'") from None
    try:
        with cli.unit_of_work() as session:
            task = care_tasks.reschedule_task(session, _task_id(session, task_id), due_at=due_at, actor=cli.actor,
                                              scope=EVERY_PATIENT)
            status = task.status
    except ValidationFailedError as problem:
        raise _invalid(problem) from None
    except ConflictError as problem:
        raise click.ClickException(str(problem)) from None
    click.echo(f"task {task_id}: due {due_at.isoformat()} ({status})")


__all__ = ["followups_group", "tasks_group"]
