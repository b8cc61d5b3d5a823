"""What a tag rule knows about one patient: the facts of their record, by name.

A rule's expression (``care.tag_rules``) reads these names::

    age                    whole years today (the patient's calendar), or None
    sex                    "male", "female" or None
    language               "zh" or "en"
    profile.<field>        a health-profile fact (care.profile_fields):        profile.smoker
    latest.<indicator>     the newest value of an indicator, canonical unit:  latest.sbp >= 140
    <indicator>            the same, shorter:                                  bmi >= 28
    trend.<indicator>.<x>  the indicator's trend (care.clinical.trends), x one of TREND_FIELDS:
                           trend.sbp.slope_per_year > 5, trend.fpg.direction == 'rising'
    <questionnaire>.<x>    the newest result x of a questionnaire (its flow's result names, without the
                           flow id's prefix):                                  phq9.total >= 10
    category.<result>      the category of a result, by its full name:         category.phq9_total == 'moderate'
    risk.<model>           the category of the newest stored risk assessment:  risk.china_par == 'high'
    tags                   the patient's tags:                                 'hypertension' in tags
    days_since_contact     whole days since the last message either way (None: never)
    days_since_answer      whole days since the patient last answered (a message from them, a saved result)

Indicators are the catalogue's short codes (:data:`care.clinical.codes.INDICATORS`: sbp dbp height
weight bmi waist fpg hba1c tc ldl hdl tg ua alt ast cr egfr). A fact the record does not hold is
None, and a comparison with None is false (the rule does not hold).

Only the facts a rule names are read (:func:`gather` takes the names), so a rule over the latest
readings costs one query, not the whole record. The questionnaires and the conversation log are not
the record's to know: the caller gives the questionnaires' result names (:class:`FactCatalogue`,
from the installed flows) and when the patient was last in touch (:class:`ContactTimes`, from the
conversation log).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from care.clinical import codes
from care.indicators import canonical_value, patient_trends, sex_of, today_of, zone_of
from care.models import PROFILE_SECTIONS, FlowResult, Observation, Patient, RiskAssessment
from care.observations import latest_values
from care.profile_fields import PROFILE_FIELDS
from care.tags import tags_of

INDICATOR_NAMES: frozenset[str] = frozenset(codes.INDICATORS)
TREND_FIELDS: frozenset[str] = frozenset({
    "slope_per_year", "change_from_previous", "change_from_first", "direction", "run", "flag", "category",
    "count", "latest",
})
#: Names that are facts of their own (not indicators or questionnaires).
BASE_NAMES: frozenset[str] = frozenset({
    "age", "sex", "language", "profile", "latest", "trend", "category", "risk", "tags", "days_since_contact",
    "days_since_answer",
})
#: Facts that change with the calendar alone: rules reading them are re-run every day.
TIME_NAMES: frozenset[str] = frozenset({"age", "days_since_contact", "days_since_answer"})


def model_key(model: str) -> str:
    """The name a risk model takes in rules (``china-par`` -> ``china_par``)."""
    return model.replace("-", "_")


def _risk_models() -> frozenset[str]:
    from care.assessments import ASSESSED_MODELS

    return frozenset(model_key(model) for model in ASSESSED_MODELS)


def result_field(flow_id: str, result: str) -> str:
    """The name a result of flow ``flow_id`` takes under the questionnaire's name (``phq9_total`` -> ``total``)."""
    prefix = f"{flow_id}_"
    return result[len(prefix):] if result.startswith(prefix) and len(result) > len(prefix) else result


@dataclass(frozen=True)
class FactCatalogue:
    """Every name a rule may read: the base facts, the indicators and the questionnaires given.

    ``questionnaires``: flow id -> its result names (as the flow saves them). A flow whose id is
    already a fact's name is left out (the fact keeps the name).
    """

    questionnaires: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kept = {flow_id: frozenset(names) for flow_id, names in self.questionnaires.items()
                if flow_id.isidentifier() and flow_id not in BASE_NAMES and flow_id not in INDICATOR_NAMES}
        object.__setattr__(self, "questionnaires", kept)

    def roots(self) -> frozenset[str]:
        """Every name an expression may start with."""
        return BASE_NAMES | INDICATOR_NAMES | frozenset(self.questionnaires)

    def _fields_of(self, root: str) -> frozenset[str] | None:
        """The names allowed after ``root.``, or None when anything goes (or nothing is checked)."""
        if root in ("latest", "trend"):
            return INDICATOR_NAMES
        if root == "profile":
            return frozenset(PROFILE_FIELDS)
        if root == "risk":
            return _risk_models()
        if root == "category":
            return frozenset(name for names in self.questionnaires.values() for name in names)
        if root in self.questionnaires:
            return frozenset(result_field(root, name) for name in self.questionnaires[root])
        return None

    def unknown(self, paths: Iterable[tuple[str, ...]]) -> list[str]:
        """Return the dotted names of ``paths`` that no patient could have, sorted (empty: all known)."""
        roots = self.roots()
        wrong: set[str] = set()
        for path in paths:
            root = path[0]
            if root not in roots:
                wrong.add(root)
                continue
            if len(path) < 2:
                continue
            allowed = self._fields_of(root)
            if allowed is not None and path[1] not in allowed:
                wrong.add(".".join(path[:2]))
            elif root == "trend" and len(path) > 2 and path[2] not in TREND_FIELDS:
                wrong.add(".".join(path[:3]))
        return sorted(wrong)


class ContactTimes(Protocol):
    """When the patient was last in touch: ``(last message either way, last message from them)``."""

    def __call__(self, session: Session, patient_id: uuid.UUID) -> tuple[datetime | None, datetime | None]: ...


def _days_since(today: date, moment: datetime | None, patient: Patient) -> int | None:
    if moment is None:
        return None
    return (today - moment.astimezone(zone_of(patient)).date()).days


def _latest_indicators(session: Session, patient: Patient,
                       latest: Mapping[str, Observation] | None) -> dict[str, float | None]:
    """The newest value of each indicator, in its canonical unit (a LOINC- and a short-coded row: the newer)."""
    newest: dict[str, tuple[datetime, float]] = {}
    for observation in (latest_values(session, patient) if latest is None else latest).values():
        canonical = canonical_value(observation)
        if canonical is None:
            continue
        code, value = canonical
        seen = newest.get(code)
        if seen is None or observation.effective_at > seen[0]:
            newest[code] = (observation.effective_at, value)
    found: dict[str, float | None] = dict.fromkeys(INDICATOR_NAMES)
    found.update({code: value for code, (_when, value) in newest.items()})
    return found


def _trends(session: Session, patient: Patient) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for trend in patient_trends(session, patient):
        found[trend.code] = {
            "slope_per_year": trend.slope_per_year, "change_from_previous": trend.change_from_previous,
            "change_from_first": trend.change_from_first, "direction": trend.direction, "run": trend.run,
            "flag": trend.flag, "category": None if trend.category is None else trend.category.key,
            "count": len(trend.points), "latest": trend.latest.value,
        }
    return found


def _results(session: Session, patient: Patient, flow_ids: Iterable[str] | None) -> list[FlowResult]:
    """The patient's results (of ``flow_ids``, or all), oldest first."""
    query = select(FlowResult).where(FlowResult.patient_id == patient.id)
    if flow_ids is not None:
        query = query.where(FlowResult.flow_id.in_(list(flow_ids)))
    return list(session.scalars(query.order_by(FlowResult.recorded_at, FlowResult.id)))


def _risks(session: Session, patient: Patient) -> dict[str, str | None]:
    found: dict[str, str | None] = dict.fromkeys(_risk_models())
    query = (select(RiskAssessment).where(RiskAssessment.patient_id == patient.id)
             .order_by(RiskAssessment.assessed_on, RiskAssessment.computed_at))
    for row in session.scalars(query):
        found[model_key(row.model)] = row.category  # the newest last
    return found


def _profile(patient: Patient) -> dict[str, Any]:
    # Read as stored: a rule never creates a profile (care.profiles.profile_of would).
    found: dict[str, Any] = dict.fromkeys(PROFILE_FIELDS)
    stored = patient.profile
    if stored is not None:
        for section in PROFILE_SECTIONS:
            found.update(getattr(stored, section) or {})
    return found


def _last_result_at(session: Session, patient: Patient) -> datetime | None:
    return session.scalar(select(func.max(FlowResult.recorded_at)).where(FlowResult.patient_id == patient.id))


def gather(session: Session, patient: Patient, *, names: Iterable[str], catalogue: FactCatalogue,
           contact: ContactTimes | None = None, latest: Mapping[str, Observation] | None = None) -> dict[str, Any]:
    """Return the patient's facts under ``names`` (the roots the rules read), as plain values and dicts.

    A name the record holds nothing for is None (an empty dict for a namespace). ``latest``: the
    patient's newest observations, read already for a chunk of patients
    (:func:`care.observations.latest_values_of`).
    """
    wanted = set(names)
    facts: dict[str, Any] = {}
    today = today_of(session, patient) if wanted & {"age", "days_since_contact", "days_since_answer"} else None
    if "age" in wanted:
        assert today is not None  # noqa: S101 - computed above for these names
        facts["age"] = patient.age_on(today) if isinstance(patient.birth_date, date) else None
    if "sex" in wanted:
        facts["sex"] = sex_of(patient)
    if "language" in wanted:
        facts["language"] = patient.language
    if "profile" in wanted:
        facts["profile"] = _profile(patient)
    if wanted & (INDICATOR_NAMES | {"latest"}):
        indicators = _latest_indicators(session, patient, latest)
        facts["latest"] = indicators
        facts.update({code: indicators[code] for code in wanted & INDICATOR_NAMES})
    if "trend" in wanted:
        facts["trend"] = _trends(session, patient)
    questionnaires = sorted(wanted & set(catalogue.questionnaires))
    if questionnaires or "category" in wanted:
        values: dict[str, dict[str, Any]] = {flow_id: {} for flow_id in questionnaires}
        categories: dict[str, Any] = {}
        for result in _results(session, patient, None if "category" in wanted else questionnaires):
            if result.flow_id in values:
                values[result.flow_id][result_field(result.flow_id, result.name)] = result.value  # newest last
            categories[result.name] = result.category
        facts.update(values)
        if "category" in wanted:
            facts["category"] = categories
    if "risk" in wanted:
        facts["risk"] = _risks(session, patient)
    if "tags" in wanted:
        facts["tags"] = frozenset(tags_of(session, patient))
    if wanted & {"days_since_contact", "days_since_answer"}:
        assert today is not None  # noqa: S101 - computed above for these names
        last_any, last_inbound = contact(session, patient.id) if contact is not None else (None, None)
        answered = [moment for moment in (last_inbound, _last_result_at(session, patient)) if moment is not None]
        touched = [moment for moment in (last_any, *answered) if moment is not None]
        facts["days_since_contact"] = _days_since(today, max(touched) if touched else None, patient)
        facts["days_since_answer"] = _days_since(today, max(answered) if answered else None, patient)
    return facts
