"""``careloop flows validate|list`` and ``careloop simulate``: the flow language on the command line.

``flows validate PATH...`` prints every problem as ``file:node: reason`` and exits 1 if there is any.
``flows list`` shows the installed flows. ``simulate FLOW_ID`` runs a flow in the terminal the way a
patient would answer it: one answer per line on stdin (``/remind`` and ``/expire`` fire the timers,
``/quit`` stops); at the end it prints the saved results (``name = value [category]``) and the events.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from care.profile_fields import PROFILE_FIELDS
from careloop.cli.base import CliContext, main, pass_cli
from careloop.flow_library import load_flow_library, tell_problems
from flows.engine import StepResult, TextInput, Timer, start, step
from flows.events import Event
from flows.facts import Facts
from flows.registry import FlowLibrary, flow_files
from flows.render import render
from flows.validate import validate_files


@main.group("flows")
def flows_group() -> None:
    """Flow definitions: check them, list the installed ones."""


@flows_group.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@pass_cli
def validate_command(cli: CliContext, paths: tuple[Path, ...]) -> None:
    """Check flow files (or directories of them); print each problem with file, node id and reason.

    A flow may start or schedule any installed flow (the library and CARELOOP_FLOWS_DIR) or one of the files given.
    """
    files = list(flow_files(paths))
    installed = load_flow_library(cli.settings).ids()
    problems = validate_files(paths, known_flows=installed, profile_fields=PROFILE_FIELDS)
    for problem in problems:
        click.echo(str(problem))
    if problems:
        broken = len({problem.file for problem in problems})
        click.echo(f"{_count(len(problems), 'problem')} in {_count(broken, 'file')}.", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"ok: {_count(len(files), 'flow file')} checked, no problems.")


@flows_group.command("list")
@click.option(
    "--library",
    "directories",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Also load the flows in this directory (repeatable).",
)
@click.option("--all-versions", is_flag=True, help="Show every installed version, not only the latest.")
@pass_cli
def list_command(cli: CliContext, directories: tuple[Path, ...], all_versions: bool) -> None:
    """List the installed flows (the library and CARELOOP_FLOWS_DIR): id, version, title."""
    library = _library(cli, directories)
    rows = [
        (definition.id, str(definition.version), definition.title.plain("zh"), definition.title.plain("en"))
        for definition in library.list(all_versions=all_versions)
    ]
    width = max([len("id"), *(len(row[0]) for row in rows)])
    click.echo(f"{'id':<{width}}  version  title")
    for flow_id, version, title_zh, title_en in rows:
        title = title_zh if title_zh == title_en else f"{title_zh} / {title_en}"
        click.echo(f"{flow_id:<{width}}  {version:>7}  {title}")


@main.command("simulate")
@click.argument("flow_id")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True, help="Session language.")
@click.option(
    "--channel",
    type=click.Choice(["text", "voice"]),
    default="text",
    show_default=True,
    help="Render prompts as a text channel or a phone call would.",
)
@click.option("--version", "version", type=int, help="Run this version instead of the latest.")
@click.option(
    "--library",
    "directories",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Also load the flows in this directory (repeatable), e.g. a draft being written.",
)
@click.option("--age", type=click.IntRange(0, 130), help="Patient fact: age in years.")
@click.option("--sex", type=click.Choice(["male", "female"]), help="Patient fact: sex.")
@click.option("--tag", "tags", multiple=True, help="Patient fact: a tag (repeatable).")
@click.option("--obs", "observations", multiple=True, metavar="CODE=VALUE", help="Patient fact: latest observation.")
@click.option("--now", "now_text", metavar="ISO-TIME", help="The clock at the start (default: the current time).")
@pass_cli
def simulate_command(
    cli: CliContext,
    flow_id: str,
    lang: str,
    channel: str,
    version: int | None,
    directories: tuple[Path, ...],
    age: int | None,
    sex: str | None,
    tags: tuple[str, ...],
    observations: tuple[str, ...],
    now_text: str | None,
) -> None:
    """Run FLOW_ID in the terminal, one answer per line of input, as a patient would answer it.

    Type /remind or /expire to fire the reminder or expiry timer, /quit to stop.
    """
    definition = _library(cli, directories).get(flow_id, version)
    facts = Facts.build(age=age, sex=sex, language=lang, tags=tags, observations=_observations(observations))
    now = _clock(now_text)
    events: list[Event] = []
    click.echo(f"[{definition.id} v{definition.version} · {lang} · {channel}]")
    result = start(definition, facts, lang=lang, now=now)
    _show(result, channel, events)
    stdin = sys.stdin
    echo_input = not stdin.isatty()
    while not result.ended:
        line = stdin.readline()
        if not line:
            click.echo(f"--- input ended; the session is still waiting at '{result.state['node']}' ---")
            break
        answer = line.rstrip("\r\n")
        if echo_input:
            click.echo(f"> {answer}")
        command = answer.strip().lower()
        if command == "/quit":
            click.echo(f"--- stopped; the session is still waiting at '{result.state['node']}' ---")
            break
        if command in ("/remind", "/expire"):
            due_key = "wait_until" if command == "/remind" else "expires_at"
            due = result.state.get(due_key)
            if not due:
                click.echo("(no reminder is due: the reminders for this question are used up)")
                continue
            now = max(now, datetime.fromisoformat(due))
            timer = Timer("reminder" if command == "/remind" else "expiry")
            result = step(definition, result.state, facts, timer, now=now)
        else:
            result = step(definition, result.state, facts, TextInput(answer), now=now)
        _show(result, channel, events)
    if result.ended:
        click.echo(f"--- session ended: {result.state['end_status']} ---")
    _summary(result, events)


def _library(cli: CliContext, directories: Iterable[Path]) -> FlowLibrary:
    """Return the installed flows and those of ``directories``; each file left out is said on stderr."""
    library = load_flow_library(cli.settings, directories)
    tell_problems(library, lambda line: click.echo(line, err=True))
    return library


def _observations(items: Iterable[str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for item in items:
        code, _, raw = item.partition("=")
        try:
            values[code.strip()] = float(raw)
        except ValueError:
            raise click.BadParameter(f"expected CODE=NUMBER, got {item!r}", param_hint="--obs") from None
    return values


def _clock(text: str | None) -> datetime:
    if text is None:
        return datetime.now().astimezone()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"not an ISO time: {text!r}", param_hint="--now") from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def _show(result: StepResult, channel: str, events: list[Event]) -> None:
    events.extend(result.events)
    for output in result.outputs:
        prompt = render(output, channel)
        click.echo("")
        click.echo(prompt.text)
        if channel == "voice" and prompt.expects_answer:
            if prompt.keypad:
                click.echo("[keypad] " + "  ".join(f"{key}={label}" for key, label in prompt.keypad))
            if prompt.gather is not None:
                gather = prompt.gather
                finish = f", ends with {gather.finish_on_key}" if gather.finish_on_key else ""
                digits = f", {gather.num_digits} key" if gather.num_digits else ""
                click.echo(f"[gather] {gather.input} ({gather.language}{digits}{finish})")
            if prompt.record:
                click.echo("[record] the answer is recorded")
    if result.outputs:
        click.echo("")


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _summary(result: StepResult, events: list[Event]) -> None:
    click.echo("results:")
    saved = {name: entry for name, entry in result.state["results"].items() if entry.get("saved", True)}
    if not saved:
        click.echo("(none)")
    for name, entry in saved.items():
        click.echo(f"{name} = {_value(entry['value'])} [{entry.get('category') or '-'}]")
    click.echo("events:")
    for event in events:
        fields = {key: value for key, value in event.to_dict().items() if key != "type"}
        click.echo(f"{event.type} {json.dumps(fields, ensure_ascii=False, sort_keys=True)}")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
