"""An enrolment's progress: each goal from the observations (baseline -> latest against the target), and the
check-in answer rate and education messages sent from its follow-up rows.

Rule ``INTERVENTION-1`` (Careloop's own, after the stage summary's ``SUMMARY-1``):

* the **baseline** of a goal's indicator is its last value on or before the start day, else the
  first one in the goal's window (the start day to ``within_days`` after it, or to today/the end
  when that comes first); the **latest** is the last value in the window (it may be the baseline);
* a goal with a ``change_percent`` targets ``baseline × (1 + change/100)`` (≤ it for a loss, ≥ for a
  gain); without a baseline it has no target yet;
* a goal is **met** when the latest value, at the indicator's displayed precision, meets the target;
  its **figure** is 100 % when met, else how far the latest value has come from the baseline towards
  the target (0-100 %; 0 when it moved away, or when the baseline already met the target but the
  latest does not);
* the enrolment's figure is the mean of its goals' figures (those with data);
* **answer rate** = check-ins answered (completed) / check-ins sent (invited, in progress, completed
  or unanswered), as the stage summary counts follow-ups.

Values are the indicator series of :mod:`care.indicators` (canonical units, one a day by the
patient's own calendar).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from care.clinical import codes
from care.clinical.common import Label, format_number
from care.clinical.summary import Comparator, Goal
from care.indicators import indicator_series, zone_of
from care.interventions.definition import GoalSpec, ProgramDefinition
from care.models import FollowUp, FollowUpStatus, InterventionEnrolment, Patient

RULES_VERSION = "INTERVENTION-1"
GoalState = Literal["met", "not_met", "no_data"]
#: The check-in statuses that count as sent, and as answered (as :mod:`care.stage_summaries` counts them).
SENT = frozenset({FollowUpStatus.INVITED.value, FollowUpStatus.IN_PROGRESS.value, FollowUpStatus.COMPLETED.value,
                  FollowUpStatus.UNANSWERED.value})
ANSWERED = frozenset({FollowUpStatus.COMPLETED.value})


@dataclass(frozen=True)
class Reading:
    when: date
    value: float


@dataclass(frozen=True)
class GoalProgress:
    """One goal of an enrolment: its baseline and latest values, its target, whether it is met, its figure."""

    goal: GoalSpec
    baseline: Reading | None
    latest: Reading | None
    comparator: Comparator | None
    target: float | None
    target_high: float | None
    state: GoalState
    percent: float | None

    def as_goal(self) -> Goal | None:
        """The stage summary's goal (a change goal with its target from the baseline; None without one)."""
        if self.comparator is None or self.target is None:
            return None
        return Goal(self.goal.id, self.goal.indicator, self.comparator, self.target, self.target_high)

    def text(self) -> Label:
        """One line: the goal, baseline -> latest, and where it stands."""
        indicator = codes.indicator(self.goal.indicator)
        zh_goal, en_goal = self.goal.describe()

        def num(reading: Reading | None) -> str:
            return format_number(reading.value, indicator.decimals) if reading is not None else "—"

        if self.state == "no_data":
            return Label(f"目标 {zh_goal}: 暂无数据", f"Goal {en_goal}: no data yet")
        values = f"{num(self.baseline)} → {num(self.latest)} {indicator.unit}"
        if self.goal.change_percent is not None and self.target is not None:
            target = format_number(self.target, indicator.decimals)
            zh_target, en_target = f"，目标值 {target}", f", target {target}"
        else:
            zh_target = en_target = ""
        shown = format_number(self.percent or 0.0, 0)
        if self.state == "met":
            return Label(f"目标 {zh_goal}: 已达成（{values}{zh_target}）",
                         f"Goal {en_goal}: met ({values}{en_target})")
        return Label(f"目标 {zh_goal}: 尚未达成（{values}{zh_target}，完成 {shown}%）",
                     f"Goal {en_goal}: not yet met ({values}{en_target}, {shown}% of the way)")


@dataclass(frozen=True)
class Progress:
    """An enrolment's figures (see the module docstring)."""

    goals: tuple[GoalProgress, ...]
    percent: float | None
    check_ins_sent: int
    check_ins_answered: int
    answer_rate: float | None
    messages_sent: int
    messages_planned: int
    day: int

    @property
    def goals_met(self) -> int:
        return sum(goal.state == "met" for goal in self.goals)

    def lines(self, language: str | None) -> list[str]:
        """The figures in words, in ``language`` (zh unless ``en``)."""
        english = language == "en"
        lines = [goal.text().en if english else goal.text().zh for goal in self.goals]
        rate = format_number((self.answer_rate or 0.0) * 100, 0)
        if english:
            lines.append(f"Check-ins: {self.check_ins_answered} of {self.check_ins_sent} answered"
                         + (f" ({rate}%)" if self.answer_rate is not None else ""))
            lines.append(f"Education messages: {self.messages_sent} of {self.messages_planned} sent")
        else:
            lines.append(f"打卡: 发出{self.check_ins_sent}次，回复{self.check_ins_answered}次"
                         + (f"（回复率{rate}%）" if self.answer_rate is not None else ""))
            lines.append(f"健康小贴士: 已发送{self.messages_sent}条，共{self.messages_planned}条")
        return lines


def _met(comparator: Comparator, target: float, high: float | None, value: float) -> bool:
    if comparator == "between":
        return target <= value <= (high if high is not None else target)
    return {"<": value < target, "<=": value <= target, ">": value > target, ">=": value >= target}[comparator]


def _percent(comparator: Comparator, target: float, high: float | None, baseline: float, latest: float) -> float:
    if comparator == "between":
        assert high is not None  # noqa: S101 - a between goal always has its high end
        if baseline < target:
            return _percent(">=", target, None, baseline, latest)
        return _percent("<=", high, None, baseline, latest)
    gap = baseline - target if comparator in ("<", "<=") else target - baseline
    if gap <= 0:
        return 0.0
    moved = baseline - latest if comparator in ("<", "<=") else latest - baseline
    return max(0.0, min(100.0, moved / gap * 100))


def goal_progress(goal: GoalSpec, series: Sequence[tuple[date, float]], start: date, until: date) -> GoalProgress:
    """One goal's progress over ``series`` (the indicator's values, oldest first) from ``start`` to ``until``."""
    window_end = min(until, start + timedelta(days=goal.within_days))
    before = [Reading(day, value) for day, value in series if day <= start]
    inside = [Reading(day, value) for day, value in series if start <= day <= window_end]
    baseline = before[-1] if before else (inside[0] if inside else None)
    latest = inside[-1] if inside else None
    comparator, target, high = goal.comparator, goal.target, goal.target_high
    if goal.change_percent is not None:
        comparator = "<=" if goal.change_percent < 0 else ">="
        target = baseline.value * (1 + goal.change_percent / 100) if baseline is not None else None
    if latest is None or baseline is None or comparator is None or target is None:
        return GoalProgress(goal, baseline, latest, comparator, target, high, "no_data", None)
    decimals = codes.indicator(goal.indicator).decimals
    shown = float(format_number(latest.value, decimals))
    if _met(comparator, target, high, shown):
        return GoalProgress(goal, baseline, latest, comparator, target, high, "met", 100.0)
    return GoalProgress(goal, baseline, latest, comparator, target, high, "not_met",
                        _percent(comparator, target, high, baseline.value, latest.value))


def local_day(patient: Patient, moment: datetime) -> date:
    return moment.astimezone(zone_of(patient)).date()


def compute_progress(session: Session, patient: Patient, enrolment: InterventionEnrolment,
                     definition: ProgramDefinition, now: datetime,
                     series: Mapping[str, Sequence[tuple[date, float]]] | None = None) -> Progress:
    """The enrolment's progress now (up to its end when it has ended)."""
    start = local_day(patient, enrolment.started_at)
    until = local_day(patient, min(now, enrolment.ended_at or now, enrolment.ends_at))
    found = indicator_series(session, patient) if series is None else series
    goals = tuple(goal_progress(goal, found.get(goal.indicator, ()), start, until) for goal in definition.goals)
    figures = [goal.percent for goal in goals if goal.percent is not None]
    check_ins: dict[str, int] = {}
    messages = 0
    if enrolment.plan_enrolment_id is not None:
        rows = session.execute(
            select(FollowUp.status, FollowUp.content_key.is_not(None), func.count())
            .where(FollowUp.enrolment_id == enrolment.plan_enrolment_id)
            .group_by(FollowUp.status, FollowUp.content_key.is_not(None))).all()
        for status, is_message, count in rows:
            if is_message:
                messages += int(count) if status == FollowUpStatus.COMPLETED.value else 0
            else:
                check_ins[status] = check_ins.get(status, 0) + int(count)
    sent = sum(count for status, count in check_ins.items() if status in SENT)
    answered = sum(count for status, count in check_ins.items() if status in ANSWERED)
    return Progress(goals=goals, percent=sum(figures) / len(figures) if figures else None, check_ins_sent=sent,
                    check_ins_answered=answered, answer_rate=answered / sent if sent else None,
                    messages_sent=messages, messages_planned=len(definition.education),
                    day=(until - start).days)
