"""The indicator catalogue: short codes, LOINC codes, display names, canonical units, plausibility.

Source: clinical-spec.md section 8 (LOINC codes; the code is chosen by the unit that was actually
reported, because mass and molar units have different codes) and CONTRACT.md (the short codes of the
import template).

Plausibility limits are the physiologically possible range in the canonical unit. They are not
reference ranges: they only reject entry errors such as an SBP of 1350 or a height of 17 cm. The
limits of the spec's table (clinical-spec.md 10a) live in :mod:`care.clinical.plausibility`, the one
place every check reads; ``Indicator.plausible`` is only the fallback of an indicator that table
does not list.

The importer calls :func:`resolve`::

    resolved = resolve("2093-3", 200, "mg/dL")
    resolved.indicator.code   # "tc"
    resolved.value            # 5.17... (mmol/L)
    resolved.loinc            # "2093-3" (the code of the reported, mass unit)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from care.clinical import plausibility, units
from care.clinical.common import ClinicalError, Label

PLAUSIBILITY_RULE_PACK = plausibility.RULE_PACK


class UnknownCodeError(ClinicalError):
    """A code that is neither a short code nor a known LOINC code."""


class ImplausibleValueError(ClinicalError):
    """A value outside the physiologically possible range of its indicator."""


@dataclass(frozen=True, slots=True)
class Indicator:
    """One measurable indicator of the record."""

    code: str
    name: Label
    unit: str
    loinc: str
    decimals: int
    plausible: tuple[float, float]
    #: unit (canonical spelling) -> LOINC code, where the reported unit selects another code.
    loinc_by_unit: Mapping[str, str] = field(default_factory=dict)
    #: further LOINC codes that identify this indicator (accepted on import).
    other_loinc: tuple[str, ...] = ()

    def loinc_for_unit(self, unit: str) -> str:
        """Return the LOINC code matching the reported ``unit`` (spec section 8)."""
        return self.loinc_by_unit.get(units.normalize_unit(unit), self.loinc)

    def all_loinc(self) -> tuple[str, ...]:
        """Return every LOINC code that maps to this indicator."""
        return (self.loinc, *self.loinc_by_unit.values(), *self.other_loinc)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A reported result resolved to an indicator and converted to its canonical unit."""

    indicator: Indicator
    value: float
    unit: str
    loinc: str
    reported_value: float
    reported_unit: str


def _ind(
    code: str,
    zh: str,
    en: str,
    loinc: str,
    decimals: int,
    plausible: tuple[float, float],
    *,
    by_unit: Mapping[str, str] | None = None,
    other: tuple[str, ...] = (),
) -> Indicator:
    return Indicator(
        code=code,
        name=Label(zh, en),
        unit=units.canonical_unit(code),
        loinc=loinc,
        decimals=decimals,
        plausible=plausible,
        loinc_by_unit=dict(by_unit or {}),
        other_loinc=other,
    )


#: short code -> indicator, in the order of the import template.
INDICATORS: dict[str, Indicator] = {
    ind.code: ind
    for ind in (
        _ind("sbp", "收缩压", "Systolic BP", "8480-6", 0, (40, 300)),
        _ind("dbp", "舒张压", "Diastolic BP", "8462-4", 0, (20, 200)),
        _ind("height", "身高", "Height", "8302-2", 1, (50, 250)),
        _ind("weight", "体重", "Weight", "29463-7", 1, (10, 400)),
        _ind("bmi", "体重指数", "BMI", "39156-5", 1, (8, 100)),
        _ind("waist", "腰围", "Waist", "8280-0", 1, (30, 250)),
        _ind("fpg", "空腹血糖", "Fasting glucose", "14771-0", 1, (0.5, 60), by_unit={"mg/dL": "1558-6"}),
        _ind("hba1c", "糖化血红蛋白", "HbA1c", "4548-4", 1, (2, 25), by_unit={"mmol/mol": "59261-8"}),
        _ind("tc", "总胆固醇", "Total cholesterol", "14647-2", 2, (0.5, 30), by_unit={"mg/dL": "2093-3"}),
        _ind(
            "ldl", "低密度脂蛋白胆固醇", "LDL cholesterol", "22748-8", 2, (0.1, 25),
            by_unit={"mg/dL": "13457-7"}, other=("18262-6",),
        ),
        _ind("hdl", "高密度脂蛋白胆固醇", "HDL cholesterol", "14646-4", 2, (0.05, 6), by_unit={"mg/dL": "2085-9"}),
        _ind("tg", "甘油三酯", "Triglycerides", "14927-8", 2, (0.1, 100), by_unit={"mg/dL": "2571-8"}),
        _ind("ua", "尿酸", "Uric acid", "14933-6", 0, (30, 1500), by_unit={"mg/dL": "3084-1"}),
        _ind("alt", "谷丙转氨酶", "ALT", "1742-6", 0, (1, 10000)),
        _ind("ast", "谷草转氨酶", "AST", "1920-8", 0, (1, 10000)),
        _ind("cr", "肌酐", "Creatinine", "14682-9", 0, (10, 3000), by_unit={"mg/dL": "2160-0"}),
        _ind("egfr", "估算肾小球滤过率", "eGFR", "98979-8", 1, (1, 250)),
    )
}

#: Questionnaire totals (spec section 6 and 8); not measured indicators, but coded the same way.
QUESTIONNAIRE_LOINC: dict[str, str] = {"phq9": "44261-6", "gad7": "70274-6"}

#: LOINC code -> short code, for every code of the catalogue.
LOINC_INDEX: dict[str, str] = {
    loinc: ind.code for ind in INDICATORS.values() for loinc in ind.all_loinc()
}


def indicator(code: str) -> Indicator:
    """Return the indicator for a short code or a LOINC code; raise :class:`UnknownCodeError`."""
    key = code.strip()
    found = INDICATORS.get(key.lower())
    if found is None and key in LOINC_INDEX:
        found = INDICATORS[LOINC_INDEX[key]]
    if found is None:
        raise UnknownCodeError(f"unknown indicator code {code!r}")
    return found


def check_plausible(ind: Indicator, value: float) -> None:
    """Raise :class:`ImplausibleValueError` when ``value`` (canonical unit) is not physiologically possible.

    The reason names the indicator and the range, never the value (it may be shown beside a row).
    """
    if plausibility.range_of(ind.code) is not None:
        problem = plausibility.check_value(ind.code, value)
        if problem is not None:
            raise ImplausibleValueError(problem.text)
        return
    low, high = ind.plausible
    if not math.isfinite(value) or not low <= value <= high:
        raise ImplausibleValueError(f"{ind.code} is outside the plausible range {low:g}-{high:g} {ind.unit}")


def resolve(code: str, value: float, unit: str) -> Resolved:
    """Resolve a reported ``(code, value, unit)`` to its indicator and canonical value.

    ``code`` is a short code or a LOINC code; ``unit`` is the unit as printed. The returned LOINC
    code is the given one when ``code`` is a LOINC code, else the one matching the reported unit
    (spec section 8: mass and molar units have different codes).

    Raises :class:`UnknownCodeError`, :class:`care.clinical.units.UnitError` or
    :class:`ImplausibleValueError`, each with a one-line reason naming the indicator.
    """
    ind = indicator(code)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ImplausibleValueError(f"{ind.code} value must be a number, got {type(value).__name__}")
    canonical = units.to_canonical(ind.code, float(value), unit)
    check_plausible(ind, canonical)
    return Resolved(
        indicator=ind,
        value=canonical,
        unit=ind.unit,
        loinc=code.strip() if code.strip() in LOINC_INDEX else ind.loinc_for_unit(unit),
        reported_value=float(value),
        reported_unit=unit,
    )
