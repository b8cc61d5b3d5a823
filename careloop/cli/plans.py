"""``careloop plans validate|add|list|show|enrol|leave``: follow-up plans (自动随访).

A plan is a YAML file (README.md, "Plans"); the built-in ones are in ``care/plans/library`` and
``plans add`` takes one by its id too. ``validate`` needs no database: it lists every problem with
its line and field (exit 1). Adding a new version of a plan re-times the future follow-ups of the
patients in it; the worker sends them (``careloop worker``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from sqlalchemy import func, select

from care import plans
from care.interventions.content import content_library
from care.models import FollowUp
from care.patients import get_patient
from careloop.cli.base import CliContext, main, one_line_errors, pass_cli, plan_grace
from careloop.flow_library import load_flow_library


def _plan_file(reference: str) -> Path:
    """A plan file, or the built-in plan of that id."""
    path = Path(reference)
    if path.is_file():
        return path
    builtin = plans.LIBRARY_DIR / f"{reference}.yaml"
    if builtin.is_file():
        return builtin
    for candidate in sorted(plans.LIBRARY_DIR.glob("*.yaml")):
        if f"\nid: {reference}\n" in "\n" + candidate.read_text(encoding="utf-8"):
            return candidate
    raise click.ClickException(f"{reference}: no such plan file (nor a built-in plan of this id)")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as failure:
        raise click.ClickException(f"{path}: cannot read the file ({failure})") from None


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(header[column]), *(len(row[column]) for row in rows)) for column in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


@main.group(name="plans")
def plans_group() -> None:
    """Follow-up plans (自动随访): which flows run when, over which channels, for whom."""


@plans_group.command(name="validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_cli
def validate(cli: CliContext, file: Path) -> None:
    """Check the plan FILE (its flows must be installed); list each problem with its line and field."""
    path = _plan_file(str(file))
    text = _read(path)
    library = load_flow_library(cli.settings)
    with one_line_errors(plans.PlanInvalidError):
        definition = plans.parse_plan(text, flow_ids=set(library.ids()), source=str(path),
                                      content_ids=content_library().ids())
    click.echo(f"{path}: plan {definition.id!r} v{definition.version} is valid ({len(definition.steps)} step(s))")


@plans_group.command(name="add")
@click.argument("file")
@pass_cli
def add(cli: CliContext, file: str) -> None:
    """Add the plan FILE (or a built-in plan's id), or a new version of it (re-times enrolled patients)."""
    cli.runtime()  # a database not initialised says so first
    path = _plan_file(file)
    text = _read(path)
    library = load_flow_library(cli.settings)
    with cli.unit_of_work() as session, one_line_errors(plans.PlanInvalidError):
        published = plans.add_plan(session, text, flow_ids=set(library.ids()), actor=cli.actor, source=str(path),
                                   grace=plan_grace(cli.settings), content_ids=content_library().ids())
        line = f"Plan {published.plan.key!r} v{published.definition.version} {published.change}"
        if published.change == "new version":
            line += f"; {published.moved} follow-up(s) of enrolled patients re-timed"
    click.echo(line + ".")


@plans_group.command(name="list")
@pass_cli
def list_plans(cli: CliContext) -> None:
    """List the plans: id, version, patients enrolled, trigger, title."""
    with cli.unit_of_work() as session:
        rows = [(plan.key, f"v{plan.version}", str(count),
                 (f"tag {plan.enrol_on_tag}" if plan.enrol_on_tag else "")
                 + (" ".join(f"event {event}" for event in plan.enrol_on_events or ()) or ("" if plan.enrol_on_tag
                                                                                           else "by hand")),
                 f"{plan.title_zh} / {plan.title_en}") for plan, count in plans.list_plans(session)]
    if not rows:
        click.echo("no plans (add one with: careloop plans add FILE; built-in: "
                   + ", ".join(sorted(path.stem for path in plans.LIBRARY_DIR.glob("*.yaml"))) + ")")
        return
    _table(("plan", "version", "enrolled", "enrols on", "title"), rows)


@plans_group.command(name="show")
@click.argument("plan_id")
@pass_cli
def show(cli: CliContext, plan_id: str) -> None:
    """Show the plan PLAN_ID: its steps, versions and its follow-ups by status."""
    with cli.unit_of_work() as session, one_line_errors(plans.PlanInvalidError):
        plan, definition = plans.get_plan(session, plan_id)
        versions = [f"v{row.version} ({row.created_at:%Y-%m-%d})" for row in plans.service.plan_versions(session, plan)]
        counts = dict(session.execute(select(FollowUp.status, func.count()).where(FollowUp.plan_key == plan.key)
                                      .group_by(FollowUp.status)).all())
    click.echo(f"{plan.key} v{plan.version}: {definition.title_zh} / {definition.title_en}")
    if definition.enrol_on_tag:
        click.echo(f"  enrols on the tag {definition.enrol_on_tag!r} (leaves when it is removed)")
    for event in definition.enrol_on_events:
        click.echo(f"  enrols on the event {event}")
    for index, step in enumerate(definition.steps):
        when = step.when
        timing = (f"every {when.every.as_dict()}" if when.every else f"{when.offset.as_dict() or 'at'}") \
            + f" after {when.anchor}" + (f" at {when.at:%H:%M}" if when.at else "")
        if step.message is not None:
            click.echo(f"  step {index + 1}: message {step.message}, {timing}; channels {', '.join(step.channels)}; "
                       f"start: {step.start_mode}")
            continue
        click.echo(f"  step {index + 1}: {step.flow}, {timing}; channels {', '.join(step.channels)}; "
                   f"{step.attempts} attempt(s) per channel, {step.answer_window_hours} h to answer; "
                   f"silence: {', '.join(step.on_silence) or 'nothing'}; start: {step.start_mode}")
    click.echo(f"  versions: {', '.join(versions)}")
    click.echo("  follow-ups: " + (", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
                                   or "none"))


@plans_group.command(name="enrol")
@click.argument("patient_ref")
@click.argument("plan_id")
@pass_cli
def enrol(cli: CliContext, patient_ref: str, plan_id: str) -> None:
    """Enrol the patient PATIENT_REF (card number or id) in the plan PLAN_ID."""
    with cli.unit_of_work() as session, one_line_errors(plans.PlanInvalidError):
        patient = get_patient(session, patient_ref)
        enrolment = plans.enrol(session, patient, plan_id, source="manual", actor=cli.actor,
                                grace=plan_grace(cli.settings))
    click.echo(f"Enrolled in {plan_id!r}." if enrolment is not None else f"Already enrolled in {plan_id!r}.")


@plans_group.command(name="leave")
@click.argument("patient_ref")
@click.argument("plan_id")
@pass_cli
def leave(cli: CliContext, patient_ref: str, plan_id: str) -> None:
    """End the enrolment of PATIENT_REF in PLAN_ID; its follow-ups not yet sent are cancelled."""
    with cli.unit_of_work() as session, one_line_errors(plans.PlanInvalidError):
        patient = get_patient(session, patient_ref)
        plans.get_plan(session, plan_id)
        left = plans.leave(session, patient, plan_id, actor=cli.actor, reason="manual")
    click.echo(f"Left {plan_id!r}." if left else f"Not enrolled in {plan_id!r}.")
