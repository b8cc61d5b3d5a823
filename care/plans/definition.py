"""A plan's definition: read from YAML, checked, each problem naming its line and field.

::

    id: bp_monthly
    version: 1
    title: {zh: 高血压每月随访, en: Monthly blood-pressure check-in}
    enrol_on_tag: 高血压                       # optional: in while the tag is set
    enrol_on_events: [report_imported]          # optional: report_imported, questionnaire_finished[:FLOW]
    steps:
      - flow: home_monitoring                  # a flow of the library
        when: {every: {months: 1}, at: "09:30"} # or {anchor: checkup, offset: {days: 7}, at: "10:00"}
        channels: [wechat, sms, voice]          # tried in order (default wechat, sms, voice)
        retry: {attempts: 2, answer_window_hours: 48}
        on_silence: [reminder, next_channel, staff_call]
        start_mode: wait                        # wait (default), skip, interrupt
      - message: diet_salt                     # or a message of the content library (care.interventions)
        when: {offset: {days: 3}, at: "10:00"}
        channels: [wechat, sms]                 # text channels only (default wechat, sms)

An anchor is ``enrolment`` (default), ``checkup`` (the latest checkup report's date), ``tag`` (the
day the plan's tag was set; ``tag:NAME`` another tag's) or ``profile:FIELD`` (a date in the
patient's profile). ``when`` is an ``offset`` after the anchor (days, weeks, months; default none)
or ``every`` N days/weeks/months after it; ``at`` (HH:MM) is the local time of day in the patient's
time zone. A plan names flows by id; the caller says which ids exist (``flow_ids``), this layer
does not know the flow library.

A step sends either a flow's invitation (``flow``) or one education message of the content library
(``message``; :mod:`care.interventions.content`): a text the worker sends as it is, on the first
usable text channel of the step's order, with the same quiet hours, caps and start mode, and which
nobody answers (no retry, no silence). The caller says which content ids exist (``content_ids``).
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Any

import yaml

CHANNELS = ("wechat", "sms", "voice", "console")
DEFAULT_CHANNELS = ("wechat", "sms", "voice")
#: The channels that carry a text as it is (an education message): a call needs a flow to speak.
TEXT_CHANNELS = ("wechat", "sms", "console")
DEFAULT_MESSAGE_CHANNELS = ("wechat", "sms")
#: The id of a plan made from an intervention program (``iv_<program id>``, :mod:`care.interventions`).
PROGRAM_PLAN_PREFIX = "iv_"
START_MODES = ("wait", "skip", "interrupt")
SILENCE_ACTIONS = ("reminder", "next_channel", "staff_call")
DEFAULT_SILENCE = ("next_channel", "staff_call")
EVENTS = ("report_imported", "questionnaire_finished")
PERIOD_UNITS = ("days", "weeks", "months")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_PROFILE_FIELD = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class PlanProblem:
    """One problem of a plan file: where (line, or None), which field, why."""

    line: int | None
    field: str
    reason: str

    def shown(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.field}: {self.reason}"


class PlanInvalidError(ValueError):
    """A plan that cannot be used; :attr:`problems` says why, each with its line and field."""

    def __init__(self, problems: list[PlanProblem], source: str = "plan") -> None:
        self.problems = problems
        self.source = source
        super().__init__("; ".join(problem.shown(source) for problem in problems))


@dataclass(frozen=True)
class Period:
    days: int = 0
    weeks: int = 0
    months: int = 0

    def as_dict(self) -> dict[str, int]:
        return {unit: value for unit, value in (("days", self.days), ("weeks", self.weeks),
                                                ("months", self.months)) if value}

    @property
    def empty(self) -> bool:
        return not (self.days or self.weeks or self.months)


@dataclass(frozen=True)
class When:
    anchor: str = "enrolment"
    offset: Period = Period()
    every: Period | None = None
    at: time | None = None

    @property
    def recurring(self) -> bool:
        return self.every is not None

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"anchor": self.anchor}
        if not self.offset.empty:
            shown["offset"] = self.offset.as_dict()
        if self.every is not None:
            shown["every"] = self.every.as_dict()
        if self.at is not None:
            shown["at"] = f"{self.at:%H:%M}"
        return shown


@dataclass(frozen=True)
class Step:
    flow: str
    when: When
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    attempts: int = 2
    answer_window_hours: int = 48
    on_silence: tuple[str, ...] = DEFAULT_SILENCE
    start_mode: str = "wait"
    #: The content library's message this step sends (then ``flow`` is empty).
    message: str | None = None

    @property
    def followup_flow_id(self) -> str:
        """What the step's follow-up rows name in ``flow_id``: the flow, or ``content:<message id>``."""
        return self.flow if self.message is None else f"content:{self.message}"

    def as_dict(self) -> dict[str, Any]:
        if self.message is not None:
            return {"message": self.message, "when": self.when.as_dict(), "channels": list(self.channels),
                    "start_mode": self.start_mode}
        return {"flow": self.flow, "when": self.when.as_dict(), "channels": list(self.channels),
                "retry": {"attempts": self.attempts, "answer_window_hours": self.answer_window_hours},
                "on_silence": list(self.on_silence), "start_mode": self.start_mode}


@dataclass(frozen=True)
class PlanDefinition:
    id: str
    version: int
    title_zh: str
    title_en: str
    steps: tuple[Step, ...]
    enrol_on_tag: str | None = None
    enrol_on_events: tuple[str, ...] = ()
    anchors: frozenset[str] = field(default=frozenset())

    def as_dict(self) -> dict[str, Any]:
        """The checked definition as stored (``plan_versions.definition``); :func:`from_dict` reads it back."""
        shown: dict[str, Any] = {"id": self.id, "version": self.version,
                                 "title": {"zh": self.title_zh, "en": self.title_en},
                                 "steps": [step.as_dict() for step in self.steps]}
        if self.enrol_on_tag:
            shown["enrol_on_tag"] = self.enrol_on_tag
        if self.enrol_on_events:
            shown["enrol_on_events"] = list(self.enrol_on_events)
        return shown


class YamlLines:
    """The line of each path of a YAML document (``("steps", 0, "when")`` -> 12)."""

    def __init__(self, node: yaml.Node | None) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
                self.lines[(*path, name)] = key.start_mark.line + 1
                self._walk(value, (*path, name))
                self.lines[(*path, name)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, (*path, index))

    def of(self, path: tuple[Any, ...]) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _dotted(path: tuple[Any, ...]) -> str:
    shown = ""
    for part in path:
        shown += f"[{part}]" if isinstance(part, int) else (f".{part}" if shown else str(part))
    return shown or "plan"


class PlanChecker:
    def __init__(self, lines: YamlLines, flow_ids: Container[str] | None,
                 content_ids: Container[str] | None = None) -> None:
        self.lines = lines
        self.flow_ids = flow_ids
        self.content_ids = content_ids
        self.problems: list[PlanProblem] = []

    def bad(self, path: tuple[Any, ...], reason: str) -> None:
        self.problems.append(PlanProblem(self.lines.of(path), _dotted(path), reason))

    def unknown_keys(self, data: Mapping[str, Any], allowed: tuple[str, ...], path: tuple[Any, ...]) -> None:
        for key in data:
            if key not in allowed:
                self.bad((*path, key), f"unknown field (allowed: {', '.join(allowed)})")

    def text(self, value: Any, path: tuple[Any, ...], *, limit: int = 200) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            self.bad(path, f"must be a text of 1-{limit} characters")
            return ""
        return value.strip()

    def count(self, value: Any, path: tuple[Any, ...], *, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.bad(path, f"must be a whole number from {low} to {high}")
            return low
        return value

    def period(self, value: Any, path: tuple[Any, ...], *, allow_empty: bool) -> Period:
        if not isinstance(value, Mapping):
            self.bad(path, "must be a mapping of days, weeks and months, e.g. {months: 1}")
            return Period()
        self.unknown_keys(value, PERIOD_UNITS, path)
        parts = {unit: self.count(value[unit], (*path, unit), low=0, high=3650)
                 for unit in PERIOD_UNITS if unit in value}
        period = Period(**parts)
        if period.empty and not allow_empty:
            self.bad(path, "must be longer than nothing")
        return period

    def when(self, value: Any, path: tuple[Any, ...]) -> When:
        if not isinstance(value, Mapping):
            self.bad(path, "must be a mapping with an offset or an every, an anchor and an at")
            return When()
        self.unknown_keys(value, ("anchor", "offset", "every", "at"), path)
        anchor = value.get("anchor", "enrolment")
        if not isinstance(anchor, str) or not _anchor_ok(anchor):
            self.bad((*path, "anchor"), "must be enrolment, checkup, tag, tag:NAME or profile:FIELD")
            anchor = "enrolment"
        offset = self.period(value["offset"], (*path, "offset"), allow_empty=True) if "offset" in value else Period()
        every = self.period(value["every"], (*path, "every"), allow_empty=False) if "every" in value else None
        at = None
        if "at" in value:
            raw = value["at"]
            if isinstance(raw, int) and not isinstance(raw, bool):  # YAML 1.1 reads 09:30 as sexagesimal 570
                raw = f"{raw // 60:02d}:{raw % 60:02d}"
            match = _AT.match(raw) if isinstance(raw, str) else None
            if match is None:
                self.bad((*path, "at"), "must be a local time HH:MM, e.g. \"09:30\"")
            else:
                at = time(int(match.group(1)), int(match.group(2)))
        if every is not None and not offset.empty:
            self.bad((*path, "offset"), "a recurring step ('every') has no offset: it repeats from the anchor")
        return When(anchor=anchor, offset=offset, every=every, at=at)

    def message_step(self, value: Mapping[str, Any], path: tuple[Any, ...]) -> Step:
        self.unknown_keys(value, ("message", "when", "channels", "start_mode"), path)
        message = value.get("message")
        if not isinstance(message, str) or not _ID.match(message) or len(message) > 56:
            self.bad((*path, "message"), "must be the id of a message of the content library")
            message = ""
        elif self.content_ids is not None and message not in self.content_ids:
            self.bad((*path, "message"), f"no message {message!r} in the content library "
                     "(careloop interventions programs --content)")
        if "when" not in value:
            self.bad(path, "when is required")
        when = self.when(value.get("when", {}), (*path, "when"))
        channels: tuple[str, ...] = DEFAULT_MESSAGE_CHANNELS
        if "channels" in value:
            raw = value["channels"]
            if not isinstance(raw, list) or not raw or any(item not in TEXT_CHANNELS for item in raw) \
                    or len(set(raw)) != len(raw):
                self.bad((*path, "channels"), f"must list text channels among {', '.join(TEXT_CHANNELS)}, each once")
            else:
                channels = tuple(raw)
        mode = value.get("start_mode", "wait")
        if mode not in ("wait", "skip"):
            self.bad((*path, "start_mode"), "must be wait or skip (a message never interrupts a conversation)")
            mode = "wait"
        return Step(flow="", when=when, channels=channels, attempts=1, answer_window_hours=1, on_silence=(),
                    start_mode=mode, message=message)

    def step(self, value: Any, path: tuple[Any, ...]) -> Step | None:
        if not isinstance(value, Mapping):
            self.bad(path, "must be a mapping with flow (or message) and when")
            return None
        if "message" in value and "flow" not in value:
            return self.message_step(value, path)
        if "message" in value:
            self.bad((*path, "message"), "a step has a flow or a message, not both")
        self.unknown_keys(value, ("flow", "when", "channels", "retry", "on_silence", "start_mode"), path)
        flow = value.get("flow")
        if not isinstance(flow, str) or not flow:
            self.bad((*path, "flow"), "is required: the id of a flow of the library")
            flow = ""
        elif self.flow_ids is not None and flow not in self.flow_ids:
            self.bad((*path, "flow"), f"no flow {flow!r} in the library (careloop flows list)")
        if "when" not in value:
            self.bad(path, "when is required")
        when = self.when(value.get("when", {}), (*path, "when"))
        channels: tuple[str, ...] = DEFAULT_CHANNELS
        if "channels" in value:
            raw = value["channels"]
            if not isinstance(raw, list) or not raw or any(item not in CHANNELS for item in raw) \
                    or len(set(raw)) != len(raw):
                self.bad((*path, "channels"), f"must list channels among {', '.join(CHANNELS)}, each once")
            else:
                channels = tuple(raw)
        attempts, window = 2, 48
        if "retry" in value:
            retry = value["retry"]
            if not isinstance(retry, Mapping):
                self.bad((*path, "retry"), "must be a mapping of attempts and answer_window_hours")
            else:
                self.unknown_keys(retry, ("attempts", "answer_window_hours"), (*path, "retry"))
                attempts = self.count(retry.get("attempts", 2), (*path, "retry", "attempts"), low=1, high=5)
                window = self.count(retry.get("answer_window_hours", 48), (*path, "retry", "answer_window_hours"),
                                    low=1, high=24 * 14)
        silence: tuple[str, ...] = DEFAULT_SILENCE
        if "on_silence" in value:
            raw = value["on_silence"]
            raw = [raw] if isinstance(raw, str) else raw
            if not isinstance(raw, list) or any(item not in SILENCE_ACTIONS for item in raw):
                self.bad((*path, "on_silence"), f"must list actions among {', '.join(SILENCE_ACTIONS)}")
            else:
                silence = tuple(dict.fromkeys(raw))
        mode = value.get("start_mode", "wait")
        if mode not in START_MODES:
            self.bad((*path, "start_mode"), f"must be one of {', '.join(START_MODES)}")
            mode = "wait"
        return Step(flow=flow, when=when, channels=channels, attempts=attempts, answer_window_hours=window,
                    on_silence=silence, start_mode=mode)


def _anchor_ok(anchor: str) -> bool:
    if anchor in ("enrolment", "checkup", "tag"):
        return True
    kind, _, rest = anchor.partition(":")
    if kind == "tag":
        return bool(rest.strip()) and len(rest) <= 64
    return kind == "profile" and bool(_PROFILE_FIELD.match(rest))


def check_plan(data: Any, *, flow_ids: Container[str] | None = None, lines: YamlLines | None = None,
               source: str = "plan", content_ids: Container[str] | None = None) -> PlanDefinition:
    """Check ``data`` (a parsed plan) and return it; raise :class:`PlanInvalidError` listing every problem."""
    checker = PlanChecker(lines or YamlLines(None), flow_ids, content_ids)
    if not isinstance(data, Mapping):
        raise PlanInvalidError([PlanProblem(1, "plan", "must be a mapping with id, version, title and steps")],
                               source)
    checker.unknown_keys(data, ("id", "version", "title", "steps", "enrol_on_tag", "enrol_on_events",
                                "description"), ())
    plan_id = data.get("id")
    if not isinstance(plan_id, str) or not _ID.match(plan_id):
        checker.bad(("id",), "is required: lower-case letters, digits and _, starting with a letter (at most 64)")
        plan_id = ""
    version = checker.count(data.get("version"), ("version",), low=1, high=1_000_000)
    title = data.get("title")
    title_zh = title_en = ""
    if not isinstance(title, Mapping):
        checker.bad(("title",), "is required: a mapping of zh and en")
    else:
        title_zh = checker.text(title.get("zh"), ("title", "zh"))
        title_en = checker.text(title.get("en"), ("title", "en"))
    tag = data.get("enrol_on_tag")
    if tag is not None:
        tag = checker.text(tag, ("enrol_on_tag",), limit=64).lower() or None
    events: tuple[str, ...] = ()
    if "enrol_on_events" in data:
        raw = data["enrol_on_events"]
        raw = [raw] if isinstance(raw, str) else raw
        if not isinstance(raw, list) or any(not isinstance(item, str) or item.partition(":")[0] not in EVENTS
                                            for item in raw):
            checker.bad(("enrol_on_events",), "must list events among report_imported, questionnaire_finished, "
                        "questionnaire_finished:FLOW")
        else:
            events = tuple(dict.fromkeys(raw))
    steps: list[Step] = []
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        checker.bad(("steps",), "is required: a list of at least one step")
    else:
        for index, item in enumerate(raw_steps):
            step = checker.step(item, ("steps", index))
            if step is not None:
                steps.append(step)
                if step.when.anchor == "tag" and not tag:
                    checker.bad(("steps", index, "when", "anchor"),
                                "'tag' is the day the plan's enrol_on_tag was set: give enrol_on_tag, or name a tag")
    if checker.problems:
        raise PlanInvalidError(checker.problems, source)
    anchors = frozenset(step.when.anchor for step in steps)
    return PlanDefinition(id=plan_id, version=version, title_zh=title_zh, title_en=title_en, steps=tuple(steps),
                          enrol_on_tag=tag, enrol_on_events=events, anchors=anchors)


def parse_plan(text: str, *, flow_ids: Container[str] | None = None, source: str = "plan",
               content_ids: Container[str] | None = None) -> PlanDefinition:
    """Read and check a plan's YAML; raise :class:`PlanInvalidError` (each problem with its line and field)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as broken:
        mark = getattr(broken, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(broken, "problem", None) or str(broken)
        raise PlanInvalidError([PlanProblem(line, "yaml", f"not valid YAML ({reason})")], source) from None
    return check_plan(data, flow_ids=flow_ids, lines=YamlLines(node), source=source, content_ids=content_ids)


def from_dict(data: Mapping[str, Any]) -> PlanDefinition:
    """A stored definition (:meth:`PlanDefinition.as_dict`) read back (it was checked when it was stored)."""
    return check_plan(dict(data))
