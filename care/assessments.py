"""Risk assessment (疾病风险评估) of a patient from the record, stored per day so that risk can be trended.

The inputs of clinical-spec.md ("Input names") are gathered from the record, never guessed:

- ``sex`` and ``age`` (whole years on the assessment day) from the patient;
- measurements: the latest value on or before the assessment day of each indicator
  (:data:`OBSERVED_INPUTS`);
- yes/no and choice answers: the health profile fields named like the inputs (the intake flow
  saves ``smoker``, ``diabetes``, ``bp_treated``... under those names); a value of the wrong type
  is left out, as if not answered;
- questionnaire items: the latest complete-or-partial set of PHQ-9 / GAD-7 item answers
  (flow results ``phq9_q1``..``phq9_q9``, ``gad7_q1``..``gad7_q7``).

Each model of :data:`ASSESSED_MODELS` that has at least one of its own inputs is evaluated
(:func:`care.clinical.risk.evaluate`); its result, the rule-pack version, the inputs used and the
missing ones are stored as a :class:`RiskAssessment` of that day (a second run the same day
replaces the first). PCE (ACC/AHA, US cohorts) is left out by default: the issue asks for
China-PAR and Framingham for cardiovascular risk.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from care.clinical.common import Label
from care.clinical.config import ClinicalConfig
from care.clinical.risk import RiskResult, evaluate, get_model
from care.clinical.risk.base import INPUTS, InputError, check_input
from care.indicators import indicator_series, sex_of, today_of, zone_of
from care.models import PROFILE_SECTIONS, FlowResult, Observation, Patient, RiskAssessment
from security.audit import Actor, log
from security.fields import clock_of

#: The models assessed from the record, in the spec's order.
ASSESSED_MODELS: tuple[str, ...] = (
    "china-par", "framingham", "findrisc", "cdrs", "phq9", "gad7",
    "bmi", "waist", "bp", "fpg", "lipids", "uric-acid", "egfr",
)
#: indicator short code -> model input name (clinical-spec.md "Input names").
OBSERVED_INPUTS: Mapping[str, str] = MappingProxyType({
    "sbp": "sbp", "dbp": "dbp", "tc": "tc", "hdl": "hdl", "ldl": "ldl", "tg": "tg", "waist": "waist",
    "height": "height", "weight": "weight", "bmi": "bmi", "fpg": "fpg", "hba1c": "hba1c",
    "cr": "creatinine", "ua": "uric_acid",
})
#: Inputs read from the health profile under the same name.
PROFILE_INPUTS: tuple[str, ...] = (
    "bp_treated", "smoker", "diabetes", "region_north", "urban", "family_history_ascvd", "family_history_diabetes",
    "physically_active", "daily_veg_fruit", "ever_bp_medication", "ever_high_glucose", "known_ascvd", "race",
)
#: questionnaire model -> (flow result name prefix, item count).
QUESTIONNAIRES: Mapping[str, tuple[str, int]] = MappingProxyType({"phq9": ("phq9_q", 9), "gad7": ("gad7_q", 7)})
ALWAYS_KNOWN = frozenset({"sex", "age"})


@dataclass
class RiskInputs:
    """The inputs found in the record, and where each came from (``observation 2024-05-12``, ``profile``)."""

    values: dict[str, object] = field(default_factory=dict)
    items: dict[str, list[int | None]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def for_model(self, model: str) -> dict[str, object]:
        """Return the inputs of ``model`` (a questionnaire gets its own items, and the age for its population)."""
        if model in QUESTIONNAIRES:
            if model not in self.items:
                return {}
            age = {"age": self.values["age"]} if "age" in self.values else {}
            return {"items": self.items[model], **age}
        return dict(self.values)


def profile_facts(patient: Patient) -> dict[str, Any]:
    """Return every profile field, all sections merged (names are unique across sections by convention)."""
    facts: dict[str, Any] = {}
    if patient.profile is not None:
        for section in PROFILE_SECTIONS:
            facts.update(getattr(patient.profile, section) or {})
    return facts


def _questionnaire_items(session: Session, patient: Patient, on: date) -> dict[str, list[int | None]]:
    found: dict[str, list[int | None]] = {}
    zone = zone_of(patient)
    for model, (prefix, count) in QUESTIONNAIRES.items():
        names = [f"{prefix}{number}" for number in range(1, count + 1)]
        rows = session.scalars(
            select(FlowResult).where(FlowResult.patient_id == patient.id, FlowResult.name.in_(names))
            .order_by(FlowResult.recorded_at.desc())
        ).all()
        latest = next((row for row in rows if row.recorded_at.astimezone(zone).date() <= on), None)
        if latest is None:
            continue
        same = [row for row in rows if row.session_id == latest.session_id] if latest.session_id else [latest]
        answers: dict[str, object] = {row.name: row.value for row in same}
        items: list[int | None] = []
        for name in names:
            value = answers.get(name)
            ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3
            items.append(value if ok else None)  # type: ignore[arg-type]
        found[model] = items
    return found


#: Inputs a clinic may give for all its patients (``CARELOOP_REGION_NORTH``, ``CARELOOP_URBAN``).
CLINIC_DEFAULT_INPUTS = frozenset({"region_north", "urban"})


def gather_risk_inputs(session: Session, patient: Patient, on: date,
                       defaults: Mapping[str, object] | None = None) -> RiskInputs:
    """Collect the model inputs the record holds on ``on`` (see the module docstring).

    ``defaults`` are the clinic's for its patients (``region_north``, ``urban``; None: not given);
    the patient's own profile answer wins over them.
    """
    inputs = RiskInputs()
    for given, value in (defaults or {}).items():
        if given in CLINIC_DEFAULT_INPUTS and value is not None:
            inputs.values[given], inputs.sources[given] = check_input(INPUTS[given], value), "clinic"
    sex = sex_of(patient)
    if sex is not None:
        inputs.values["sex"], inputs.sources["sex"] = sex, "patient"
    age = patient.age_on(on)
    if age is not None:
        inputs.values["age"], inputs.sources["age"] = age, "patient"
    for code, series in indicator_series(session, patient, until=on).items():
        name = OBSERVED_INPUTS.get(code)
        if name is not None and series:
            day, value = series[-1]
            inputs.values[name], inputs.sources[name] = value, f"observation {day.isoformat()}"
    facts = profile_facts(patient)
    for name in PROFILE_INPUTS:
        if name not in facts or facts[name] is None:
            continue
        try:
            inputs.values[name] = check_input(INPUTS[name], facts[name])
        except InputError:
            continue  # an answer of the wrong type counts as not answered
        inputs.sources[name] = "profile"
    inputs.items = _questionnaire_items(session, patient, on)
    for model in inputs.items:
        inputs.sources[f"{model}.items"] = "questionnaire"
    return inputs


def _jsonable(value: object) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def _applicable(model: str, given: Mapping[str, object]) -> bool:
    """True when the patient has at least one of the model's own inputs (beyond sex and age)."""
    names = {spec.name for spec in get_model(model).inputs} - ALWAYS_KNOWN
    return any(name in given for name in names)


def assess_risks(
    session: Session, patient: Patient, *, actor: Actor, on: date | None = None, config: ClinicalConfig | None = None,
    defaults: Mapping[str, object] | None = None,
) -> list[RiskAssessment]:
    """Evaluate every applicable model on the record as of ``on`` (default today) and store the results.

    ``defaults``: the clinic's inputs for its patients (see :func:`gather_risk_inputs`).
    """
    day = on or today_of(session, patient)
    inputs = gather_risk_inputs(session, patient, day, defaults)
    now = clock_of(session).now()
    stored = {
        row.model: row
        for row in session.scalars(
            select(RiskAssessment).where(RiskAssessment.patient_id == patient.id, RiskAssessment.assessed_on == day)
        )
    }
    saved: list[RiskAssessment] = []
    for model in ASSESSED_MODELS:
        given = inputs.for_model(model)
        if not _applicable(model, given):
            continue
        result = evaluate(model, given, config=config)
        used = {name: value for name, value in result.inputs.items()}
        content = _jsonable({**result.to_dict(), "inputs": used,
                             "sources": {name: inputs.sources.get(name, "") for name in used}})
        row = stored.get(model)
        if row is None:
            row = RiskAssessment(patient_id=patient.id, model=model, assessed_on=day)
            session.add(row)
        row.value = None if result.value is None else float(result.value)
        row.category = result.category
        row.rule_pack = result.rule_pack[:64]
        row.missing = list(result.missing)
        row.inputs = _jsonable(used)
        row.result = content
        row.computed_at = now
        saved.append(row)
    log(session, actor=actor, action="risk.assess", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"models": len(saved)})
    return saved


def stored_result(row: RiskAssessment) -> RiskResult:
    """Rebuild the :class:`RiskResult` a stored assessment was made from."""
    data: dict[str, Any] = row.result or {}

    def label(raw: object) -> Label:
        return Label(**raw) if isinstance(raw, dict) else Label("", "")

    value = data.get("value")
    return RiskResult(
        model=row.model,
        value=value if isinstance(value, int | float) and not isinstance(value, bool) else None,
        unit=str(data.get("unit", "")),
        # An implausible result prints "category": null (clinical-spec.md 10a); the row keeps its key.
        category=str(data.get("category") or row.category or ""),
        category_label=label(data.get("category_label")),
        citation=str(data.get("citation", "")),
        rule_pack=row.rule_pack,
        missing=tuple(row.missing or ()),
        flags=tuple(data.get("flags", ())),
        notes=tuple(label(note) for note in data.get("notes", ())),
        details=MappingProxyType(dict(data.get("details", {}))),
        inputs=MappingProxyType(dict(data.get("inputs", {}))),
        patient_notes=tuple(label(note) for note in data.get("patient_notes", ())),
        **({"disclaimer": label(data["disclaimer"])} if isinstance(data.get("disclaimer"), dict) else {}),
    )


def assessment_rows(session: Session, patient: Patient, *, model: str | None = None) -> list[RiskAssessment]:
    """Return the patient's stored assessments, oldest first (optionally of one model)."""
    query = select(RiskAssessment).where(RiskAssessment.patient_id == patient.id)
    if model is not None:
        query = query.where(RiskAssessment.model == model)
    return list(session.scalars(query.order_by(RiskAssessment.assessed_on, RiskAssessment.model)))


def risk_history(session: Session, patient: Patient, *, model: str | None = None) -> list[tuple[date, RiskResult]]:
    """Return every stored result as ``(day, result)``, oldest first: the trend of risk."""
    return [(row.assessed_on, stored_result(row)) for row in assessment_rows(session, patient, model=model)]


def latest_risk_results(session: Session, patient: Patient) -> list[RiskResult]:
    """Return the latest stored result of each model, in the spec's order."""
    latest: dict[str, RiskAssessment] = {}
    for row in assessment_rows(session, patient):
        latest[row.model] = row
    order = {name: index for index, name in enumerate(ASSESSED_MODELS)}
    rows = sorted(latest.values(), key=lambda row: (order.get(row.model, len(order)), row.model))
    return [stored_result(row) for row in rows]


def assessment_is_current(session: Session, patient: Patient) -> bool:
    """Tell whether the latest assessment is newer than every observation, answer and profile change."""
    rows = assessment_rows(session, patient)
    if not rows:
        return False
    assessed = max(row.computed_at for row in rows)
    changes: list[datetime] = [
        moment
        for moment in (
            session.scalar(select(Observation.recorded_at).where(Observation.patient_id == patient.id)
                           .order_by(Observation.recorded_at.desc()).limit(1)),
            session.scalar(select(FlowResult.recorded_at).where(FlowResult.patient_id == patient.id)
                           .order_by(FlowResult.recorded_at.desc()).limit(1)),
            patient.profile.updated_at if patient.profile is not None else None,
        )
        if moment is not None
    ]
    return all(moment <= assessed for moment in changes)


def current_risk_results(session: Session, patient: Patient, *, actor: Actor,
                         defaults: Mapping[str, object] | None = None) -> list[RiskResult]:
    """Return the latest results, assessing first when the record changed since the last assessment."""
    if not assessment_is_current(session, patient):
        assess_risks(session, patient, actor=actor, defaults=defaults)
        session.flush()
    return latest_risk_results(session, patient)
