"""``type: scale`` - a whole number on a scale, such as 0-10 or 1-5.

Example::

    - id: nps
      kind: question
      type: scale
      text: {zh: 您有多大可能向亲友推荐我们？, en: How likely are you to recommend us to family or friends?}
      min: 0
      max: 10
      min_label: {zh: 完全不可能, en: Not at all likely}
      max_label: {zh: 非常可能, en: Extremely likely}

Replies: "8", "８", "八", "eight", "我打8分". The value is the integer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from flows.answers.base import Accepted, AnswerContext, AnswerType, Prompt, Rejected, register
from flows.normalize import fold, spell_out_numerals, whole_number
from flows.reader import Reader
from flows.text import LocalText

_SIGNED = re.compile(r"(?<![\d.])-?\d+(?:\.\d+)?(?![\d.])")


@register
class ScaleAnswer(AnswerType):
    """A whole number from ``min`` to ``max``."""

    name = "scale"
    fhir_type = "integer"

    def __init__(self, minimum: int, maximum: int, min_label: LocalText | None, max_label: LocalText | None) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.min_label = min_label
        self.max_label = max_label
        self._rejection = Rejected("not_on_scale", "invalid.choice", {"first": minimum, "last": maximum})

    @classmethod
    def parse(cls, reader: Reader) -> ScaleAnswer:
        """Read ``min``, ``max`` (whole numbers, at most 100 apart), ``min_label``, ``max_label``."""
        minimum = reader.integer("min", required=True, minimum=-100, maximum=100)
        maximum = reader.integer("max", required=True, minimum=-100, maximum=100)
        if minimum is not None and maximum is not None and minimum >= maximum:
            reader.problem(f"'min' ({minimum}) must be below 'max' ({maximum})", "bad_range")
        return cls(minimum or 0, maximum or 0, reader.text("min_label"), reader.text("max_label"))

    def accept(self, text: str, context: AnswerContext) -> Accepted | Rejected:
        """Return the number, or the re-ask."""
        number = whole_number(text)
        if number is None:
            found = [float(item) for item in _SIGNED.findall(spell_out_numerals(fold(text)))]
            number = int(found[0]) if len(found) == 1 and found[0].is_integer() else None
        if number is None or not self.minimum <= number <= self.maximum:
            return self._rejection
        return Accepted(number)

    def prompt(self, lang: str) -> Prompt:
        """Return the range and the wording of its ends."""
        ends: list[tuple[int, str]] = []
        if self.min_label is not None:
            ends.append((self.minimum, self.min_label.plain(lang)))
        if self.max_label is not None:
            ends.append((self.maximum, self.max_label.plain(lang)))
        return Prompt(minimum=self.minimum, maximum=self.maximum, integer=True, scale_labels=tuple(ends))

    def texts(self) -> Iterator[tuple[str, LocalText]]:
        """Yield the labels of the ends."""
        if self.min_label is not None:
            yield "min_label", self.min_label
        if self.max_label is not None:
            yield "max_label", self.max_label
