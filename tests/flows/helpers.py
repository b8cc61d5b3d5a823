"""Drive flow sessions in tests: a conversation with a fixed clock, and what it said and did."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from flows.definition import FlowDefinition, load_flow
from flows.engine import StepResult, TextInput, Timer, start, step
from flows.events import Event
from flows.facts import Facts
from flows.outputs import MessageOutput, QuestionOutput

FIXTURES = Path(__file__).parent / "fixtures"
#: Monday 6 January 2025, 09:00 in Beijing.
NOW = datetime(2025, 1, 6, 9, 0, tzinfo=timezone(timedelta(hours=8)))


def fixture_flow(name: str) -> FlowDefinition:
    """Return the valid fixture flow ``name``."""
    return load_flow(FIXTURES / "valid" / f"{name}.yaml")


class Conversation:
    """A session driven like a patient would, keeping every output and event."""

    def __init__(
        self, definition: FlowDefinition, facts: Facts | None = None, *, lang: str = "zh", now: datetime = NOW
    ) -> None:
        self.definition = definition
        self.facts = facts or Facts.build(language=lang)
        self.now = now
        self.results: list[StepResult] = []
        self._record(start(definition, self.facts, lang=lang, now=now))

    def _record(self, result: StepResult) -> StepResult:
        # Every state must survive a JSON round trip, as the host stores it.
        assert json.loads(json.dumps(result.state)) == result.state
        self.results.append(result)
        return result

    @property
    def last(self) -> StepResult:
        return self.results[-1]

    @property
    def state(self) -> dict[str, Any]:
        return self.last.state

    @property
    def ended(self) -> bool:
        return self.last.ended

    def say(self, *texts: str) -> StepResult:
        """Send each text in turn; return the last result."""
        for text in texts:
            self._record(step(self.definition, self.state, self.facts, TextInput(text), now=self.now))
        return self.last

    def timer(self, kind: str, *, at: datetime | None = None) -> StepResult:
        """Fire a timer at ``at`` (default: when it falls due); the clock moves there."""
        if at is None:
            due = self.state["wait_until" if kind == "reminder" else "expires_at"]
            assert due is not None, f"no {kind} is due"
            at = datetime.fromisoformat(due)
        self.now = at
        return self._record(step(self.definition, self.state, self.facts, Timer(kind), now=at))  # type: ignore[arg-type]

    def later(self, **delta: float) -> None:
        """Move the clock forward."""
        self.now = self.now + timedelta(**delta)

    # -- what happened ---------------------------------------------------------------------

    def events(self, kind: str | None = None) -> list[Event]:
        found = [event for result in self.results for event in result.events]
        return [event for event in found if kind is None or event.type == kind]

    def event_types(self) -> list[str]:
        return [event.type for event in self.events()]

    def outputs(self) -> list[MessageOutput | QuestionOutput]:
        return [output for result in self.results for output in result.outputs]

    def texts(self) -> list[str]:
        return [output.text for output in self.outputs()]

    def saved(self) -> dict[str, Any]:
        """Return ``{name: value}`` of every ``result_saved`` event (the last value wins)."""
        return {event.name: event.value for event in self.events("result_saved")}  # type: ignore[attr-defined]

    def categories(self) -> dict[str, Any]:
        return {event.name: event.category for event in self.events("result_saved")}  # type: ignore[attr-defined]

    def question(self) -> QuestionOutput:
        """Return the question the session waits on (the last one asked)."""
        questions = [output for output in self.last.outputs if isinstance(output, QuestionOutput)]
        assert questions, "the last step asked no question"
        return questions[-1]

    def end_status(self) -> str | None:
        return self.state.get("end_status")


def all_of(events: Iterable[Event], **fields: Any) -> list[Event]:
    """Return the events whose fields equal ``fields``."""
    return [event for event in events if all(getattr(event, key, None) == value for key, value in fields.items())]
