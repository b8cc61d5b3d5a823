"""The contract of an answer type: how a question reads its settings, accepts a reply, and asks again."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from flows.i18n import t
from flows.outputs import ChoiceOption
from flows.reader import Reader
from flows.text import LocalText


@dataclass(frozen=True, slots=True)
class Accepted:
    """A reply that answers the question: the value to save, its category and wording."""

    value: Any
    category: str | None = None
    label: str | None = None
    extra: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A reply that does not answer the question; ``message`` is the catalogue key of the re-ask text.

    ``values`` fill the message; a value may be a function of the language (a unit's wording).
    """

    reason: str
    message: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def text(self, lang: str) -> str:
        """Return the re-ask message in ``lang``."""
        filled = {key: value(lang) if callable(value) else value for key, value in self.values.items()}
        return t(self.message, lang, **filled)


@dataclass(frozen=True, slots=True)
class AnswerContext:
    """What accepting a reply may depend on besides the reply: the language and the time (for dates)."""

    lang: str
    now: datetime


@dataclass(frozen=True, slots=True)
class Prompt:
    """The answer type's part of a question output."""

    choices: tuple[ChoiceOption, ...] = ()
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    scale_labels: tuple[tuple[int, str], ...] = ()


class AnswerType:
    """Base of every answer type; each type lives in its own module and registers under ``name``."""

    name: ClassVar[str] = ""
    #: The FHIR R4 ``Questionnaire.item.type`` of a question of this type.
    fhir_type: str = "string"
    #: Whether expressions see the answer as a namespace (``bp.sbp``) rather than a plain value.
    structured: ClassVar[bool] = False
    #: Canonical unit of the saved value (UCUM-like, as the import contract spells it), if any.
    unit_code: str | None = None

    @classmethod
    def parse(cls, reader: Reader) -> AnswerType:
        """Read the type's settings from the question's mapping."""
        raise NotImplementedError

    def accept(self, text: str, context: AnswerContext) -> Accepted | Rejected:
        """Return what ``text`` answers, or why it does not."""
        raise NotImplementedError

    def prompt(self, lang: str) -> Prompt:
        """Return the choices, unit and range to show with the question."""
        return Prompt()

    def texts(self) -> Iterator[tuple[str, LocalText]]:
        """Yield every translatable text of the settings, with where it is."""
        return iter(())


ANSWER_TYPES: dict[str, type[AnswerType]] = {}


def register(cls: type[AnswerType]) -> type[AnswerType]:
    """Register an answer type under its ``name``."""
    ANSWER_TYPES[cls.name] = cls
    return cls
