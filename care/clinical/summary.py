"""Stage summary (健康阶段总结) of one period, computed from plain inputs.

What changed between the start and the end of the period for each indicator, which goals were met,
the risks then and now, follow-up adherence (answered / sent) and the interventions done. The result
is a plain structure (:meth:`StageSummary.to_dict`) that the database layer saves, signs (who,
when) and versions together with the clinician's editable conclusion.

Rule ``SUMMARY-1`` (Careloop's own): the value at the start of the period is the last measurement on
or before the start date, else the first one inside the period; the value at the end is the last
measurement on or before the end date, if it lies after the start value. A change within the
indicator's trend tolerance (:data:`care.clinical.trends.TOLERANCES`) counts as unchanged. Risks
are compared by how far their category is from the most desirable one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from care.clinical import codes
from care.clinical.common import ClinicalError, Label, format_number
from care.clinical.config import ClinicalConfig
from care.clinical.ranges import Classification, classify
from care.clinical.risk import MODEL_ORDER, RiskResult, get_model
from care.clinical.trends import TOLERANCES, Point

SUMMARY_RULES_VERSION = "SUMMARY-1"

Comparator = Literal["<", "<=", ">", ">=", "between"]
Movement = Literal["up", "down", "unchanged", "single", "no_data"]
GoalStatus = Literal["met", "not_met", "no_data"]
RiskMovement = Literal["improved", "worsened", "unchanged", "not_reassessed", "new", "no_data"]
InterventionStatus = Literal["planned", "in_progress", "done", "cancelled"]

_COMPARATOR_TEXT: dict[str, tuple[str, str]] = {"<": ("<", "<"), "<=": ("≤", "≤"), ">": (">", ">"), ">=": ("≥", "≥")}


@dataclass(frozen=True)
class Goal:
    """A target for one indicator, e.g. ``Goal("g1", "sbp", "<", 140)`` or ``between`` 18.5 and 23.9."""

    id: str
    code: str
    comparator: Comparator
    target: float
    target_high: float | None = None

    def __post_init__(self) -> None:
        codes.indicator(self.code)
        if self.comparator not in ("<", "<=", ">", ">=", "between"):
            raise ClinicalError(f"goal {self.id}: unknown comparator {self.comparator!r}")
        if (self.comparator == "between") != (self.target_high is not None):
            raise ClinicalError(f"goal {self.id}: 'between' needs target_high, other comparators do not")
        if self.target_high is not None and self.target_high < self.target:
            raise ClinicalError(f"goal {self.id}: target_high is below target")

    def met(self, value: float) -> bool:
        """Return True when ``value`` (displayed precision) meets the goal."""
        if self.comparator == "between":
            assert self.target_high is not None  # noqa: S101 - checked in __post_init__
            return self.target <= value <= self.target_high
        return {
            "<": value < self.target,
            "<=": value <= self.target,
            ">": value > self.target,
            ">=": value >= self.target,
        }[self.comparator]

    def describe(self) -> Label:
        """Return the goal as text, e.g. ``收缩压 < 140 mmHg``."""
        indicator = codes.indicator(self.code)
        places = indicator.decimals

        def num(value: float) -> str:
            return format_number(value, places)

        if self.comparator == "between":
            assert self.target_high is not None  # noqa: S101 - checked in __post_init__
            span = f"{num(self.target)}~{num(self.target_high)} {indicator.unit}"
            return Label(f"{indicator.name.zh} {span}", f"{indicator.name.en} {span}")
        symbol_zh, symbol_en = _COMPARATOR_TEXT[self.comparator]
        return Label(
            f"{indicator.name.zh} {symbol_zh} {num(self.target)} {indicator.unit}",
            f"{indicator.name.en} {symbol_en} {num(self.target)} {indicator.unit}",
        )


@dataclass(frozen=True)
class Intervention:
    """An intervention of the period (diet guidance, exercise prescription, a class...)."""

    title: Label
    status: InterventionStatus
    completed_on: date | None = None


@dataclass(frozen=True)
class StageSummaryInput:
    """Everything a stage summary is computed from; values in canonical units."""

    period_start: date
    period_end: date
    series: Mapping[str, Sequence[tuple[date, float]]] = field(default_factory=dict)
    goals: Sequence[Goal] = ()
    risks: Sequence[tuple[date, RiskResult]] = ()
    followups_sent: int = 0
    followups_answered: int = 0
    interventions: Sequence[Intervention] = ()
    sex: str | None = None
    age: float | None = None
    config: ClinicalConfig | None = None


@dataclass(frozen=True)
class IndicatorChange:
    """One indicator between the start and the end of the period."""

    code: str
    name: Label
    unit: str
    start: Point | None
    end: Point | None
    change: float | None
    movement: Movement
    category_start: Classification | None
    category_end: Classification | None
    text: Label


@dataclass(frozen=True)
class GoalOutcome:
    """Whether a goal was met by the latest value of the period."""

    goal: Goal
    value: Point | None
    status: GoalStatus
    text: Label


@dataclass(frozen=True)
class RiskChange:
    """A model's result at the start of the period and now."""

    model: str
    title: Label
    then: tuple[date, RiskResult] | None
    now: tuple[date, RiskResult] | None
    movement: RiskMovement
    text: Label


@dataclass(frozen=True)
class Adherence:
    """Follow-up adherence: answered / sent."""

    sent: int
    answered: int
    rate: float | None
    text: Label


@dataclass(frozen=True)
class StageSummary:
    """The computed stage summary (see the module docstring)."""

    period_start: date
    period_end: date
    indicators: tuple[IndicatorChange, ...]
    goals: tuple[GoalOutcome, ...]
    risks: tuple[RiskChange, ...]
    adherence: Adherence
    interventions_done: tuple[Intervention, ...]
    lines: tuple[Label, ...]
    rule_packs: Mapping[str, str]
    version: str = SUMMARY_RULES_VERSION

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready mapping for storage (dates as ISO strings)."""

        def point(value: Point | None) -> dict[str, object] | None:
            return None if value is None else {"date": value.when.isoformat(), "value": value.value}

        def category(value: Classification | None) -> str | None:
            return None if value is None else value.key

        def risk(entry: tuple[date, RiskResult] | None) -> dict[str, object] | None:
            if entry is None:
                return None
            when, result = entry
            return {"date": when.isoformat(), **result.to_dict()}

        return {
            "version": self.version,
            "period": {"start": self.period_start.isoformat(), "end": self.period_end.isoformat()},
            "indicators": [
                {
                    "code": item.code,
                    "start": point(item.start),
                    "end": point(item.end),
                    "change": item.change,
                    "movement": item.movement,
                    "category_start": category(item.category_start),
                    "category_end": category(item.category_end),
                    "text": item.text.to_dict(),
                }
                for item in self.indicators
            ],
            "goals": [
                {
                    "id": outcome.goal.id,
                    "goal": outcome.goal.describe().to_dict(),
                    "value": point(outcome.value),
                    "status": outcome.status,
                    "text": outcome.text.to_dict(),
                }
                for outcome in self.goals
            ],
            "risks": [
                {
                    "model": change.model,
                    "then": risk(change.then),
                    "now": risk(change.now),
                    "movement": change.movement,
                    "text": change.text.to_dict(),
                }
                for change in self.risks
            ],
            "adherence": {
                "sent": self.adherence.sent,
                "answered": self.adherence.answered,
                "rate": self.adherence.rate,
                "text": self.adherence.text.to_dict(),
            },
            "interventions_done": [
                {
                    "title": item.title.to_dict(),
                    "completed_on": None if item.completed_on is None else item.completed_on.isoformat(),
                }
                for item in self.interventions_done
            ],
            "lines": [line.to_dict() for line in self.lines],
            "rule_packs": dict(self.rule_packs),
        }


# --- the parts -----------------------------------------------------------------------------------


def _sorted_points(series: Sequence[tuple[date, float]]) -> list[Point]:
    points = []
    for when, value in series:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ClinicalError("series values must be finite numbers")
        points.append(Point(when, float(value)))
    return sorted(points, key=lambda p: p.when)


def _endpoints(points: Sequence[Point], start: date, end: date) -> tuple[Point | None, Point | None]:
    before = [p for p in points if p.when <= start]
    inside = [p for p in points if start < p.when <= end]
    first = before[-1] if before else (inside[0] if inside else None)
    last = inside[-1] if inside else None
    if last is first:
        last = None
    return first, last


def indicator_change(code: str, points: Sequence[Point], inp: StageSummaryInput) -> IndicatorChange:
    """Return the change of one indicator over the period (rule SUMMARY-1)."""
    indicator = codes.indicator(code)
    first, last = _endpoints(points, inp.period_start, inp.period_end)

    def category(point: Point | None) -> Classification | None:
        if point is None:
            return None
        try:
            return classify(indicator.code, point.value, sex=inp.sex, config=inp.config)
        except ClinicalError:  # a sex-specific category without the sex: leave it out
            return None

    def num(value: float) -> str:
        return format_number(value, indicator.decimals)

    name, unit = indicator.name, indicator.unit
    start_category, end_category = category(first), category(last)
    if first is None:
        text = Label(f"{name.zh}: 本阶段无记录", f"{name.en}: no measurement in this period")
        return IndicatorChange(code, name, unit, None, None, None, "no_data", None, None, text)
    if last is None:
        only = f"{num(first.value)} {unit}"
        text = Label(f"{name.zh}: {only} (本阶段无新记录)", f"{name.en}: {only} (no new measurement)")
        return IndicatorChange(code, name, unit, first, None, None, "single", start_category, None, text)
    change = last.value - first.value
    tolerance = TOLERANCES[indicator.code]
    movement: Movement = "unchanged" if abs(change) <= tolerance else ("up" if change > 0 else "down")
    arrow = f"{num(first.value)} → {num(last.value)} {unit}"
    zh, en = f"{name.zh}: {arrow}", f"{name.en}: {arrow}"
    if start_category is not None and end_category is not None:
        zh += f" ({start_category.label.zh} → {end_category.label.zh})"
        en += f" ({start_category.label.en} → {end_category.label.en})"
    return IndicatorChange(
        code, name, unit, first, last, change, movement, start_category, end_category, Label(zh, en)
    )


def goal_outcome(goal: Goal, points: Sequence[Point], inp: StageSummaryInput) -> GoalOutcome:
    """Return whether the latest value of the period meets ``goal``."""
    indicator = codes.indicator(goal.code)
    inside = [p for p in points if inp.period_start <= p.when <= inp.period_end]
    described = goal.describe()
    if not inside:
        return GoalOutcome(
            goal, None, "no_data", Label(f"目标 {described.zh}: 暂无数据", f"Goal {described.en}: no data yet")
        )
    latest = inside[-1]
    shown = format_number(latest.value, indicator.decimals)
    if goal.met(float(shown)):
        return GoalOutcome(
            goal, latest, "met", Label(f"目标 {described.zh}: 已达成({shown})", f"Goal {described.en}: met ({shown})")
        )
    return GoalOutcome(
        goal,
        latest,
        "not_met",
        Label(f"目标 {described.zh}: 尚未达成({shown})", f"Goal {described.en}: not yet met ({shown})"),
    )


def _risk_text(result: RiskResult) -> tuple[str, str]:
    label = result.category_label
    if result.value is None:
        return label.zh, label.en
    if result.unit == "points":
        return f"{result.value}分 {label.zh}", f"{result.value} points {label.en}"
    gap = "" if result.unit == "%" else " "
    return f"{result.value}{gap}{result.unit} {label.zh}", f"{result.value}{gap}{result.unit} {label.en}"


def risk_change(model: str, entries: Sequence[tuple[date, RiskResult]], inp: StageSummaryInput) -> RiskChange:
    """Compare a model's result at the start of the period with its latest result (rule SUMMARY-1)."""
    spec = get_model(model)
    complete = sorted((entry for entry in entries if entry[1].value is not None), key=lambda entry: entry[0])
    before = [entry for entry in complete if entry[0] <= inp.period_start]
    inside = [entry for entry in complete if inp.period_start < entry[0] <= inp.period_end]
    then = before[-1] if before else (inside[0] if inside else None)
    now = inside[-1] if inside else None
    if now is then:
        now = None
    title = spec.title
    if then is None:
        text = Label(f"{title.zh}: 暂无评估", f"{title.en}: not assessed yet")
        return RiskChange(model, title, None, None, "no_data", text)
    then_zh, then_en = _risk_text(then[1])
    if now is None:
        if before:
            text = Label(f"{title.zh}: {then_zh} (本阶段未复评)", f"{title.en}: {then_en} (not reassessed)")
            return RiskChange(model, title, then, None, "not_reassessed", text)
        text = Label(f"{title.zh}: {then_zh} (本阶段首次评估)", f"{title.en}: {then_en} (first assessed this period)")
        return RiskChange(model, title, then, None, "new", text)
    now_zh, now_en = _risk_text(now[1])
    before_rank = spec.severity(then[1].category, inp.config)
    after_rank = spec.severity(now[1].category, inp.config)
    movement: RiskMovement = "unchanged"
    if before_rank is not None and after_rank is not None and before_rank != after_rank:
        movement = "improved" if after_rank < before_rank else "worsened"
    words = {"improved": ("好转", "improved"), "worsened": ("加重", "worsened"), "unchanged": ("持平", "unchanged")}
    zh_word, en_word = words[movement]
    text = Label(f"{title.zh}: {then_zh} → {now_zh} ({zh_word})", f"{title.en}: {then_en} → {now_en} ({en_word})")
    return RiskChange(model, title, then, now, movement, text)


def adherence(sent: int, answered: int) -> Adherence:
    """Return follow-up adherence; raise :class:`ClinicalError` for impossible counts."""
    for name, count in (("sent", sent), ("answered", answered)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ClinicalError(f"follow-ups {name} must be a whole number >= 0")
    if answered > sent:
        raise ClinicalError("more follow-ups answered than sent")
    if sent == 0:
        return Adherence(0, 0, None, Label("本阶段无随访", "No follow-ups in this period"))
    rate = answered / sent
    percent = format_number(rate * 100, 0)
    return Adherence(
        sent,
        answered,
        rate,
        Label(
            f"随访{sent}次，回复{answered}次(依从率{percent}%)",
            f"{sent} follow-ups sent, {answered} answered ({percent}% adherence)",
        ),
    )


def compute_stage_summary(inp: StageSummaryInput) -> StageSummary:
    """Compute the stage summary of ``inp``'s period (see the module docstring)."""
    if inp.period_end < inp.period_start:
        raise ClinicalError("the period ends before it starts")
    points = {codes.indicator(code).code: _sorted_points(series) for code, series in inp.series.items()}
    indicators = tuple(
        indicator_change(code, points[code], inp) for code in codes.INDICATORS if points.get(code)
    )
    goals = tuple(goal_outcome(goal, points.get(codes.indicator(goal.code).code, []), inp) for goal in inp.goals)
    by_model: dict[str, list[tuple[date, RiskResult]]] = {}
    for when, result in inp.risks:
        by_model.setdefault(result.model, []).append((when, result))
    order = {name: index for index, name in enumerate(MODEL_ORDER)}
    ordered = sorted(by_model.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
    risks = tuple(risk_change(model, entries, inp) for model, entries in ordered)
    follow = adherence(inp.followups_sent, inp.followups_answered)
    done = tuple(item for item in inp.interventions if item.status == "done")
    period = f"{inp.period_start.isoformat()} – {inp.period_end.isoformat()}"
    lines: list[Label] = [Label(f"阶段: {period}", f"Period: {period}"), follow.text]
    lines.extend(item.text for item in indicators if item.movement not in ("no_data",))
    lines.extend(outcome.text for outcome in goals)
    lines.extend(change.text for change in risks)
    if done:
        lines.append(
            Label(
                "完成干预: " + "、".join(item.title.zh for item in done),
                "Interventions completed: " + ", ".join(item.title.en for item in done),
            )
        )
    packs: dict[str, str] = {"summary": SUMMARY_RULES_VERSION}
    for item in indicators:
        for found in (item.category_start, item.category_end):
            if found is not None:
                packs[item.code] = found.rule_pack
    for change in risks:
        for entry in (change.then, change.now):
            if entry is not None:
                packs[change.model] = entry[1].rule_pack
    return StageSummary(
        period_start=inp.period_start,
        period_end=inp.period_end,
        indicators=indicators,
        goals=goals,
        risks=risks,
        adherence=follow,
        interventions_done=done,
        lines=tuple(lines),
        rule_packs=packs,
    )

