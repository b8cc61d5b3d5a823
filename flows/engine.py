"""The engine: one pure step of a conversation.

``(definition, state, facts, input or timer, now) -> StepResult(state, outputs, events)``

Nothing is sent or saved here. :func:`start` opens a session; :func:`step` feeds it the patient's
next message (:class:`TextInput`, also what voice speech or keypad digits become) or a due
:class:`Timer`. The returned ``state`` is a JSON-serialisable dict that the host stores as is and
passes back next time; it pins the flow id and version, so publishing a new version never disturbs
sessions in progress. Time comes only from ``now`` (timezone-aware; "today" in date answers is
``now``'s date) and nothing is random, so the same inputs always give the same result.

The state (keys the host may read; the rest is the engine's)::

    flow_id, version, lang     the pinned flow and the session language
    status                     "waiting" (for an answer at ``node``) or "ended"
    end_status                 completed, expired, handed_off or skipped (once ended)
    node                       the question waited on
    results                    {name: {"value", "category", "label", "node", ["unit"], ["extra"]}}
    invalid_count              invalid answers in a row to the current question
    reminder_count             reminders sent for the current question
    waiting_since, wait_until, expires_at, started_at, updated_at     ISO times

Timers: after a step that waits, the host schedules a reminder at ``wait_until`` (when not None)
and the expiry at ``expires_at`` (both also in the ``session_waiting`` event), and calls
:func:`step` with ``Timer("reminder")`` / ``Timer("expiry")`` when they fall due. A timer that
arrives early, late for a question already answered, or after the end is ignored (an empty result).
Any answer, valid or not, restarts the clocks; a reminder does not move the expiry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from flows.answers.base import AnswerContext, Rejected
from flows.answers.number import format_number
from flows.bands import Band
from flows.definition import FlowDefinition
from flows.events import (
    AnswerRejected,
    Event,
    FlowError,
    MsgCreated,
    ObservationRecorded,
    ProfileFieldSet,
    QuestionSkipped,
    ResultSaved,
    SessionEnded,
    SessionStarted,
    SessionWaiting,
    StaffNotified,
)
from flows.expressions import Evaluator, Expression, ExpressionError, Namespace
from flows.facts import EMPTY_FACTS, Facts
from flows.i18n import CATALOGUE, t
from flows.nodes.compute import ComputeNode
from flows.nodes.question import QuestionNode
from flows.nodes.record_observation import RecordObservationNode
from flows.outputs import MessageOutput, Output, QuestionOutput
from flows.text import LocalText

#: Nodes one step may pass through before the engine decides the flow is going round in circles.
MAX_VISITS = 1000
MAX_INPUT_KEPT = 1000

TimerKind = Literal["reminder", "expiry"]


class StateError(ValueError):
    """Raise when a saved state does not belong to the definition given, or is damaged."""


@dataclass(frozen=True, slots=True)
class TextInput:
    """What the patient sent: a text message, a transcript of speech, or keypad digits ("2", "135*85")."""

    kind: ClassVar[str] = "text"
    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"TextInput.text must be a str, not {type(self.text).__name__}")


@dataclass(frozen=True, slots=True)
class Timer:
    """A timer that fell due: ``reminder`` (at ``wait_until``) or ``expiry`` (at ``expires_at``)."""

    kind: TimerKind

    def __post_init__(self) -> None:
        if self.kind not in ("reminder", "expiry"):
            raise ValueError(f"Timer.kind must be 'reminder' or 'expiry', not {self.kind!r}")


Input = TextInput | Timer


@dataclass(frozen=True, slots=True)
class StepResult:
    """The outcome of one step: the new state, what to say (in order), and what happened.

    ``path`` is the node ids the step went through, in order: the question answered (if any) first,
    then every node run up to the one that waits or ends the flow (simulators and coverage read it).
    """

    state: dict[str, Any]
    outputs: tuple[Output, ...]
    events: tuple[Event, ...]
    path: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """Return ``"waiting"`` or ``"ended"``."""
        return str(self.state["status"])

    @property
    def ended(self) -> bool:
        """Return whether the session has ended."""
        return bool(self.state["status"] == "ended")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary."""
        return {
            "status": self.status,
            "state": self.state,
            "outputs": [output.to_dict() for output in self.outputs],
            "events": [event.to_dict() for event in self.events],
        }


def _require_aware(now: datetime) -> None:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def new_state(definition: FlowDefinition, lang: str, now: datetime) -> dict[str, Any]:
    """Return the state of a session that has not yet run its first node."""
    stamp = now.isoformat()
    return {
        "flow_id": definition.id,
        "version": definition.version,
        "lang": lang,
        "status": "waiting",
        "end_status": None,
        "node": None,
        "results": {},
        "invalid_count": 0,
        "reminder_count": 0,
        "waiting_since": None,
        "wait_until": None,
        "expires_at": None,
        "started_at": stamp,
        "updated_at": stamp,
        "tags_added": [],
        "tags_removed": [],
        "observations": {},
        "profile": {},
    }


def start(
    definition: FlowDefinition, facts: Facts = EMPTY_FACTS, *, lang: str | None = None, now: datetime
) -> StepResult:
    """Start a session of ``definition`` in ``lang`` (default: the patient's language if the flow has it)."""
    _require_aware(now)
    chosen = lang or facts.language
    if chosen not in definition.languages:
        chosen = definition.languages[0]
    run = Run(definition, new_state(definition, chosen, now), facts, now)
    run.emit(SessionStarted(definition.id, definition.version, chosen))
    run.advance(definition.start)
    return run.result()


def step(
    definition: FlowDefinition, state: Mapping[str, Any], facts: Facts, event: Input, *, now: datetime
) -> StepResult:
    """Feed ``event`` to the session in ``state``; return the new state, outputs and events.

    Raises :class:`StateError` if ``state`` is not a session of ``definition`` (flow id and version
    must match: load the pinned version with ``FlowLibrary.get(state["flow_id"], state["version"])``).
    """
    _require_aware(now)
    check_state(definition, state)
    if state["status"] != "waiting":
        return StepResult(dict(state), (), ())
    if isinstance(event, Timer):
        due = state.get("wait_until") if event.kind == "reminder" else state["expires_at"]
        if not isinstance(due, str) or now < datetime.fromisoformat(due):
            # Early, or stale (its question was answered since): nothing happens.
            return StepResult(dict(state), (), ())
    elif not isinstance(event, TextInput):
        raise TypeError(f"step() takes a TextInput or a Timer, not {type(event).__name__}")
    run = Run(definition, dict(state), facts, now)
    if isinstance(event, TextInput):
        run.answer(event.text)
    elif event.kind == "reminder":
        run.remind()
    else:
        run.expire()
    return run.result()


_STATE_KEYS = ("flow_id", "version", "lang", "status", "node", "results", "expires_at")


def check_state(definition: FlowDefinition, state: Mapping[str, Any]) -> None:
    """Raise :class:`StateError` unless ``state`` is a well-formed session of ``definition``."""
    if not isinstance(state, Mapping):
        raise StateError("the state must be a mapping")
    missing = [key for key in _STATE_KEYS if key not in state]
    if missing:
        raise StateError(f"the state lacks {', '.join(missing)}")
    if state["flow_id"] != definition.id or state["version"] != definition.version:
        raise StateError(
            f"the state belongs to {state['flow_id']} v{state['version']}, "
            f"not {definition.id} v{definition.version}"
        )
    if state["status"] == "waiting":
        node = definition.nodes.get(state["node"]) if isinstance(state["node"], str) else None
        if not isinstance(node, QuestionNode):
            raise StateError(f"the state waits at {state['node']!r}, which is not a question of the flow")
        if not isinstance(state["expires_at"], str):
            raise StateError("a waiting state needs expires_at")
    elif state["status"] != "ended":
        raise StateError(f"unknown state status {state['status']!r}")
    if not isinstance(state["results"], Mapping):
        raise StateError("the state's results must be a mapping")


class Run:
    """One step in progress: the working state, the facts, the clock, and what has been said and done.

    Node kinds call its methods (``say``, ``evaluate``, ``save_computed``, ``notify``, ``end``...);
    nothing here touches the world.
    """

    __slots__ = (
        "_categories",
        "_evaluator",
        "_names",
        "_now_iso",
        "_results_copied",
        "definition",
        "ended",
        "events",
        "facts",
        "lang",
        "now",
        "outputs",
        "path",
        "state",
    )

    def __init__(self, definition: FlowDefinition, state: dict[str, Any], facts: Facts, now: datetime) -> None:
        self.definition = definition
        self.state = state
        self.facts = facts
        self.now = now
        self.lang: str = state["lang"]
        self.outputs: list[Output] = []
        self.events: list[Event] = []
        self.path: list[str] = []
        self.ended = False
        self._now_iso = now.isoformat()
        self._names: dict[str, Any] | None = None
        self._categories: dict[str, Any] = {}
        self._evaluator: Evaluator | None = None
        self._results_copied = False
        state["updated_at"] = self._now_iso

    # -- results of the run ------------------------------------------------------------------

    def result(self) -> StepResult:
        """Return the step's result."""
        return StepResult(self.state, tuple(self.outputs), tuple(self.events), tuple(self.path))

    def emit(self, event: Event) -> None:
        """Record that something happened."""
        self.events.append(event)

    def error(self, node_id: str, reason: str) -> None:
        """Record a run-time failure of the flow definition; the engine carries on."""
        self.events.append(FlowError(node_id, reason))

    # -- moving through the flow ----------------------------------------------------------------

    def advance(self, node_id: str | None) -> None:
        """Run nodes from ``node_id`` until one waits for the patient or the flow ends."""
        nodes = self.definition.nodes
        said = len(self.outputs)
        logged = len(self.events)
        visits = 0
        while node_id is not None and not self.ended:
            visits += 1
            self.path.append(node_id)
            node = nodes.get(node_id)
            if node is None or visits > MAX_VISITS:
                reason = f"no node '{node_id}'" if node is None else "the flow went round without asking anything"
                if node is not None:
                    # Do not send the patient what a runaway loop produced.
                    del self.outputs[said:]
                    looped = [event for event in self.events[logged:] if not isinstance(event, MsgCreated)]
                    self.events[logged:] = looped
                self.error(str(node_id), reason)
                self._hand_off(str(node_id), "flow_error", "staff.flow_error", priority="high")
                return
            if isinstance(node, QuestionNode):
                self._ask(node, purpose="question")
                return
            node_id = node.run(self)
        if not self.ended:
            self.end("completed")

    def answer(self, text: str) -> None:
        """Take the patient's reply to the question waited on."""
        node = self.definition.nodes[self.state["node"]]
        assert isinstance(node, QuestionNode)  # noqa: S101 - check_state guarantees it
        self.path.append(node.id)
        outcome = node.answer.accept(text, AnswerContext(self.lang, self.now))
        if isinstance(outcome, Rejected):
            self._reject(node, outcome)
            return
        value = outcome.value
        category, label = outcome.category, outcome.label
        if node.bands:
            band = self._classify(node.id, node.bands, self._expression_value(node.result, value, outcome.extra))
            if band is not None:
                category = band.category
                label = self.fill(band.label) if band.label is not None else label
        entry: dict[str, Any] = {"value": value, "category": category, "label": label, "node": node.id}
        unit = node.answer.unit_code
        if unit is not None:
            entry["unit"] = unit
        extra = dict(outcome.extra) if outcome.extra is not None else None
        if extra is not None:
            entry["extra"] = extra
        self._set_result(node.result, entry)
        kept = text.strip()[:MAX_INPUT_KEPT]
        # The event gets its own copies: the state and the event must not share anything mutable.
        saved_value = list(value) if isinstance(value, list) else value
        saved_extra = dict(extra) if extra is not None else None
        self.emit(ResultSaved(node.result, saved_value, category, label, node.code, unit, node.id, kept, saved_extra))
        self.advance(node.next_id)

    def _reject(self, node: QuestionNode, rejected: Rejected) -> None:
        count = int(self.state.get("invalid_count") or 0) + 1
        self.state["invalid_count"] = count
        self.emit(AnswerRejected(node.id, rejected.reason, count))
        limit = node.max_invalid or self.definition.max_invalid
        if count < limit:
            notice = self.fill(node.invalid) if node.invalid is not None else rejected.text(self.lang)
            self._ask(node, purpose="reask", notice=notice, notice_kind="invalid", new_question=False)
            return
        exit_kind = node.on_invalid or self.definition.on_invalid
        if exit_kind == "handoff":
            self._hand_off(node.id, "unanswered_question", "staff.unanswered", priority="normal", count=count)
            return
        self.emit(QuestionSkipped(node.id, node.result))
        self.advance(node.next_id)

    def remind(self) -> None:
        """Re-ask the question waited on (the reminder is due)."""
        node = self.definition.nodes[self.state["node"]]
        assert isinstance(node, QuestionNode)  # noqa: S101 - check_state guarantees it
        self.state["reminder_count"] = int(self.state.get("reminder_count") or 0) + 1
        notice = self._flow_text("reminder")
        self._ask(node, purpose="reminder", notice=notice, notice_kind="reminder", new_question=False, reminder=True)

    def expire(self) -> None:
        """End the session as expired (its time is up)."""
        expired = self.definition.texts.get("expired")
        if expired is not None:
            self.say(self.state["node"], expired)
        self.end("expired")

    # -- asking and waiting -----------------------------------------------------------------

    def _ask(
        self,
        node: QuestionNode,
        *,
        purpose: str,
        notice: str | None = None,
        notice_kind: str | None = None,
        new_question: bool = True,
        reminder: bool = False,
    ) -> None:
        text = self.fill(node.text)
        prompt = node.prompt(self.lang)
        self.outputs.append(
            QuestionOutput(
                node.id,
                text,
                self.lang,
                node.answer.name,
                prompt.choices,
                prompt.unit,
                prompt.minimum,
                prompt.maximum,
                prompt.integer,
                notice,
                notice_kind,
                prompt.scale_labels,
            )
        )
        self.emit(MsgCreated(node.id, text if notice is None else f"{notice}\n{text}", purpose))
        self._wait(node, new_question=new_question, reminder=reminder)

    def _wait(self, node: QuestionNode, *, new_question: bool, reminder: bool) -> None:
        state = self.state
        definition = self.definition
        state["status"] = "waiting"
        state["node"] = node.id
        if new_question:
            state["invalid_count"] = 0
        if reminder:
            expires = datetime.fromisoformat(state["expires_at"])
        else:
            state["reminder_count"] = 0
            state["waiting_since"] = self._now_iso
            expires = self.now + timedelta(hours=definition.expiry_hours)
            state["expires_at"] = expires.isoformat()
        wait_until = None
        after = definition.reminder_after_hours
        if after is not None and state["reminder_count"] < definition.reminder_max:
            due = self.now + timedelta(hours=after)
            if due < expires:
                wait_until = due.isoformat()
        state["wait_until"] = wait_until
        self.emit(SessionWaiting(node.id, wait_until, state["expires_at"]))

    # -- what nodes call ----------------------------------------------------------------------

    def say(self, node_id: str, text: LocalText, purpose: str = "message") -> None:
        """Send ``text`` (placeholders filled) to the patient."""
        filled = self.fill(text)
        self.outputs.append(MessageOutput(node_id, filled, self.lang))
        self.emit(MsgCreated(node_id, filled, purpose))

    def end(self, status: str) -> None:
        """End the session with ``status``."""
        state = self.state
        state["status"] = "ended"
        state["end_status"] = status
        state["node"] = None
        state["wait_until"] = None
        state["expires_at"] = None
        self.emit(SessionEnded(status))
        self.ended = True

    def evaluate(
        self, node_id: str, expression: Expression, extra: Mapping[str, Any] | None = None
    ) -> tuple[bool, Any]:
        """Return ``(True, value)``, or ``(False, None)`` after reporting a ``flow_error``."""
        if self._evaluator is None:
            self._evaluator = Evaluator()
        names = self._expression_names()
        # ``extra`` names (``value`` in bands) are reserved: no result or fact can be hidden by them.
        if extra:
            names.update(extra)
        try:
            return True, self._evaluator.evaluate(expression, names)
        except ExpressionError as failure:
            self.error(node_id, f"{expression.source[:80]}: {failure}")
            return False, None
        finally:
            for key in extra or ():
                names.pop(key, None)

    def is_true(self, node_id: str, expression: Expression, extra: Mapping[str, Any] | None = None) -> bool:
        """Return whether ``expression`` is true (a failing expression counts as false)."""
        ok, value = self.evaluate(node_id, expression, extra)
        return ok and bool(value)

    def save_computed(self, node: ComputeNode, value: Any) -> None:
        """Keep a computed value for later expressions and, unless ``save: false``, save it as a result."""
        if value is None:
            return
        clean = _jsonable(value)
        if clean is _NOT_JSON:
            self.error(node.id, f"the computed value is not a number, text, true/false or list: {type(value).__name__}")
            return
        category: str | None = None
        label: str | None = None
        if node.bands:
            band = self._classify(node.id, node.bands, clean)
            if band is not None:
                category = band.category
                label = self.fill(band.label) if band.label is not None else None
        entry: dict[str, Any] = {"value": clean, "category": category, "label": label, "node": node.id}
        if node.unit is not None:
            entry["unit"] = node.unit
        if not node.save:
            entry["saved"] = False
        self._set_result(node.result, entry)
        if node.save:
            disclaimer = None
            if node.disclaimer and self.definition.disclaimer is not None:
                disclaimer = self.fill(self.definition.disclaimer)
            shown = list(clean) if isinstance(clean, list) else clean
            self.emit(
                ResultSaved(node.result, shown, category, label, node.code, node.unit, node.id, None, None, disclaimer)
            )

    def set_profile(self, field: str, value: Any) -> None:
        """Set a profile field."""
        clean = _jsonable(value)
        if clean is _NOT_JSON:
            self.error(field, f"the profile value is not a number, text, true/false or list: {type(value).__name__}")
            return
        profile = dict(self.state["profile"])
        profile[field] = clean
        self.state["profile"] = profile
        self._names = None
        self.emit(ProfileFieldSet(field, clean))

    def record_observation(self, node: RecordObservationNode, value: float) -> None:
        """Record a measurement."""
        observations = dict(self.state["observations"])
        observations[node.code] = value
        if node.short is not None:
            observations[node.short] = value
        self.state["observations"] = observations
        self._names = None
        self.emit(ObservationRecorded(node.code, value, node.unit, node.short, node.id, self._now_iso))

    def change_tag(self, tag: str, *, added: bool) -> None:
        """Add or remove a tag in the session's view of the patient."""
        gain = [item for item in self.state["tags_added"] if item != tag]
        loss = [item for item in self.state["tags_removed"] if item != tag]
        (gain if added else loss).append(tag)
        self.state["tags_added"] = gain
        self.state["tags_removed"] = loss
        self._names = None

    def notify(
        self,
        node_id: str,
        priority: str,
        reason: str,
        note: LocalText,
        include: tuple[str, ...],
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Create a staff task."""
        results = self.state["results"]
        details: dict[str, Any] = {
            "flow_id": self.definition.id,
            "version": self.definition.version,
            "node_id": node_id,
            "at": self._now_iso,
            "lang": self.lang,
            "results": {name: results[name]["value"] if name in results else None for name in include},
            "note": {lang: self.fill_in(note, lang) for lang in note.raw},
        }
        if extra:
            details.update(extra)
        self.emit(StaffNotified(priority, reason, details))

    def after_days(self, days: int) -> str:
        """Return the ISO time ``days`` days from now."""
        return (self.now + timedelta(days=days)).isoformat()

    def after_hours(self, hours: int) -> str:
        """Return the ISO time ``hours`` hours from now."""
        return (self.now + timedelta(hours=hours)).isoformat()

    def save_value(self, node_id: str, name: str, value: str) -> None:
        """Save a plain value (a date an action worked out) as a result, without category."""
        self._set_result(name, {"value": value, "category": None, "label": None, "node": node_id})
        self.emit(ResultSaved(name, value, None, None, None, None, node_id, None, None, None))

    # -- internals ---------------------------------------------------------------------------

    def _hand_off(self, node_id: str, reason: str, note_key: str, *, priority: str, count: int = 0) -> None:
        node = self.definition.nodes.get(node_id)
        question = self.fill(node.text) if isinstance(node, QuestionNode) else None
        note = LocalText.of({lang: text.format(count=count) for lang, text in CATALOGUE[note_key].items()})
        self.notify(node_id, priority, reason, note, (), {"question": question, "attempts": count})
        handoff = self.definition.texts.get("handoff") or LocalText.of(CATALOGUE["handoff"])
        self.say(node_id, handoff, purpose="handoff")
        self.end("handed_off")

    def _flow_text(self, name: str) -> str:
        override = self.definition.texts.get(name)
        return self.fill(override) if override is not None else t(name, self.lang)

    def _set_result(self, name: str, entry: dict[str, Any]) -> None:
        if not self._results_copied:
            self.state["results"] = dict(self.state["results"])
            self._results_copied = True
        self.state["results"][name] = entry
        names = self._names
        if names is not None:
            names[name] = self._expression_value(name, entry.get("value"), entry.get("extra"))
            self._categories[name] = entry.get("category")

    def _classify(self, node_id: str, bands: tuple[Band, ...], value: Any) -> Band | None:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        for band in bands:
            if band.upto is not None:
                fits = number and value <= band.upto
            elif band.below is not None:
                fits = number and value < band.below
            elif band.when is not None:
                fits = self.is_true(node_id, band.when, {"value": value})
            else:
                fits = True
            if fits:
                return band
        return None

    def _expression_value(self, name: str, value: Any, extra: Mapping[str, Any] | None) -> Any:
        if extra is not None and name in self.definition.structured_results:
            return Namespace({**extra, "value": value})
        return value

    def _expression_names(self) -> dict[str, Any]:
        names = self._names
        if names is None:
            definition = self.definition
            state = self.state
            facts = self.facts
            names = dict.fromkeys(definition.result_names)
            categories = self._categories = {}
            for name, entry in state["results"].items():
                names[name] = self._expression_value(name, entry.get("value"), entry.get("extra"))
                categories[name] = entry.get("category")
            tags = (facts.tags - frozenset(state["tags_removed"])) | frozenset(state["tags_added"])
            observations = {**facts.observations, **state["observations"]}
            names["age"] = facts.age
            names["sex"] = facts.sex
            names["lang"] = self.lang
            names["tags"] = tags
            names["obs"] = Namespace(observations)
            names["profile"] = Namespace({**facts.profile, **state["profile"]})
            names["category"] = Namespace(categories)
            self._names = names
        return names

    def fill(self, text: LocalText) -> str:
        """Return ``text`` in the session language with its placeholders filled."""
        return text.format(self.lang, self._resolve)

    def fill_in(self, text: LocalText, lang: str) -> str:
        """Return ``text`` in ``lang`` (for staff notes), with answer wording in ``lang`` too."""
        if lang == self.lang:
            return text.format(lang, self._resolve)
        return text.format(lang, lambda name, attribute: self._resolve_in(lang, name, attribute))

    def _resolve(self, name: str, attribute: str | None) -> str:
        return self._resolve_in(self.lang, name, attribute)

    def _resolve_in(self, lang: str, name: str, attribute: str | None) -> str:
        entry = self.state["results"].get(name)
        if entry is not None:
            if attribute is None:
                return self._display(entry.get("value"), lang)
            if attribute == "label":
                label = self._label(entry, lang)
                return label if label else self._display(entry.get("value"), lang)
            if attribute == "category":
                return self._display(entry.get("category"), lang)
            if attribute == "unit":
                return str(entry.get("unit") or "")
            extra = entry.get("extra") or {}
            return self._display(extra.get(attribute), lang)
        facts = self.facts
        if name == "age":
            return self._display(facts.age, lang)
        if name == "sex":
            return t(f"sex.{facts.sex}", lang) if facts.sex in ("male", "female") else t("nothing", lang)
        if name == "lang":
            return self.lang
        if name == "disclaimer" and self.definition.disclaimer is not None:
            return self.definition.disclaimer.format(lang, self._resolve)
        if name == "obs" and attribute is not None:
            observations = {**facts.observations, **self.state["observations"]}
            return self._display(observations.get(attribute), lang)
        if name == "profile" and attribute is not None:
            return self._display({**facts.profile, **self.state["profile"]}.get(attribute), lang)
        return t("nothing", lang)

    def _label(self, entry: Mapping[str, Any], lang: str) -> str | None:
        """Return the wording of a result's answer or band in ``lang`` (the saved one is the session's)."""
        saved: str | None = entry.get("label")
        if lang == self.lang:
            return saved
        node = self.definition.nodes.get(entry.get("node") or "")
        category = entry.get("category")
        if node is None or not isinstance(category, str):
            return saved
        for band in getattr(node, "bands", ()):
            if band.category == category and band.label is not None:
                return str(band.label.plain(lang))
        choices = getattr(getattr(node, "answer", None), "choices", ())
        wording = [choice.label.plain(lang) for key in category.split(",") for choice in choices if choice.key == key]
        return t("list_separator", lang).join(wording) if wording else saved

    def _display(self, value: Any, lang: str) -> str:
        if value is None:
            return t("nothing", lang)
        if isinstance(value, bool):
            return t("yes" if value else "no", lang)
        if isinstance(value, int | float):
            return format_number(value)
        if isinstance(value, list):
            return t("list_separator", lang).join(self._display(item, lang) for item in value)
        return str(value)


_NOT_JSON = object()


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Return ``value`` as plain JSON (tuples become lists), or ``_NOT_JSON``."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value if isinstance(value, int) or math.isfinite(value) else _NOT_JSON
    if isinstance(value, list | tuple) and depth < 2:
        items = [_jsonable(item, depth + 1) for item in value]
        return _NOT_JSON if any(item is _NOT_JSON for item in items) else items
    return _NOT_JSON

