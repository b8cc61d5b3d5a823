"""``kind: question`` - ask, and wait for the answer.

Example::

    - id: phq9_q9
      kind: question
      type: choice                 # choice, multi, yes_no, number, scale, date, text,
                                   # blood_pressure, glucose, reading (see flows/answers/)
      result: phq9_q9              # the result name (default: the node id)
      code: 44260-8                # LOINC code of the item (optional)
      text: {zh: 有不如死掉或用某种方式伤害自己的念头, en: Thoughts that you would be better off dead ...}
      choices: *frequency
      invalid: {zh: 请回复1-4之间的数字。, en: Please reply with a number from 1 to 4.}   # optional
      max_invalid: 3               # invalid answers before giving up (default: the flow's, 3)
      on_invalid: handoff          # skip (go on without an answer) or handoff (staff take over)
      bands: [...]                 # optional, see flows/bands.py

An invalid answer gets the re-ask message (the question's ``invalid`` text, or the engine's message
for that mistake) with the question again. After ``max_invalid`` invalid answers in a row the flow
takes its ``on_invalid`` exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from flows.answers import ANSWER_TYPES, AnswerType, Prompt
from flows.answers.choice import ChoiceAnswer
from flows.bands import Band, band_expressions, band_texts, read_bands
from flows.codes import is_valid_loinc
from flows.expressions import Expression
from flows.nodes.base import Node, register
from flows.reader import Reader
from flows.text import LocalText

if TYPE_CHECKING:
    from flows.engine import Run

ON_INVALID = ("skip", "handoff")


@register
class QuestionNode(Node):
    """Ask a question and wait for the answer."""

    kind = "question"
    waits = True

    def __init__(
        self,
        node_id: str,
        *,
        text: LocalText,
        answer: AnswerType,
        result: str,
        code: str | None,
        invalid: LocalText | None,
        max_invalid: int | None,
        on_invalid: str | None,
        bands: tuple[Band, ...],
    ) -> None:
        super().__init__(node_id)
        self.text = text
        self.answer = answer
        self.result = result
        self.code = code
        self.invalid = invalid
        self.max_invalid = max_invalid
        self.on_invalid = on_invalid
        self.bands = bands
        self._prompts: dict[str, Prompt] = {}

    @classmethod
    def read(cls, reader: Reader, node_id: str) -> QuestionNode:
        """Read the question, its answer type's settings, and its validation settings."""
        text = reader.text("text", required=True) or LocalText.of({})
        type_name = reader.string("type", required=True)
        answer_type = ANSWER_TYPES.get(type_name or "")
        if type_name is not None and answer_type is None:
            known = ", ".join(sorted(ANSWER_TYPES))
            reader.problem(f"unknown question type {type_name!r} (known: {known})", "unknown_kind")
        if answer_type is not None:
            answer = answer_type.parse(reader)
        else:
            reader.ignore_rest()
            answer = _placeholder_answer()
        result = reader.identifier("result") or node_id
        code = reader.string("code")
        if code is not None and not is_valid_loinc(code):
            reader.problem(f"'code' {code!r} is not a valid LOINC code (format or check digit)", "bad_code")
        return cls(
            node_id,
            text=text,
            answer=answer,
            result=result,
            code=code,
            invalid=reader.text("invalid"),
            max_invalid=reader.integer("max_invalid", minimum=1, maximum=10),
            on_invalid=reader.one_of("on_invalid", ON_INVALID),
            bands=read_bands(reader),
        )

    def results(self) -> Iterator[str]:
        """Yield the result name."""
        yield self.result

    def texts(self) -> Iterator[tuple[str, LocalText]]:
        """Yield the question, the re-ask message, the answer settings' texts and the band labels."""
        yield "text", self.text
        if self.invalid is not None:
            yield "invalid", self.invalid
        yield from self.answer.texts()
        yield from band_texts(self.bands)

    def expressions(self) -> Iterator[tuple[str, Expression, frozenset[str]]]:
        """Yield the band conditions (which may use ``value``)."""
        for where, expression in band_expressions(self.bands):
            yield where, expression, frozenset({"value"})

    def prompt(self, lang: str) -> Prompt:
        """Return the answer type's prompt in ``lang`` (cached: definitions are immutable once loaded)."""
        found = self._prompts.get(lang)
        if found is None:
            found = self._prompts[lang] = self.answer.prompt(lang)
        return found

    def run(self, run: Run) -> str | None:
        """Questions are run by the engine, which waits for the answer."""
        raise TypeError("a question waits for the patient; the engine asks it")


def _placeholder_answer() -> AnswerType:
    """Return an answer type that accepts nothing, for a question whose type is unknown (already reported)."""
    return ChoiceAnswer(())
