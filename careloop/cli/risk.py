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

from care.assessments import gather_risk_inputs
from care.clinical.common import ClinicalError
from care.clinical.config import ClinicalConfig
from care.clinical.risk import RiskModel, evaluate, get_model, models
from care.errors import NotFoundError
from care.indicators import zone_of
from care.patients import get_patient
from careloop.cli.base import CliContext, main
from security.audit import log
from security.fields import clock_of

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
@click.option("--patient", "patient_ref", metavar="PATIENT_REF",
              help="Take the inputs from this patient's record (card number or internal id) instead.")
@click.option("--list", "list_models", is_flag=True, help="List the models and their inputs.")
@click.pass_context
def risk(ctx: click.Context, model: str | None, raw_input: str | None, patient_ref: str | None,
         list_models: bool) -> int:
    """Compute one risk model or guideline category from inputs named as in docs/clinical.md.

    Example: careloop risk bp --input '{"sbp": 145, "dbp": 85}';  careloop risk china-par --patient C0001
    """
    if list_models:
        if model is not None or raw_input is not None or patient_ref is not None:
            raise _usage_error("--list takes no MODEL, --input or --patient")
        for entry in models():
            click.echo("\n".join(_describe(entry)))
        return 0
    if model is None:
        raise _usage_error("give a MODEL (see careloop risk --list)")
    if (raw_input is None) == (patient_ref is None):
        raise _usage_error("give either --input JSON or --patient PATIENT_REF (careloop risk --list names the inputs)")
    sources: dict[str, str] | None = None
    if patient_ref is not None:
        inputs, sources = _record_inputs(ctx.find_object(CliContext), model, patient_ref)
    else:
        inputs = _read_input(str(raw_input))
    try:
        result = evaluate(model, inputs, strict=sources is None)
    except ClinicalError as problem:
        raise _usage_error(str(problem)) from None
    answer = result.to_dict()
    if sources is not None:
        answer["sources"] = sources
    click.echo(json.dumps(answer, ensure_ascii=False, default=str))
    return 0 if result.value is not None else NO_VALUE


def _record_inputs(cli: CliContext | None, model: str, patient_ref: str) -> tuple[dict[str, object], dict[str, str]]:
    """The model's inputs as the patient's record holds them today, and where each came from (audited)."""
    if cli is None:  # pragma: no cover - run() always gives the context
        raise click.UsageError("no command-line context")
    try:
        spec = get_model(model)
    except ClinicalError as problem:
        raise _usage_error(str(problem)) from None
    with cli.unit_of_work() as session:
        try:
            patient = get_patient(session, patient_ref)
        except NotFoundError as problem:
            click.echo(f"error: {problem}", err=True)
            raise click.exceptions.Exit(NO_VALUE) from None
        today = clock_of(session).now().astimezone(zone_of(patient)).date()
        gathered = gather_risk_inputs(session, patient, today, cli.settings.risk_defaults)
        log(session, actor=cli.actor, action="risk.compute", resource_type="patient", resource_id=patient.id,
            patient_id=patient.id, details={"model": spec.name})
    inputs = gathered.for_model(spec.name)
    names = {input_spec.name for input_spec in spec.inputs} | {"items"}
    sources = {name: source for name, source in gathered.sources.items()
               if name in names or name == f"{spec.name}.items"}
    return inputs, sources
