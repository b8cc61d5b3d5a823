"""An intervention program's definition (健康干预方案): read from YAML, checked, each problem naming its line and field.

::

    id: hypertension_3m
    version: 1
    title: {zh: 高血压3个月管理, en: 3-month hypertension management}
    duration_days: 90                       # the enrolment ends by itself this many days after its start
    start_on_tag: 高血压                     # optional: a patient is enrolled (once) when the tag is set
    goals:
      - id: sbp_below_130
        indicator: sbp                      # an indicator of the catalogue (clinical-spec.md section 8)
        target: {below: 130}                # below, at_most, above, at_least, or between: [low, high]
        within_days: 90                     # optional (default: the duration)
      - id: weight_down_5
        indicator: weight
        change_percent: -5                  # against the baseline (the last value on or before the start)
    check_ins:                              # a flow of the library, every N days/weeks/months
      - flow: home_monitoring
        every: {days: 14}
        at: "09:30"
        channels: [wechat, sms, voice]      # as a plan's step: channels, retry, on_silence, start_mode
    education:                              # messages of the content library (care/interventions/content.yaml)
      - {day: 1, message: diet_salt, at: "10:00"}
    education_channels: [wechat, sms]       # optional; text channels only

The program is carried out by a follow-up plan made from it (:func:`plan_document`, plan id
``iv_<program id>``): its check-ins are the plan's flow steps and its education messages the plan's
message steps, so they go out through the follow-up worker (consent, quiet hours, caps, silence).
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from care.clinical import codes
from care.clinical.summary import Comparator
from care.plans.definition import (
    DEFAULT_MESSAGE_CHANNELS,
    PROGRAM_PLAN_PREFIX,
    TEXT_CHANNELS,
    PlanChecker,
    PlanDefinition,
    PlanInvalidError,
    PlanProblem,
    Step,
    YamlLines,
    check_plan,
)

_ID = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
_GOAL_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: The plan that carries out program ``<id>`` is ``iv_<id>``.
PLAN_PREFIX = PROGRAM_PLAN_PREFIX
MAX_DAYS = 3650
#: A target's words -> the stage summary's comparator.
TARGETS: Mapping[str, Comparator] = {"below": "<", "at_most": "<=", "above": ">", "at_least": ">=",
                                     "between": "between"}
_SYMBOLS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}
_TOP_KEYS = ("id", "version", "title", "description", "duration_days", "start_on_tag", "goals", "check_ins",
             "education", "education_channels")


class ProgramInvalidError(PlanInvalidError):
    """A program that cannot be used; :attr:`problems` says why, each with its line and field."""


@dataclass(frozen=True)
class GoalSpec:
    """A goal of the program: an indicator against a fixed target, or a change from the patient's baseline.

    Exactly one of ``comparator`` (with ``target``, and ``target_high`` for ``between``) and
    ``change_percent`` is set.
    """

    id: str
    indicator: str
    within_days: int
    comparator: Comparator | None = None
    target: float | None = None
    target_high: float | None = None
    change_percent: float | None = None

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"id": self.id, "indicator": self.indicator, "within_days": self.within_days}
        if self.change_percent is not None:
            shown["change_percent"] = self.change_percent
        else:
            word = next(word for word, comparator in TARGETS.items() if comparator == self.comparator)
            shown["target"] = {word: [self.target, self.target_high] if word == "between" else self.target}
        return shown

    def describe(self) -> tuple[str, str]:
        """The goal in words (zh, en), e.g. ``收缩压 < 130 mmHg（90天内）``."""
        indicator = codes.indicator(self.indicator)
        if self.change_percent is not None:
            sign = "+" if self.change_percent > 0 else ""
            zh = f"{indicator.name.zh}较基线变化 {sign}{self.change_percent:g}%"
            en = f"{indicator.name.en} {sign}{self.change_percent:g}% from the baseline"
        elif self.comparator == "between":
            zh = f"{indicator.name.zh} {self.target:g}~{self.target_high:g} {indicator.unit}"
            en = f"{indicator.name.en} {self.target:g}-{self.target_high:g} {indicator.unit}"
        else:
            symbol = _SYMBOLS[str(self.comparator)]
            zh = f"{indicator.name.zh} {symbol} {self.target:g} {indicator.unit}"
            en = f"{indicator.name.en} {symbol} {self.target:g} {indicator.unit}"
        return f"{zh}（{self.within_days}天内）", f"{en} (within {self.within_days} days)"


@dataclass(frozen=True)
class EducationItem:
    """One education message of the schedule: which, on which day after the start, at what local time."""

    day: int
    message: str
    at: str | None = None


@dataclass(frozen=True)
class ProgramDefinition:
    id: str
    version: int
    title_zh: str
    title_en: str
    duration_days: int
    goals: tuple[GoalSpec, ...]
    check_ins: tuple[Step, ...]
    education: tuple[EducationItem, ...]
    education_channels: tuple[str, ...] = DEFAULT_MESSAGE_CHANNELS
    start_on_tag: str | None = None
    description_zh: str = ""
    description_en: str = ""

    @property
    def plan_key(self) -> str:
        """The id of the follow-up plan that carries the program out."""
        return PLAN_PREFIX + self.id

    def title(self, language: str | None) -> str:
        return self.title_en if language == "en" else self.title_zh

    def as_dict(self) -> dict[str, Any]:
        """The checked definition as stored (``intervention_program_versions.definition``); :func:`from_dict`
        reads it back."""
        shown: dict[str, Any] = {
            "id": self.id, "version": self.version, "title": {"zh": self.title_zh, "en": self.title_en},
            "duration_days": self.duration_days, "goals": [goal.as_dict() for goal in self.goals],
            "check_ins": [_check_in_dict(step) for step in self.check_ins],
            "education": [{"day": item.day, "message": item.message, **({"at": item.at} if item.at else {})}
                          for item in self.education],
            "education_channels": list(self.education_channels)}
        if self.description_zh:
            shown["description"] = {"zh": self.description_zh, "en": self.description_en}
        if self.start_on_tag:
            shown["start_on_tag"] = self.start_on_tag
        return shown


def _check_in_dict(step: Step) -> dict[str, Any]:
    shown = step.as_dict()
    when = shown.pop("when")
    shown["every"] = when["every"]
    if "at" in when:
        shown["at"] = when["at"]
    return shown


def plan_document(definition: ProgramDefinition) -> dict[str, Any]:
    """The follow-up plan that carries the program out (as a plan file reads; ``care.plans.parse_plan`` takes it).

    Its version is the program's; check-ins are recurring flow steps from the start, education
    messages one-off message steps ``day`` days after it.
    """
    steps: list[dict[str, Any]] = []
    for step in definition.check_ins:
        shown = step.as_dict()
        steps.append(shown)
    for item in definition.education:
        when: dict[str, Any] = {"offset": {"days": item.day}} if item.day else {}
        if item.at:
            when["at"] = item.at
        steps.append({"message": item.message, "when": when, "channels": list(definition.education_channels)})
    return {"id": definition.plan_key, "version": definition.version,
            "title": {"zh": definition.title_zh, "en": definition.title_en}, "steps": steps}


def plan_text(definition: ProgramDefinition) -> str:
    """:func:`plan_document` as YAML (what the plan's version keeps as its source)."""
    header = f"# Made from the intervention program {definition.id!r} v{definition.version}; edit the program.\n"
    return header + yaml.safe_dump(plan_document(definition), allow_unicode=True, sort_keys=False)


class _ProgramChecker(PlanChecker):
    def bad(self, path: tuple[Any, ...], reason: str) -> None:
        # A check-in is checked as a plan step, whose timing sits under ``when``; the program's file
        # has ``every`` and ``at`` on the check-in itself, and the problem names them there.
        if len(path) > 2 and path[0] == "check_ins" and path[2] == "when":
            path = (*path[:2], *path[3:])
        super().bad(path, reason)

    def number(self, value: Any, path: tuple[Any, ...]) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value \
                or abs(value) > 1_000_000:
            self.bad(path, "must be a number")
            return None
        return float(value)

    def goal(self, value: Any, path: tuple[Any, ...], duration: int) -> GoalSpec | None:
        if not isinstance(value, Mapping):
            self.bad(path, "must be a mapping with id, indicator and a target or a change_percent")
            return None
        self.unknown_keys(value, ("id", "indicator", "target", "change_percent", "within_days"), path)
        goal_id = value.get("id")
        if not isinstance(goal_id, str) or not _GOAL_ID.match(goal_id):
            self.bad((*path, "id"), "is required: lower-case letters, digits and _, starting with a letter")
            goal_id = ""
        indicator = value.get("indicator")
        try:
            code = codes.indicator(indicator).code if isinstance(indicator, str) else None
        except codes.UnknownCodeError:
            code = None
        if code is None:
            self.bad((*path, "indicator"), "must be an indicator of the catalogue (sbp, dbp, weight, bmi, waist, "
                     "fpg, hba1c, ldl, ...)")
        within = duration
        if "within_days" in value:
            within = self.count(value["within_days"], (*path, "within_days"), low=1, high=max(duration, 1))
        if ("target" in value) == ("change_percent" in value):
            self.bad(path, "give a target or a change_percent (one of the two)")
            return None
        if "change_percent" in value:
            change = self.number(value["change_percent"], (*path, "change_percent"))
            if change is not None and (change == 0 or not -90 <= change <= 100):
                self.bad((*path, "change_percent"), "must be a change from -90 to 100 per cent, not 0")
                change = None
            if code is None or change is None:
                return None
            return GoalSpec(goal_id, code, within, change_percent=change)
        target = value["target"]
        if not isinstance(target, Mapping) or len(target) != 1 or next(iter(target)) not in TARGETS:
            self.bad((*path, "target"), f"must be one of {', '.join(TARGETS)} with its value, e.g. {{below: 130}}")
            return None
        word, raw = next(iter(target.items()))
        if word == "between":
            if not isinstance(raw, list) or len(raw) != 2:
                self.bad((*path, "target", word), "must be [low, high]")
                return None
            low, high = self.number(raw[0], (*path, "target", word)), self.number(raw[1], (*path, "target", word))
            if low is not None and high is not None and high < low:
                self.bad((*path, "target", word), "high is below low")
                return None
        else:
            low, high = self.number(raw, (*path, "target", word)), None
        if code is None or low is None or (word == "between" and high is None):
            return None
        return GoalSpec(goal_id, code, within, comparator=TARGETS[word], target=low, target_high=high)

    def check_in(self, value: Any, path: tuple[Any, ...]) -> Step | None:
        if not isinstance(value, Mapping):
            self.bad(path, "must be a mapping with flow and every")
            return None
        if "every" not in value:
            self.bad(path, "every is required, e.g. {days: 14}")
            return None
        self.unknown_keys(value, ("flow", "every", "at", "channels", "retry", "on_silence", "start_mode"), path)
        as_step = {key: item for key, item in value.items() if key not in ("every", "at")}
        as_step["when"] = {"every": value["every"], **({"at": value["at"]} if "at" in value else {})}
        return self.step(as_step, path)

    def education(self, value: Any, path: tuple[Any, ...], duration: int) -> EducationItem | None:
        if not isinstance(value, Mapping):
            self.bad(path, "must be a mapping with day and message")
            return None
        self.unknown_keys(value, ("day", "message", "at"), path)
        day = self.count(value.get("day"), (*path, "day"), low=0, high=max(duration - 1, 0))
        message = value.get("message")
        if not isinstance(message, str) or not message:
            self.bad((*path, "message"), "is required: the id of a message of the content library")
            message = ""
        elif self.content_ids is not None and message not in self.content_ids:
            self.bad((*path, "message"), f"no message {message!r} in the content library "
                     "(careloop interventions programs --content)")
        at = None
        if "at" in value:
            when = self.when({"at": value["at"]}, path)
            at = f"{when.at:%H:%M}" if when.at is not None else None
        return EducationItem(day, message, at)


def check_program(data: Any, *, flow_ids: Container[str] | None = None, content_ids: Container[str] | None = None,
                  lines: YamlLines | None = None, source: str = "program") -> ProgramDefinition:
    """Check ``data`` (a parsed program) and return it; raise :class:`ProgramInvalidError` listing every problem."""
    checker = _ProgramChecker(lines or YamlLines(None), flow_ids, content_ids)
    if not isinstance(data, Mapping):
        raise ProgramInvalidError([PlanProblem(1, "program", "must be a mapping with id, version, title, "
                                               "duration_days and goals")], source)
    checker.unknown_keys(data, _TOP_KEYS, ())
    program_id = data.get("id")
    if not isinstance(program_id, str) or not _ID.match(program_id):
        checker.bad(("id",), "is required: lower-case letters, digits and _, starting with a letter (at most 60)")
        program_id = ""
    version = checker.count(data.get("version"), ("version",), low=1, high=1_000_000)
    titles = {"zh": "", "en": ""}
    if not isinstance(data.get("title"), Mapping):
        checker.bad(("title",), "is required: a mapping of zh and en")
    else:
        titles = {lang: checker.text(data["title"].get(lang), ("title", lang)) for lang in ("zh", "en")}
    described = {"zh": "", "en": ""}
    if "description" in data:
        if not isinstance(data["description"], Mapping):
            checker.bad(("description",), "must be a mapping of zh and en")
        else:
            described = {lang: checker.text(data["description"].get(lang), ("description", lang), limit=1000)
                         for lang in ("zh", "en")}
    duration = checker.count(data.get("duration_days"), ("duration_days",), low=1, high=MAX_DAYS)
    tag = data.get("start_on_tag")
    if tag is not None:
        tag = checker.text(tag, ("start_on_tag",), limit=64).lower() or None
    goals: list[GoalSpec] = []
    raw_goals = data.get("goals")
    if not isinstance(raw_goals, list) or not raw_goals:
        checker.bad(("goals",), "is required: a list of at least one goal")
    else:
        for index, item in enumerate(raw_goals):
            goal = checker.goal(item, ("goals", index), duration)
            if goal is not None:
                if goal.id in {known.id for known in goals}:
                    checker.bad(("goals", index, "id"), f"the goal id {goal.id!r} is used twice")
                goals.append(goal)
    check_ins: list[Step] = []
    raw_check_ins = data.get("check_ins", [])
    if not isinstance(raw_check_ins, list):
        checker.bad(("check_ins",), "must be a list of check-ins (flow, every)")
    else:
        for index, item in enumerate(raw_check_ins):
            step = checker.check_in(item, ("check_ins", index))
            if step is not None:
                check_ins.append(step)
    education: list[EducationItem] = []
    raw_education = data.get("education", [])
    if not isinstance(raw_education, list):
        checker.bad(("education",), "must be a list of messages (day, message)")
    else:
        for index, item in enumerate(raw_education):
            found = checker.education(item, ("education", index), duration)
            if found is not None:
                education.append(found)
    if not check_ins and not education:
        checker.bad(("check_ins",), "a program needs check-ins or education messages (or both)")
    channels: tuple[str, ...] = DEFAULT_MESSAGE_CHANNELS
    if "education_channels" in data:
        raw = data["education_channels"]
        if not isinstance(raw, list) or not raw or any(item not in TEXT_CHANNELS for item in raw) \
                or len(set(raw)) != len(raw):
            checker.bad(("education_channels",), f"must list text channels among {', '.join(TEXT_CHANNELS)}, "
                        "each once")
        else:
            channels = tuple(raw)
    if checker.problems:
        raise ProgramInvalidError(checker.problems, source)
    return ProgramDefinition(
        id=program_id, version=version, title_zh=titles["zh"], title_en=titles["en"], duration_days=duration,
        goals=tuple(goals), check_ins=tuple(check_ins), education=tuple(education), education_channels=channels,
        start_on_tag=tag, description_zh=described["zh"], description_en=described["en"])


def parse_program(text: str, *, flow_ids: Container[str] | None = None, content_ids: Container[str] | None = None,
                  source: str = "program") -> ProgramDefinition:
    """Read and check a program's YAML; raise :class:`ProgramInvalidError` (each problem with its line and field)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as broken:
        mark = getattr(broken, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(broken, "problem", None) or str(broken)
        raise ProgramInvalidError([PlanProblem(line, "yaml", f"not valid YAML ({reason})")], source) from None
    return check_program(data, flow_ids=flow_ids, content_ids=content_ids, lines=YamlLines(node), source=source)


def from_dict(data: Mapping[str, Any]) -> ProgramDefinition:
    """A stored definition (:meth:`ProgramDefinition.as_dict`) read back (it was checked when it was stored)."""
    return check_program(dict(data))


def plan_definition_of(definition: ProgramDefinition) -> PlanDefinition:
    """The plan of :func:`plan_document`, checked as a plan (what the program's validation also proves)."""
    return check_plan(plan_document(definition))
