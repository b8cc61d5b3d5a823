"""``careloop tags list|define`` and ``careloop tags rules add|edit|list|preview``: tags and the rules that set them.

A rule's expression reads the patient's facts (README.md, "Tag rules"). Adding or editing a rule
starts its evaluation over every patient in the background: the worker (``careloop worker``) does
it chunk by chunk, and ``tags rules list`` shows how far it got. ``preview`` counts what a rule
would do and writes nothing. A bad value exits 1 with one line naming the option.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import click

from bot.tag_rules import rule_engine
from care import tag_rules, tags
from care.errors import ConflictError, NotFoundError, ValidationFailedError
from care.models import TagRuleRun
from care.tag_rules import RuleEngine
from careloop.cli.base import CliContext, main, pass_cli
from careloop.flow_library import load_flow_library

#: A service's field -> the command-line name that gave it.
OPTION_NAMES = {"name": "NAME", "tag": "--tag", "expression": "--expr", "colour": "--colour",
                "description_zh": "--description-zh", "description_en": "--description-en", "change": "edit"}


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn the services' refusals into one line naming the option (exit 1)."""
    try:
        yield
    except ValidationFailedError as problem:
        first = problem.problems[0]
        raise click.ClickException(f"{OPTION_NAMES.get(first.field, first.field)}: {first.reason}") from None
    except (ConflictError, NotFoundError) as problem:
        raise click.ClickException(str(problem)) from None


def _engine(cli: CliContext) -> RuleEngine:
    return rule_engine(load_flow_library(cli.settings))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(header[column]), *(len(row[column]) for row in rows)) for column in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


@main.group(name="tags")
def tags_group() -> None:
    """Tags (高血压, 肥胖, 失访, ...): their colour and meaning, and the rules that set them."""


@tags_group.command(name="list")
@pass_cli
def list_tags(cli: CliContext) -> None:
    """List the tags the clinic defined or a rule sets: colour, patients who have it, rules, description."""
    with cli.unit_of_work() as session:
        definitions = tags.tag_definitions(session)
        rules = tag_rules.rule_counts(session)
        names = sorted(set(definitions) | set(rules))
        counts = tag_rules.tag_counts(session, names)
        rows = []
        for name in names:
            definition = definitions.get(name)
            texts = [text for text in (definition.description_zh, definition.description_en) if text] \
                if definition is not None else []
            rows.append((name, (definition.colour if definition else None) or "-", str(counts.get(name, 0)),
                         str(rules.get(name, 0)), " / ".join(texts) or "-"))
    if not rows:
        click.echo("no tags defined (define one with: careloop tags define NAME --colour '#d9534f')")
        return
    _table(("tag", "colour", "patients", "rules", "description"), rows)


@tags_group.command(name="define")
@click.argument("name")
@click.option("--colour", help="The colour the tag is shown in, as #RRGGBB.")
@click.option("--description-zh", help="What the tag means, in Chinese.")
@click.option("--description-en", help="What the tag means, in English.")
@pass_cli
def define(cli: CliContext, name: str, colour: str | None, description_zh: str | None,
           description_en: str | None) -> None:
    """Describe the tag NAME (a tag needs no definition to be used; one without is shown without a colour)."""
    with cli.unit_of_work() as session, _one_line_errors():
        definition, created = tags.define_tag(session, name, colour=colour, description_zh=description_zh,
                                              description_en=description_en, actor=cli.actor)
        shown = definition.name
    click.echo(f"Tag {shown!r} {'defined' if created else 'updated'}.")


@tags_group.group(name="rules")
def rules_group() -> None:
    """Rules that set a tag on every patient for whom an expression over their facts holds."""


def _started(run: TagRuleRun) -> str:
    return (f"; evaluating it on {run.total} patient(s) in the background (careloop worker; progress: "
            "careloop tags rules list)")


@rules_group.command(name="add")
@click.argument("name")
@click.option("--tag", required=True, help="The tag the rule sets.")
@click.option("--expr", "expression", required=True, help="When the tag is set, e.g. \"latest.sbp >= 140\".")
@click.option("--disabled", is_flag=True, help="Make the rule disabled (it holds for no one until enabled).")
@pass_cli
def add(cli: CliContext, name: str, tag: str, expression: str, disabled: bool) -> None:
    """Make the rule NAME: patients for whom --expr holds get --tag, and lose it when it stops holding."""
    with cli.unit_of_work() as session, _one_line_errors():
        rule, run = tag_rules.add_rule(session, _engine(cli), name, tag=tag, expression=expression,
                                       enabled=not disabled, actor=cli.actor)
        line = f"Rule {rule.name!r} v{rule.version} sets {rule.tag!r}" + _started(run)
    click.echo(line)


@rules_group.command(name="edit")
@click.argument("name")
@click.option("--expr", "expression", help="The new expression.")
@click.option("--enabled/--disabled", default=None, help="Enable or disable the rule (a disabled rule removes "
              "the tags it set, except pinned ones).")
@pass_cli
def edit(cli: CliContext, name: str, expression: str | None, enabled: bool | None) -> None:
    """Change the rule NAME: a new version, evaluated again on every patient."""
    with cli.unit_of_work() as session, _one_line_errors():
        rule, run = tag_rules.edit_rule(session, _engine(cli), name, expression=expression, enabled=enabled,
                                        actor=cli.actor)
        line = (f"Rule {rule.name!r} unchanged (v{rule.version})" if run is None else
                f"Rule {rule.name!r} is now v{rule.version} ({'enabled' if rule.enabled else 'disabled'})"
                + _started(run))
    click.echo(line)


@rules_group.command(name="list")
@pass_cli
def list_rules(cli: CliContext) -> None:
    """List the rules: name, tag, version, enabled, the latest evaluation's progress, expression."""
    with cli.unit_of_work() as session:
        rows = [(rule.name, rule.tag, f"v{rule.version}", "yes" if rule.enabled else "no",
                 f"{rule.run_status} {min(rule.run_done, rule.run_total)}/{rule.run_total}" if rule.run_status
                 else "-", rule.expression) for rule in tag_rules.list_rules(session)]
    if not rows:
        click.echo("no tag rules (add one with: careloop tags rules add NAME --tag TAG --expr EXPR)")
        return
    _table(("rule", "tag", "version", "enabled", "evaluation", "expression"), rows)


@rules_group.command(name="preview")
@click.option("--tag", required=True, help="The tag the rule would set.")
@click.option("--expr", "expression", required=True, help="The expression to try.")
@pass_cli
def preview(cli: CliContext, tag: str, expression: str) -> None:
    """Count the patients a rule would tag and untag now, as the only rule of --tag, writing nothing."""
    database = cli.runtime().db
    with database.read_only() as session, _one_line_errors():
        found = tag_rules.preview(session, _engine(cli), tag=tag, expression=expression)
    line = (f"would tag {found.would_tag} patient(s), untag {found.would_untag} "
            f"(it holds for {found.holding} of {found.patients} patient(s)")
    click.echo(line + (f"; {found.failed} could not be evaluated)" if found.failed else ")"))
