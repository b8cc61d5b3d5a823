"""``careloop risk MODEL --input JSON`` and ``careloop risk --list`` (CONTRACT.md).

Prints exactly one JSON object on stdout, contract keys first::

    {"model": ..., "value": ..., "unit": ..., "category": ..., "citation": ..., "missing": [...], ...}

Exit codes: 0 a value was computed; 1 no value, still one JSON object with ``value`` null and the
reason: required inputs missing (``missing``), an implausible input (``"category": null`` and
``error``, clinical-spec.md 10a), a person outside the model's validated population
(``"category": "out_of_range"``, the range in ``error``) or a model that does not apply (``flags``);
2 bad usage (unknown model, bad JSON, wrong input types or names), with one clear line on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from care.clinical.common import ClinicalError
from care.clinical.config import ClinicalConfig
from care.clinical.risk import RiskModel, evaluate, models
from careloop.cli.base import main

BAD_USAGE = 2
NO_VALUE = 1


def _usage_error(message: str) -> click.exceptions.Exit:
    click.echo(f"error: {message}", err=True)
    return click.exceptions.Exit(BAD_USAGE)


def _read_input(raw: str) -> dict[str, object]:
    """Return the JSON object given inline, as ``@file.json``, or as ``@-`` (stdin)."""
    if raw.startswith("@"):
        source = raw[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except OSError as problem:
            raise _usage_error(f"cannot read input file {source!r}: {problem.strerror or problem}") from None
    else:
        text = raw
    try:
        data = json.loads(text)
    except json.JSONDecodeError as problem:
        where = f"line {problem.lineno} column {problem.colno}"
        raise _usage_error(f"--input is not valid JSON: {problem.msg} at {where}") from None
    if not isinstance(data, dict):
        raise _usage_error("--input must be a JSON object such as {\"sbp\": 130, \"dbp\": 85}")
    return data


def _describe(model: RiskModel) -> list[str]:
    lines = [f"{model.name}: {model.title.en} ({model.title.zh}) [{model.unit}]"]
    optional = [spec.name for spec in model.inputs if spec.name not in model.required]
    lines.append(f"  required: {', '.join(model.required)}")
    if optional:
        lines.append(f"  optional: {', '.join(optional)}")
    lines.extend(f"    {spec.describe()}" for spec in model.inputs)
    population = model.population(ClinicalConfig())
    if population is not None:
        bounds = [population.ages().en, *(limit.text().en for limit in population.limits)]
        lines.append(f"  validated population: {', '.join(bounds)} (outside it: out_of_range)")
    lines.append(f"  source: {model.citation}")
    return lines


@main.command(name="risk")
@click.argument("model", required=False)
@click.option("--input", "raw_input", metavar="JSON", help="Inputs as a JSON object, or @file.json, or @- for stdin.")
@click.option("--list", "list_models", is_flag=True, help="List the models and their inputs.")
def risk(model: str | None, raw_input: str | None, list_models: bool) -> int:
    """Compute one risk model or guideline category from inputs named as in clinical-spec.md.

    Example: careloop risk bp --input '{"sbp": 145, "dbp": 85}'
    """
    if list_models:
        if model is not None or raw_input is not None:
            raise _usage_error("--list takes no MODEL or --input")
        for entry in models():
            click.echo("\n".join(_describe(entry)))
        return 0
    if model is None:
        raise _usage_error("give a MODEL (see careloop risk --list)")
    if raw_input is None:
        raise _usage_error("--input JSON is required (see careloop risk --list for the inputs)")
    inputs = _read_input(raw_input)
    try:
        result = evaluate(model, inputs, strict=True)
    except ClinicalError as problem:
        raise _usage_error(str(problem)) from None
    click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    return 0 if result.value is not None else NO_VALUE
