"""Plausibility: the checks every clinical number passes before any arithmetic or category.

Source: clinical-spec.md section 10a ("Plausibility and populations"), rule pack ``PLAUSIBILITY-2``.
A value that fails is a unit or typing error, not a patient: no risk model computes on it, no
category is given to it, and an import rejects its row. The rules:

- each value lies within its physiologically possible range (:data:`RANGES`, canonical units);
- SBP is higher than DBP when both are given (80/120 is a reversed pair, not grade 3 hypertension);
- HDL-C and LDL-C are each lower than total cholesterol when given together (same draw).

Values are keyed by the indicator short codes of the import template (``sbp dbp tc ldl hdl tg fpg
hba1c bmi height weight waist ua alt ast cr egfr``) or by the risk-model input names of
clinical-spec.md (``creatinine``, ``uric_acid``, ``age``, ...); unknown keys are ignored::

    check_values({"sbp": 80, "dbp": 120})
    # [Implausible(rule="sbp_above_dbp", names=("sbp", "dbp"), message=Label(zh=..., en=...))]

Messages name the input and the rule, never the value (an import's rejection reason must not carry
the PHI value, spec 10a); they come in zh and en for staff. The extended rows (inputs the spec's
table does not list) and their sources are documented in docs/clinical.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from care.clinical.common import ClinicalError, Label

RULE_PACK = "PLAUSIBILITY-2"


@dataclass(frozen=True, slots=True)
class PlausibleRange:
    """The physiologically possible values of one input, in its canonical unit.

    ``low_open``/``high_open`` exclude the limit itself (BMI: ≤ 10 and ≥ 100 are implausible).
    """

    name: Label
    low: float
    high: float
    unit: str
    source: str
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        """Return True when ``value`` is a finite number inside the range."""
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def text(self) -> str:
        """Return the range as printed in a message, e.g. ``60-300 mmHg`` or ``>10-<100 kg/m2``."""
        low = (">" if self.low_open else "") + f"{self.low:g}"
        high = ("<" if self.high_open else "") + f"{self.high:g}"
        return f"{low}-{high} {self.unit}".rstrip()


_SPEC = "clinical-spec.md 10a"


def _row(
    zh: str, en: str, low: float, high: float, unit: str, source: str = _SPEC, **open_ends: bool
) -> PlausibleRange:
    return PlausibleRange(Label(zh, en), low, high, unit, source, **open_ends)


#: short code -> plausible range (canonical units). The spec's table first, then its extensions.
RANGES: Mapping[str, PlausibleRange] = {
    "sbp": _row("收缩压", "systolic BP", 60, 300, "mmHg"),
    "dbp": _row("舒张压", "diastolic BP", 30, 200, "mmHg"),
    "tc": _row("总胆固醇", "total cholesterol", 1, 20, "mmol/L"),
    "hdl": _row("高密度脂蛋白胆固醇", "HDL cholesterol", 0.1, 5, "mmol/L"),
    "ldl": _row("低密度脂蛋白胆固醇", "LDL cholesterol", 0.1, 15, "mmol/L"),
    "tg": _row("甘油三酯", "triglycerides", 0.1, 50, "mmol/L"),
    "fpg": _row("血糖", "glucose", 1, 40, "mmol/L"),
    "hba1c": _row("糖化血红蛋白", "HbA1c", 3, 20, "%"),
    "height": _row("身高", "height", 50, 250, "cm"),
    "weight": _row("体重", "weight", 2, 400, "kg"),
    "waist": _row("腰围", "waist", 30, 250, "cm"),
    "cr": _row("肌酐", "creatinine", 10, 2000, "µmol/L"),
    "ua": _row("尿酸", "uric acid", 30, 1500, "µmol/L"),
    # --- extensions (not in the spec's table); each source is given in docs/clinical.md ---
    # BMI <= 10 or >= 100 kg/m2 is implausible: Chan SH, Raffa SD, J Gen Intern Med 2017;32(Suppl 1)
    # (VA electronic-record weight cleaning, step 2). [V1]
    "bmi": _row(
        "体重指数", "BMI", 10, 100, "kg/m2", "Chan & Raffa 2017 (EHR weight cleaning)", low_open=True, high_open=True
    ),
    # eGFR: the CKD-EPI 2021 equation (Inker 2021, spec 7.7) over the spec's creatinine range 10-2000
    # µmol/L and ages 18-130 gives 1.0-237.5 mL/min/1.73 m2; widened to 0.5-250 for other equations. [U]
    "egfr": _row("估算肾小球滤过率", "eGFR", 0.5, 250, "mL/min/1.73m2", "derived from CKD-EPI 2021 and the Cr range"),
    # ALT/AST: no published physiological limit was found. Acute liver injury (paracetamol, ischaemic
    # hepatitis) is documented above 10,000 U/L (NIH LiverTox, acetaminophen record), so the limit
    # is wide: it catches only unit and typing errors. [U]
    "alt": _row("谷丙转氨酶", "ALT", 1, 50000, "U/L", "Careloop [U]; LiverTox acetaminophen record"),
    "ast": _row("谷草转氨酶", "AST", 1, 50000, "U/L", "Careloop [U]; LiverTox acetaminophen record"),
    # Age in whole years: 0 (a newborn) to 130; the oldest verified human lived to 122. [V1]
    "age": _row("年龄", "age", 0, 130, "years", "Careloop; oldest verified age 122 years"),
}

#: Risk-model input names (clinical-spec.md "Input names") that differ from the short codes.
ALIASES: Mapping[str, str] = {"creatinine": "cr", "uric_acid": "ua"}


@dataclass(frozen=True, slots=True)
class PairRule:
    """``lower`` must be strictly below ``upper`` when both are given."""

    rule: str
    lower: str
    upper: str
    message: Label


PAIR_RULES: tuple[PairRule, ...] = (
    PairRule(
        "sbp_above_dbp", "dbp", "sbp",
        Label("收缩压必须高于舒张压（收缩压、舒张压可能填反了）",
              "sbp must be higher than dbp (systolic and diastolic may be swapped)"),
    ),
    PairRule(
        "hdl_below_tc", "hdl", "tc",
        Label("高密度脂蛋白胆固醇必须低于总胆固醇（HDL-C是总胆固醇的一部分）",
              "hdl must be lower than tc (HDL cholesterol is part of the total)"),
    ),
    PairRule(
        "ldl_below_tc", "ldl", "tc",
        Label("低密度脂蛋白胆固醇必须低于总胆固醇（LDL-C是总胆固醇的一部分）",
              "ldl must be lower than tc (LDL cholesterol is part of the total)"),
    ),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Implausible:
    """One failed check: the rule, the inputs it concerns (as given), and the reason in zh and en."""

    rule: str
    names: tuple[str, ...]
    message: Label

    @property
    def text(self) -> str:
        """The English reason (one line)."""
        return self.message.en

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready mapping."""
        return {"rule": self.rule, "inputs": list(self.names), **self.message.to_dict()}


class ImplausibleError(ClinicalError):
    """Values that failed a plausibility check; ``problems`` lists every failure."""

    def __init__(self, problems: list[Implausible]) -> None:
        super().__init__("; ".join(problem.text for problem in problems))
        self.problems = problems


def code_of(name: str) -> str:
    """Return the short code of a short code or risk-model input name (``creatinine`` -> ``cr``)."""
    return ALIASES.get(name, name)


def range_of(name: str) -> PlausibleRange | None:
    """Return the plausible range of a short code or input name, or None when it has none."""
    return RANGES.get(code_of(name))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_value(name: str, value: float) -> Implausible | None:
    """Return the failure of one value against its range, or None (also for names without a range)."""
    limits = range_of(name)
    if limits is None:
        return None
    if not _is_number(value):
        message = Label(f"{name}（{limits.name.zh}）必须是数字", f"{name} must be a number")
        return Implausible("number", (name,), message)
    if limits.contains(float(value)):
        return None
    if not math.isfinite(value):
        return Implausible(
            "finite", (name,), Label(f"{name}（{limits.name.zh}）必须是有限的数字", f"{name} must be a finite number")
        )
    return Implausible(
        "range",
        (name,),
        Label(
            f"{name}（{limits.name.zh}）超出生理可能范围 {limits.text()}，可能是单位或录入错误",
            f"{name} is outside the plausible range {limits.text()} (a unit or typing error?)",
        ),
    )


def check_values(values: Mapping[str, float]) -> list[Implausible]:
    """Return every failed check of ``values`` (empty when all pass); see the module docstring.

    Each value is checked against its range; the pair rules apply to pairs of values that both
    passed (a pair with an impossible member is already reported).
    """
    problems: list[Implausible] = []
    passed: dict[str, tuple[str, float]] = {}
    for name, value in values.items():
        problem = check_value(name, value)
        if problem is not None:
            problems.append(problem)
        elif _is_number(value):
            passed[code_of(name)] = (name, float(value))
    for rule in PAIR_RULES:
        if rule.lower in passed and rule.upper in passed:
            (lower_name, lower), (upper_name, upper) = passed[rule.lower], passed[rule.upper]
            if not lower < upper:
                problems.append(Implausible(rule.rule, (upper_name, lower_name), rule.message))
    return problems


def require_plausible(values: Mapping[str, float]) -> None:
    """Raise :class:`ImplausibleError` listing every failed check of ``values``."""
    problems = check_values(values)
    if problems:
        raise ImplausibleError(problems)
