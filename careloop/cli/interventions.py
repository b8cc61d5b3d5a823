"""``careloop interventions validate|add|programs|show|start|list|progress|end``: interventions (健康干预).

A program is a YAML file (README.md, "Interventions"); the built-in ones are in
``care/interventions/library`` and ``add`` takes one by its id too. ``validate`` needs no database:
it lists every problem with its line and field (exit 1). A program is carried out by the follow-up
plan ``iv_<program id>`` made from it; the worker sends its check-ins and education messages and ends
an enrolment when its duration runs out (``careloop worker``). Listings name patients by card number.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import click
from sqlalchemy.orm import Session

from care import interventions
from care.clinical import codes
from care.clinical.common import format_number
from care.errors import NotFoundError
from care.interventions.progress import Progress
from care.models import InterventionEnrolment, Patient
from care.patients import get_patient
from careloop.cli.base import CliContext, main, one_line_errors, pass_cli, plan_grace
from careloop.flow_library import load_flow_library


def _builtin() -> list[str]:
    return sorted(path.stem for path in interventions.LIBRARY_DIR.glob("*.yaml"))


def _program_file(reference: str) -> Path:
    """A program file, or the built-in program of that id."""
    path = Path(reference)
    if path.is_file():
        return path
    builtin = interventions.LIBRARY_DIR / f"{reference}.yaml"
    if builtin.is_file():
        return builtin
    raise click.ClickException(f"{reference}: no such program file (nor a built-in program of this id: "
                               + ", ".join(_builtin()) + ")")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as failure:
        raise click.ClickException(f"{path}: cannot read the file ({failure})") from None


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(header[column]), *(len(row[column]) for row in rows)) for column in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


def _day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d") if moment is not None else "-"


def _patient(session: Session, reference: str) -> Patient:
    try:
        return get_patient(session, reference)
    except NotFoundError as problem:
        raise click.ClickException(f"{reference}: {problem}") from None


def _card(session: Session, enrolment: InterventionEnrolment) -> str:
    patient = session.get(Patient, enrolment.patient_id)
    return (patient.card_no or "-") if patient is not None else "-"


def _rate(value: float | None) -> str:
    """A rate of 0-1 as a percentage ("-" when there is none yet)."""
    return f"{format_number(value * 100, 0)}%" if value is not None else "-"


@main.group(name="interventions")
def interventions_group() -> None:
    """Interventions (健康干预): programs of goals, education messages and check-ins, and who is in them."""


@interventions_group.command(name="validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_cli
def validate(cli: CliContext, file: Path) -> None:
    """Check the program FILE (its flows and messages must exist); list each problem with its line and field."""
    path = _program_file(str(file))
    text = _read(path)
    library = load_flow_library(cli.settings)
    with one_line_errors(interventions.ProgramInvalidError):
        definition = interventions.parse_program(text, flow_ids=set(library.ids()),
                                                 content_ids=interventions.content_library().ids(), source=str(path))
    click.echo(f"{path}: program {definition.id!r} v{definition.version} is valid ({len(definition.goals)} goal(s), "
               f"{len(definition.check_ins)} check-in(s), {len(definition.education)} message(s), "
               f"{definition.duration_days} days)")


@interventions_group.command(name="add")
@click.argument("file")
@pass_cli
def add(cli: CliContext, file: str) -> None:
    """Add the program FILE (or a built-in program's id), or a new version of it (re-times enrolled patients)."""
    cli.runtime()  # a database not initialised says so first
    path = _program_file(file)
    text = _read(path)
    library = load_flow_library(cli.settings)
    with cli.unit_of_work() as session, one_line_errors(interventions.ProgramInvalidError):
        published = interventions.add_program(session, text, flow_ids=set(library.ids()), actor=cli.actor,
                                              source=str(path), grace=plan_grace(cli.settings))
        line = (f"Program {published.program.key!r} v{published.definition.version} {published.change} "
                f"(plan {published.definition.plan_key!r})")
        if published.change == "new version":
            line += f"; {published.moved} follow-up(s) of enrolled patients re-timed"
    click.echo(line + ".")


@interventions_group.command(name="programs")
@click.option("--content", "show_content", is_flag=True, help="List the content library's messages instead.")
@pass_cli
def programs(cli: CliContext, show_content: bool) -> None:
    """List the programs: id, version, days, patients in it, trigger, title (or, with --content, the messages)."""
    if show_content:
        library = interventions.content_library()
        _table(("message", "topic", "source"), [(item.id, item.topic, item.source)
                                                for item in library.items.values()])
        return
    with cli.unit_of_work() as session:
        rows = [(program.key, f"v{program.version}", str(program.duration_days), str(count),
                 f"tag {program.start_on_tag}" if program.start_on_tag else "by hand",
                 f"{program.title_zh} / {program.title_en}")
                for program, count in interventions.list_programs(session)]
    if not rows:
        click.echo("no programs (add one with: careloop interventions add FILE; built-in: "
                   + ", ".join(_builtin()) + ")")
        return
    _table(("program", "version", "days", "active", "starts on", "title"), rows)


@interventions_group.command(name="show")
@click.argument("program_id")
@pass_cli
def show(cli: CliContext, program_id: str) -> None:
    """Show the program PROGRAM_ID: goals, check-ins, education schedule, versions and enrolments."""
    library = interventions.content_library()
    with cli.unit_of_work() as session, one_line_errors(interventions.ProgramInvalidError):
        program, definition = interventions.get_program(session, program_id)
        versions = [f"v{row.version} ({row.created_at:%Y-%m-%d})"
                    for row in interventions.service.program_versions(session, program)]
        enrolments = interventions.list_enrolments(session, program_key=program.key, limit=100_000)
    click.echo(f"{program.key} v{program.version}: {definition.title_zh} / {definition.title_en}; "
               f"{definition.duration_days} days; plan {definition.plan_key}")
    if definition.start_on_tag:
        click.echo(f"  starts on the tag {definition.start_on_tag!r} (once per patient)")
    for goal in definition.goals:
        zh, en = goal.describe()
        click.echo(f"  goal {goal.id}: {zh} / {en}")
    for step in definition.check_ins:
        every = step.when.every.as_dict() if step.when.every is not None else {}
        click.echo(f"  check-in: {step.flow} every {every}" + (f" at {step.when.at:%H:%M}" if step.when.at else "")
                   + f"; channels {', '.join(step.channels)}")
    for item in definition.education:
        content = library.get(item.message)
        topic = content.topic if content is not None else "?"
        click.echo(f"  day {item.day}" + (f" {item.at}" if item.at else "") + f": {item.message} ({topic})")
    click.echo(f"  versions: {', '.join(versions)}")
    active = sum(enrolment.status == "active" for enrolment in enrolments)
    click.echo(f"  enrolments: {active} active, {len(enrolments) - active} ended")


@interventions_group.command(name="start")
@click.argument("patient_ref")
@click.argument("program_id")
@pass_cli
def start(cli: CliContext, patient_ref: str, program_id: str) -> None:
    """Start the program PROGRAM_ID for the patient PATIENT_REF (card number or id)."""
    with cli.unit_of_work() as session, one_line_errors(interventions.ProgramInvalidError):
        patient = _patient(session, patient_ref)
        enrolment = interventions.start(session, patient, program_id, source="manual", actor=cli.actor,
                                        grace=plan_grace(cli.settings))
        ends = _day(enrolment.ends_at) if enrolment is not None else ""
    if enrolment is None:
        click.echo(f"Already in {program_id!r}.")
        return
    click.echo(f"Started {program_id!r}; it ends on {ends}.")


@interventions_group.command(name="list")
@click.option("--program", "program_id", default=None, metavar="ID", help="Only this program.")
@click.option("--patient", "patient_ref", default=None, metavar="REF", help="Only this patient (card number or id).")
@click.option("--active", "active_only", is_flag=True, help="Only the enrolments still running.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@pass_cli
def list_enrolments(cli: CliContext, program_id: str | None, patient_ref: str | None, active_only: bool,
                    limit: int) -> None:
    """List enrolments: patient (card number), program, status, start, end, how it ended."""
    with cli.unit_of_work() as session, one_line_errors(interventions.ProgramInvalidError):
        if program_id is not None:
            interventions.get_program(session, program_id)
        if patient_ref is not None:
            patient = _patient(session, patient_ref)
            found = [enrolment for enrolment in interventions.enrolments_of(session, patient.id,
                                                                            active_only=active_only)
                     if program_id is None or enrolment.program_key == program_id][:limit]
        else:
            found = interventions.list_enrolments(session, program_key=program_id, active_only=active_only,
                                                  limit=limit)
        rows = [(_card(session, enrolment), enrolment.program_key, f"v{enrolment.program_version}", enrolment.status,
                 enrolment.source, _day(enrolment.started_at), _day(enrolment.ended_at or enrolment.ends_at),
                 enrolment.outcome or "-") for enrolment in found]
    if not rows:
        click.echo("no enrolments")
        return
    _table(("patient", "program", "version", "status", "source", "started", "ends/ended", "outcome"), rows)


def _show_progress(program: str, definition_title: str, figures: Progress, enrolment: InterventionEnrolment) -> None:
    click.echo(f"{program}: {definition_title}; {enrolment.status}, day {figures.day}, "
               f"{_day(enrolment.started_at)} to {_day(enrolment.ended_at or enrolment.ends_at)}")
    overall = format_number(figures.percent, 0) + "%" if figures.percent is not None else "no data yet"
    click.echo(f"  progress: {overall}; goals met {figures.goals_met} of {len(figures.goals)}")
    for goal in figures.goals:
        indicator = codes.indicator(goal.goal.indicator)

        def shown(value: float | None, places: int = indicator.decimals) -> str:
            return format_number(value, places) if value is not None else "-"

        target = f"{goal.goal.change_percent:+g}% from the baseline" if goal.goal.change_percent is not None else "-"
        if goal.comparator is not None and goal.target is not None:
            target = (f"{shown(goal.target)}~{shown(goal.target_high)}" if goal.comparator == "between"
                      else f"{goal.comparator} {shown(goal.target)}")
        click.echo(f"  goal {goal.goal.id}: baseline {shown(goal.baseline.value if goal.baseline else None)} -> "
                   f"latest {shown(goal.latest.value if goal.latest else None)} {indicator.unit}, target {target}: "
                   f"{goal.state.replace('_', ' ')}"
                   + (f" ({format_number(goal.percent, 0)}%)" if goal.percent is not None else ""))
    rate = _rate(figures.answer_rate)
    click.echo(f"  check-ins: {figures.check_ins_answered} of {figures.check_ins_sent} answered ({rate})")
    click.echo(f"  education: {figures.messages_sent} of {figures.messages_planned} message(s) sent")


@interventions_group.command(name="progress")
@click.argument("patient_ref")
@click.option("--program", "program_id", default=None, metavar="ID", help="Only this program.")
@click.option("--all", "every", is_flag=True, help="Ended enrolments too (default: the active ones, else the last).")
@pass_cli
def progress(cli: CliContext, patient_ref: str, program_id: str | None, every: bool) -> None:
    """The progress of PATIENT_REF in their interventions: each goal (baseline -> latest vs target), answer rate."""
    with cli.unit_of_work() as session, one_line_errors(interventions.ProgramInvalidError):
        patient = _patient(session, patient_ref)
        if program_id is not None:
            interventions.get_program(session, program_id)
        found = [enrolment for enrolment in interventions.enrolments_of(session, patient.id)
                 if program_id is None or enrolment.program_key == program_id]
        if not every:
            active = [enrolment for enrolment in found if enrolment.status == "active"]
            found = active or found[:1]
        shown = []
        for enrolment in found:
            definition, figures = interventions.progress(session, enrolment, actor=cli.actor)
            shown.append((enrolment, definition.title(patient.language), figures))
    if not shown:
        raise click.ClickException(f"{patient_ref}: the patient is in no intervention"
                                   + (f" {program_id!r}" if program_id else "") + " (careloop interventions start)")
    for enrolment, title, figures in shown:
        _show_progress(enrolment.program_key, title, figures, enrolment)


@interventions_group.command(name="end")
@click.argument("patient_ref")
@click.option("--reason", required=True, help="Why it ends now (kept encrypted with the enrolment).")
@click.option("--program", "program_id", default=None, metavar="ID",
              help="Which program, when the patient is in several.")
@pass_cli
def end(cli: CliContext, patient_ref: str, reason: str, program_id: str | None) -> None:
    """End the intervention of PATIENT_REF now and draft its stage summary (goals met or not, figures)."""
    if not reason.strip():
        raise click.BadParameter("must say why", param_hint="'--reason'")
    with cli.unit_of_work() as session, one_line_errors(interventions.ProgramInvalidError):
        patient = _patient(session, patient_ref)
        enrolment, summary = interventions.end_for_patient(session, patient, program_key=program_id,
                                                           actor=cli.actor, reason=reason)
        line = f"Ended {enrolment.program_key!r}; stage summary {summary.summary_id} drafted (unsigned)."
    click.echo(line)
