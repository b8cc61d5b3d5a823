"""What happened during a step: past-tense events that the host applies.

The engine never sends, saves or tags anything. Each step returns events; ``bot/`` writes the
record changes they describe in its transaction (results, profile fields, observations, tags,
staff tasks, follow-ups, the session row) and, after the commit, sends the step's outputs. Every
event is a frozen dataclass with a ``type`` key and :meth:`Event.to_dict`; :func:`event_from_dict`
reads one back. ``EVENT_TYPES`` maps each ``type`` to its class.

Example (``to_dict`` form)::

    {"type": "result_saved", "name": "phq9_total", "value": 10, "category": "moderate",
     "label": "中度", "code": "44261-6", "unit": "{score}", "node_id": "total", "input": null,
     "extra": null, "disclaimer": "本结果只用于健康筛查，不能代替医生的诊断。"}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Priority = Literal["urgent", "high", "normal"]
EndStatus = Literal["completed", "expired", "handed_off", "skipped"]

PRIORITIES: tuple[str, ...] = ("urgent", "high", "normal")
END_STATUSES: tuple[str, ...] = ("completed", "expired", "handed_off", "skipped")


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event."""

    type: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"type": ..., **fields}``, JSON-serialisable."""
        data: dict[str, Any] = {"type": self.type}
        for item in dataclasses.fields(self):
            data[item.name] = getattr(self, item.name)
        return data


EVENT_TYPES: dict[str, type[Event]] = {}


def _register(cls: type[Event]) -> type[Event]:
    EVENT_TYPES[cls.type] = cls
    return cls


@_register
@dataclass(frozen=True, slots=True)
class SessionStarted(Event):
    """A session of ``flow_id`` (pinned at ``version``) started, in ``lang``."""

    type: ClassVar[str] = "session_started"
    flow_id: str
    version: int
    lang: str


@_register
@dataclass(frozen=True, slots=True)
class MsgCreated(Event):
    """A message for the patient was created (the conversation log); ``purpose`` says why.

    ``purpose`` is ``message``, ``question``, ``reask`` (after an invalid answer), ``reminder`` or
    ``handoff``. The text is the neutral wording; the step's outputs are what a channel renders.
    """

    type: ClassVar[str] = "msg_created"
    node_id: str
    text: str
    purpose: str


@_register
@dataclass(frozen=True, slots=True)
class AnswerRejected(Event):
    """An answer to ``node_id`` could not be understood (``attempts`` so far); the question was asked again."""

    type: ClassVar[str] = "answer_rejected"
    node_id: str
    reason: str
    attempts: int


@_register
@dataclass(frozen=True, slots=True)
class ResultSaved(Event):
    """A result was saved: an answer or a computed value, with its category.

    ``value`` is JSON (number, text, bool, list); ``label`` is the wording of the chosen answer or band
    in the session language; ``code`` a LOINC code when the flow gives one; ``input`` the patient's
    reply as sent (trimmed, at most 1000 characters) for answers; ``extra`` structured detail
    (``{"sbp": 135, "dbp": 85}``); ``disclaimer`` the text that must go with a scored result wherever it is shown.
    """

    type: ClassVar[str] = "result_saved"
    name: str
    value: Any
    category: str | None
    label: str | None = None
    code: str | None = None
    unit: str | None = None
    node_id: str | None = None
    input: str | None = None
    extra: Mapping[str, Any] | None = None
    disclaimer: str | None = None


@_register
@dataclass(frozen=True, slots=True)
class QuestionSkipped(Event):
    """A question was given up after too many invalid answers (``on_invalid: skip``); nothing was saved."""

    type: ClassVar[str] = "question_skipped"
    node_id: str
    result: str


@_register
@dataclass(frozen=True, slots=True)
class ProfileFieldSet(Event):
    """A field of the patient's health profile was set."""

    type: ClassVar[str] = "profile_field_set"
    field: str
    value: Any


@_register
@dataclass(frozen=True, slots=True)
class ObservationRecorded(Event):
    """A measurement was reported by the patient: LOINC ``code``, ``value`` in ``unit`` (canonical)."""

    type: ClassVar[str] = "observation_recorded"
    code: str
    value: float
    unit: str
    short_code: str | None = None
    node_id: str | None = None
    observed_at: str | None = None


@_register
@dataclass(frozen=True, slots=True)
class TagAdded(Event):
    """A tag was added to the patient."""

    type: ClassVar[str] = "tag_added"
    tag: str


@_register
@dataclass(frozen=True, slots=True)
class TagRemoved(Event):
    """A tag was removed from the patient."""

    type: ClassVar[str] = "tag_removed"
    tag: str


@_register
@dataclass(frozen=True, slots=True)
class StaffNotified(Event):
    """Staff must act: ``priority`` urgent (now), high (today) or normal; ``reason`` is a stable key.

    ``details`` holds ``flow_id``, ``version``, ``node_id``, ``at`` (ISO time), ``results`` (the named
    results the flow chose to include) and ``note`` (``{"zh": ..., "en": ...}`` for staff).
    """

    type: ClassVar[str] = "staff_notified"
    priority: str
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)


@_register
@dataclass(frozen=True, slots=True)
class FlowStarted(Event):
    """The flow asked for ``flow_id`` to be started for the same patient once this session has ended."""

    type: ClassVar[str] = "flow_started"
    flow_id: str


@_register
@dataclass(frozen=True, slots=True)
class FollowupScheduled(Event):
    """A follow-up with ``flow_id`` was scheduled ``in_days`` days from now (``due_at``, ISO time)."""

    type: ClassVar[str] = "followup_scheduled"
    flow_id: str
    in_days: int
    due_at: str


@_register
@dataclass(frozen=True, slots=True)
class SessionWaiting(Event):
    """The session waits at ``node_id``: remind at ``wait_until`` (None: no more), expire at ``expires_at``."""

    type: ClassVar[str] = "session_waiting"
    node_id: str
    wait_until: str | None
    expires_at: str


@_register
@dataclass(frozen=True, slots=True)
class SessionEnded(Event):
    """The session ended: ``completed``, ``expired``, ``handed_off`` or ``skipped``."""

    type: ClassVar[str] = "session_ended"
    status: str


@_register
@dataclass(frozen=True, slots=True)
class FlowError(Event):
    """Something in the flow definition failed at run time (an expression); the engine went on safely."""

    type: ClassVar[str] = "flow_error"
    node_id: str
    reason: str


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Return the event whose :meth:`Event.to_dict` form is ``data``; raise ValueError if unknown."""
    kind = data.get("type")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event type {kind!r}")
    names = {item.name for item in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in names})
