"""A patient's indicators from the stored observations: one series per indicator, and its trend.

Observations carry a LOINC code (or a short code) and a unit; every one the indicator catalogue
knows (clinical-spec.md section 8) is put in its indicator's series, converted to the canonical
unit, dated by the patient's own calendar day (one value a day: the last one). Trends are
:func:`care.clinical.trends.analyse_all` over those series, with the patient's sex and age.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from care.clinical import codes, units
from care.clinical.config import ClinicalConfig
from care.clinical.trends import Trend, analyse_all
from care.models import Patient
from care.observations import observations_of
from security.fields import clock_of

DEFAULT_TIMEZONE = "Asia/Shanghai"
#: The record's gender -> the clinical functions' sex.
SEXES: Mapping[str, str] = {"M": "male", "F": "female"}

Series = dict[str, list[tuple[date, float]]]


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
    zone = zone_of(patient)
    by_day: dict[str, dict[date, float]] = {}
    for observation in observations_of(session, patient):
        try:
            indicator = codes.indicator(observation.code)
        except codes.UnknownCodeError:
            continue  # questionnaire totals and other codes are not indicators
        value = observation.value
        if value is None:
            continue
        if observation.unit != indicator.unit:
            try:
                value = units.to_canonical(indicator.code, value, observation.unit)
            except units.UnitError:
                continue
        day = observation.effective_at.astimezone(zone).date()
        if until is not None and day > until:
            continue
        by_day.setdefault(indicator.code, {})[day] = value
    return {code: sorted(days.items()) for code, days in by_day.items()}


def patient_trends(
    session: Session, patient: Patient, *, series: Series | None = None, config: ClinicalConfig | None = None
) -> list[Trend]:
    """Return the trend of every indicator the patient has values of, in the catalogue's order."""
    found = indicator_series(session, patient) if series is None else series
    age = patient.age_on(today_of(session, patient))
    return analyse_all(dict(found), sex=sex_of(patient), age=age, config=config)
