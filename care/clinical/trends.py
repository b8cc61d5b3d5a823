"""Indicator trends over the years (历年指标趋势分析): changes, slope, flag, category and a sentence.

For one indicator's series of ``(date, value)``: the change from the previous and from the first
value, the least-squares slope per year, the latest value's flag against its reference range
(a lab-printed range wins, spec section 7), its guideline category, and a line in zh and en::

    收缩压连续3年上升, 由128升至146 mmHg
    Systolic BP rose 3 years in a row, from 128 to 146 mmHg

Presentation rule ``TREND-1`` (Careloop's own, not a guideline): a change smaller than the
indicator's tolerance (about its usual measurement variation, :data:`TOLERANCES`) counts as no
change; "N years in a row" is said only when the run has one measurement per consecutive calendar
year, otherwise "N times in a row".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from care.clinical import codes
from care.clinical.common import ClinicalError, Label, display_round, format_number
from care.clinical.config import ClinicalConfig
from care.clinical.plausibility import ImplausibleError
from care.clinical.ranges import (
    INDICATOR_SCHEMES,
    Classification,
    Flag,
    ReferenceRange,
    band_pack,
    classify,
    reference_range,
)

TREND_RULES_VERSION = "TREND-1"

#: Changes within these (canonical units) count as "unchanged" (rule TREND-1).
TOLERANCES: dict[str, float] = {
    "sbp": 3.0,
    "dbp": 2.0,
    "height": 0.5,
    "weight": 0.5,
    "bmi": 0.2,
    "waist": 1.0,
    "fpg": 0.2,
    "hba1c": 0.1,
    "tc": 0.1,
    "ldl": 0.1,
    "hdl": 0.05,
    "tg": 0.1,
    "ua": 10.0,
    "alt": 3.0,
    "ast": 3.0,
    "cr": 5.0,
    "egfr": 2.0,
}

Direction = Literal["single", "rising", "falling", "stable", "fluctuating"]
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True, slots=True)
class Point:
    """One measurement."""

    when: date
    value: float


@dataclass(frozen=True)
class Trend:
    """The analysis of one indicator's series (see the module docstring)."""

    code: str
    name: Label
    unit: str
    decimals: int
    points: tuple[Point, ...]
    change_from_previous: float | None
    change_from_first: float | None
    slope_per_year: float | None
    direction: Direction
    #: steps in ``direction`` ending at the latest value (0 when the last step is within tolerance)
    run: int
    reference: ReferenceRange | None
    flag: Flag | None
    category: Classification | None
    text: Label
    rule_version: str = TREND_RULES_VERSION

    @property
    def latest(self) -> Point:
        """The most recent measurement."""
        return self.points[-1]

    @property
    def first(self) -> Point:
        """The earliest measurement."""
        return self.points[0]

    def point_flags(self) -> tuple[Flag | None, ...]:
        """Return each point's flag against the reference range (None without a range)."""
        if self.reference is None:
            return tuple(None for _ in self.points)
        return tuple(self.reference.flag(display_round(p.value, self.decimals)) for p in self.points)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready mapping (dates as ISO strings)."""
        return {
            "code": self.code,
            "unit": self.unit,
            "points": [{"date": p.when.isoformat(), "value": p.value} for p in self.points],
            "change_from_previous": self.change_from_previous,
            "change_from_first": self.change_from_first,
            "slope_per_year": self.slope_per_year,
            "direction": self.direction,
            "run": self.run,
            "reference": None if self.reference is None else self.reference.text(self.decimals),
            "reference_source": None if self.reference is None else self.reference.source,
            "flag": self.flag,
            "category": None if self.category is None else self.category.to_dict(),
            "text": self.text.to_dict(),
            "rule_version": self.rule_version,
        }


def slope_per_year(points: Sequence[Point]) -> float | None:
    """Return the least-squares slope of value on time in years, or None with fewer than 2 dates."""
    if len({p.when for p in points}) < 2:
        return None
    origin = points[0].when
    xs = [(p.when - origin).days / DAYS_PER_YEAR for p in points]
    ys = [p.value for p in points]
    mean_x = math.fsum(xs) / len(xs)
    mean_y = math.fsum(ys) / len(ys)
    sxx = math.fsum((x - mean_x) ** 2 for x in xs)
    sxy = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return sxy / sxx


def _sign(change: float, tolerance: float) -> int:
    if change > tolerance:
        return 1
    if change < -tolerance:
        return -1
    return 0


def _yearly(points: Sequence[Point]) -> bool:
    """True when the points fall in consecutive calendar years, one each."""
    years = [p.when.year for p in points]
    return all(later == earlier + 1 for earlier, later in zip(years, years[1:], strict=False))


@dataclass(frozen=True)
class _Shape:
    direction: Direction
    run: int
    start: float
    kind: Literal["run", "step", "overall", "flat", "mixed", "single"]
    yearly: bool


def _shape(points: Sequence[Point], tolerance: float, decimals: int) -> _Shape:
    values = [p.value for p in points]
    if len(values) == 1:
        return _Shape("single", 0, values[0], "single", False)

    def step(a: float, b: float) -> float:
        # Compare displayed values: 26.1 -> 25.9 is a change of exactly 0.2, not 0.2000000000000028.
        return display_round(display_round(b, decimals) - display_round(a, decimals), decimals)

    signs = [_sign(step(a, b), tolerance) for a, b in zip(values, values[1:], strict=False)]
    last = signs[-1]
    run = 0
    for sign in reversed(signs):
        if sign != last or sign == 0:
            break
        run += 1
    net = _sign(step(values[0], values[-1]), tolerance)
    if run >= 2 or (run == 1 and len(signs) == 1):
        direction: Direction = "rising" if last > 0 else "falling"
        start = len(values) - 1 - run
        kind: Literal["run", "step"] = "run" if run >= 2 else "step"
        return _Shape(direction, run, values[start], kind, _yearly(points[start:]))
    if net == 0 and all(sign == 0 for sign in signs):
        return _Shape("stable", 0, values[0], "flat", False)
    if net != 0 and all(sign in (0, net) for sign in signs):
        return _Shape("rising" if net > 0 else "falling", run, values[0], "overall", False)
    return _Shape("fluctuating", run, values[0], "mixed", False)


def _period(points: Sequence[Point]) -> tuple[str, str]:
    first, last = points[0].when.year, points[-1].when.year
    if first == last:
        return f"{first}年内", f"in {first}"
    return f"{first}–{last}年间", f"from {first} to {last}"


def describe(name: Label, unit: str, decimals: int, points: Sequence[Point], shape: _Shape) -> Label:
    """Return the trend sentence in zh and en (rule TREND-1)."""
    zh_name, en_name = name.zh, name.en
    values = [p.value for p in points]

    def num(value: float) -> str:
        return format_number(value, decimals)

    latest, start = num(values[-1]), num(shape.start)
    low, high = num(min(values)), num(max(values))
    zh_period, en_period = _period(points)
    up = shape.direction == "rising"
    zh_verb, en_verb = ("上升", "rose") if up else ("下降", "fell")
    zh_move = "升至" if up else "降至"
    if shape.kind == "single":
        return Label(f"{zh_name}仅有一次记录: {latest} {unit}", f"{en_name}: one measurement so far, {latest} {unit}")
    if shape.kind == "run":
        zh_unit, en_unit = ("年", "years") if shape.yearly else ("次", "times")
        return Label(
            f"{zh_name}连续{shape.run}{zh_unit}{zh_verb}, 由{start}{zh_move}{latest} {unit}",
            f"{en_name} {en_verb} {shape.run} {en_unit} in a row, from {start} to {latest} {unit}",
        )
    if shape.kind == "step":
        return Label(
            f"{zh_name}较上次{zh_verb}, 由{start}{zh_move}{latest} {unit}",
            f"{en_name} {en_verb} since the last check, from {start} to {latest} {unit}",
        )
    if shape.kind == "overall":
        return Label(
            f"{zh_name}{zh_period}总体{zh_verb}, 由{start}{zh_move}{latest} {unit}",
            f"{en_name} {en_verb} overall {en_period}, from {start} to {latest} {unit}",
        )
    if shape.kind == "flat":
        if len(values) == 2:
            return Label(
                f"{zh_name}与上次基本持平, 由{start}到{latest} {unit}",
                f"{en_name} is about the same as last time, from {start} to {latest} {unit}",
            )
        return Label(
            f"{zh_name}{zh_period}保持稳定, 在{low}~{high} {unit}之间",
            f"{en_name} stayed stable {en_period}, between {low} and {high} {unit}",
        )
    return Label(
        f"{zh_name}{zh_period}有波动, 在{low}~{high} {unit}之间, 最近一次为{latest} {unit}",
        f"{en_name} went up and down {en_period}, between {low} and {high} {unit}; latest {latest} {unit}",
    )


def _points(series: Iterable[tuple[date, float]]) -> tuple[Point, ...]:
    points = []
    for when, value in series:
        if not isinstance(when, date):
            raise ClinicalError(f"trend points need a date, got {type(when).__name__}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ClinicalError("trend values must be finite numbers")
        points.append(Point(when, float(value)))
    if not points:
        raise ClinicalError("a trend needs at least one value")
    return tuple(sorted(points, key=lambda p: p.when))


def analyse(
    code: str,
    series: Iterable[tuple[date, float]],
    *,
    sex: str | None = None,
    age: float | None = None,
    lab_range: tuple[float | None, float | None] | None = None,
    config: ClinicalConfig | None = None,
) -> Trend:
    """Analyse one indicator's series (values in the canonical unit; any order; at least one).

    ``lab_range`` is the range printed on the latest report, ``(low, high)``; it wins over the
    fallbacks. ``sex`` and ``age`` select sex- and age-specific ranges and categories; without them a
    sex-specific range or category is left out, never guessed.
    """
    indicator = codes.indicator(code)
    points = _points(series)
    low, high = lab_range if lab_range is not None else (None, None)
    reference = reference_range(
        indicator.code, indicator.unit, sex=sex, age=age, lab_low=low, lab_high=high, config=config
    )
    latest = points[-1].value
    shown = display_round(latest, indicator.decimals)
    category = None
    if sex is not None or not _needs_sex(indicator.code, config):
        try:
            category = classify(indicator.code, latest, sex=sex, config=config)
        except ImplausibleError:
            category = None  # an impossible stored value gets no category (clinical-spec.md 10a)
    shape = _shape(points, TOLERANCES[indicator.code], indicator.decimals)
    return Trend(
        code=indicator.code,
        name=indicator.name,
        unit=indicator.unit,
        decimals=indicator.decimals,
        points=points,
        change_from_previous=latest - points[-2].value if len(points) > 1 else None,
        change_from_first=latest - points[0].value if len(points) > 1 else None,
        slope_per_year=slope_per_year(points),
        direction=shape.direction,
        run=shape.run,
        reference=reference,
        flag=None if reference is None else reference.flag(shown),
        category=category,
        text=describe(indicator.name, indicator.unit, indicator.decimals, points, shape),
    )


def _needs_sex(code: str, config: ClinicalConfig | None) -> bool:
    scheme = INDICATOR_SCHEMES.get(code)
    if scheme is None or scheme == "bp":
        return False
    return band_pack(scheme, config).needs_sex


def analyse_all(
    series_by_code: Mapping[str, Sequence[tuple[date, float]]],
    *,
    sex: str | None = None,
    age: float | None = None,
    config: ClinicalConfig | None = None,
) -> list[Trend]:
    """Analyse every non-empty series, in the catalogue's order."""
    return [
        analyse(code, series_by_code[code], sex=sex, age=age, config=config)
        for code in codes.INDICATORS
        if series_by_code.get(code)
    ]
