"""A patient's indicators from the stored observations: one series per indicator, and its trend.

Observations carry a LOINC code (or a short code) and a unit; every one the indicator catalogue
knows (clinical-spec.md section 8) is put in its indicator's series, converted to the canonical
unit, dated by the patient's own calendar day (one value a day: the last one). Trends are
:func:`care.clinical.trends.analyse_all` over those series, with the patient's sex and age.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from care.clinical import codes, units
from care.clinical.config import ClinicalConfig
from care.clinical.trends import SeriesItem, SourceKind, Trend, analyse_all, source_kind
from care.models import Observation, Patient
from care.observations import observations_of
from security.fields import clock_of

DEFAULT_TIMEZONE = "Asia/Shanghai"
#: The record's gender -> the clinical functions' sex.
SEXES: Mapping[str, str] = {"M": "male", "F": "female"}

Series = dict[str, list[tuple[date, float]]]
#: Each indicator's values with the kind of source they came from (checkup, home, clinic).
SourcedSeries = dict[str, list[tuple[date, float, SourceKind]]]


def zone_of(patient: Patient) -> tzinfo:
    """Return the patient's time zone (the clinic's default when unset or unknown)."""
    try:
        return ZoneInfo(patient.timezone or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def sex_of(patient: Patient) -> str | None:
    """Return ``male``/``female`` for the clinical functions, or None."""
    return SEXES.get(patient.gender or "")


def today_of(session: Session, patient: Patient) -> date:
    """Return today's date in the patient's time zone."""
    return clock_of(session).now().astimezone(zone_of(patient)).date()


def indicator_series(session: Session, patient: Patient, *, until: date | None = None) -> Series:
    """Return each indicator's values in canonical units by local date, oldest first (up to ``until``)."""
    by_day: dict[str, dict[date, float]] = {}
    for code, day, _kind, value in _readings(session, patient, until):
        by_day.setdefault(code, {})[day] = value
    return {code: sorted(days.items()) for code, days in by_day.items()}


def sourced_series(session: Session, patient: Patient, *, until: date | None = None) -> SourcedSeries:
    """Return each indicator's values with their source kind, one a day per kind (the last), oldest first.

    The kind comes from ``Observation.source`` (:func:`care.clinical.trends.source_kind`).
    """
    by_day: dict[str, dict[tuple[date, SourceKind], float]] = {}
    for code, day, kind, value in _readings(session, patient, until):
        by_day.setdefault(code, {})[(day, kind)] = value
    return {code: [(day, value, kind) for (day, kind), value in sorted(days.items())]
            for code, days in by_day.items()}


def _readings(session: Session, patient: Patient, until: date | None) -> Iterator[tuple[str, date, SourceKind, float]]:
    """Yield ``(indicator, local day, source kind, canonical value)`` of each indicator observation."""
    zone = zone_of(patient)
    for observation in observations_of(session, patient):
        found = canonical_value(observation)
        if found is None:
            continue
        day = observation.effective_at.astimezone(zone).date()
        if until is not None and day > until:
            continue
        yield found[0], day, source_kind(observation.source), found[1]


def canonical_value(observation: Observation) -> tuple[str, float] | None:
    """``(indicator code, value in the indicator's canonical unit)`` of an observation; None for a code that is
    not an indicator (a questionnaire total, a code kept as it came), no value, or a unit that does not convert."""
    try:
        indicator = codes.indicator(observation.code)
    except codes.UnknownCodeError:
        return None
    value = observation.value
    if value is None:
        return None
    if observation.unit != indicator.unit:
        try:
            value = units.to_canonical(indicator.code, value, observation.unit)
        except units.UnitError:
            return None
    return indicator.code, value


def patient_trends(
    session: Session, patient: Patient, *, series: Series | SourcedSeries | None = None,
    config: ClinicalConfig | None = None,
) -> list[Trend]:
    """Return the trend of every indicator the patient has values of, in the catalogue's order.

    Each point keeps its source kind; the trend line uses checkup and clinic values
    (:data:`care.clinical.trends.TREND_SOURCES`).
    """
    found: Mapping[str, Sequence[SeriesItem]] = sourced_series(session, patient) if series is None else series
    age = patient.age_on(today_of(session, patient))
    return analyse_all(dict(found), sex=sex_of(patient), age=age, config=config)
