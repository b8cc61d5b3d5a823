"""What a step asks the host to say: neutral prompts, rendered per channel by :mod:`flows.render`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class ChoiceOption:
    """One numbered answer of a choice question: what the patient sends (``number``) and sees (``label``)."""

    number: int
    key: str
    label: str
    synonyms: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary."""
        return {"number": self.number, "key": self.key, "label": self.label, "synonyms": list(self.synonyms)}


@dataclass(frozen=True, slots=True)
class MessageOutput:
    """A message to show or speak; no answer expected."""

    kind: ClassVar[str] = "message"
    node_id: str
    text: str
    lang: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary."""
        return {"kind": self.kind, "node_id": self.node_id, "text": self.text, "lang": self.lang}


@dataclass(frozen=True, slots=True)
class QuestionOutput:
    """A question waiting for the patient's answer.

    ``answer_type`` is one of the answer types (``choice``, ``multi``, ``yes_no``, ``number``, ``scale``,
    ``date``, ``text``, ``blood_pressure``, ``glucose``, ``reading``). ``choices`` are numbered from 1;
    ``unit`` is the unit's wording in the session language; ``minimum``/``maximum`` the accepted range;
    ``notice`` a line to show before the question (the re-ask message, or a reminder) and
    ``notice_kind`` ``"invalid"`` or ``"reminder"``. ``scale_labels`` name the ends of a scale.
    """

    kind: ClassVar[str] = "question"
    node_id: str
    text: str
    lang: str
    answer_type: str
    choices: tuple[ChoiceOption, ...] = ()
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    notice: str | None = None
    notice_kind: str | None = None
    scale_labels: tuple[tuple[int, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary."""
        return {
            "kind": self.kind,
            "node_id": self.node_id,
            "text": self.text,
            "lang": self.lang,
            "answer_type": self.answer_type,
            "choices": [choice.to_dict() for choice in self.choices],
            "unit": self.unit,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "integer": self.integer,
            "notice": self.notice,
            "notice_kind": self.notice_kind,
            "scale_labels": [list(pair) for pair in self.scale_labels],
        }


Output = MessageOutput | QuestionOutput
