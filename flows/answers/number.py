"""``type: number`` - a number within a range, in a unit.

Example::

    - id: weight
      kind: question
      type: number
      text: {zh: 您现在的体重是多少？, en: What is your weight now?}
      min: 20
      max: 300
      unit: kg                                # the unit saved with the value
      unit_label: {zh: 公斤, en: kg}          # the unit as patients read it
      accept_units: {斤: 0.5, jin: 0.5}       # other units patients use, with the factor to ``unit``
      decimals: 1                             # rounding of the saved value (default 1)
      integer: false                          # true: whole numbers only

Replies: "65", "65.5", "６５", "65公斤", "130斤" (-> 65 kg), "六十五", keypad "65*5" (-> 65.5).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

from flows.answers.base import Accepted, AnswerContext, AnswerType, Prompt, Rejected, register
from flows.i18n import t
from flows.normalize import normalize, spell_out_numerals
from flows.reader import Reader
from flows.text import LocalText

_DECIMAL_STAR = re.compile(r"(\d)\s*\*\s*(\d)")
_NUMBER = re.compile(r"(?<![\d.])-?\d+(?:\.\d+)?(?![\d.])")


def format_number(value: float) -> str:
    """Return ``value`` without a needless ``.0`` ("65", "6.1")."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@register
class NumberAnswer(AnswerType):
    """A number between ``min`` and ``max``."""

    name = "number"
    fhir_type = "decimal"

    def __init__(
        self,
        minimum: float,
        maximum: float,
        unit: str | None,
        unit_label: LocalText | None,
        units: dict[str, float],
        decimals: int,
        integer: bool,
    ) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.unit_code = unit
        self.unit_label = unit_label
        self.decimals = decimals
        self.integer = integer
        if integer:
            self.fhir_type = "integer"
        # Longest unit word first, so that "公斤" is not read as "斤".
        self.units = sorted(((word.casefold(), factor) for word, factor in units.items()), key=lambda u: -len(u[0]))

    @classmethod
    def parse(cls, reader: Reader) -> NumberAnswer:
        """Read ``min``, ``max``, ``unit``, ``unit_label``, ``accept_units``, ``decimals``, ``integer``."""
        minimum = reader.number("min", required=True)
        maximum = reader.number("max", required=True)
        if minimum is not None and maximum is not None and minimum >= maximum:
            low, high = format_number(minimum), format_number(maximum)
            reader.problem(f"'min' ({low}) must be below 'max' ({high})", "bad_range")
        unit = reader.string("unit")
        unit_label = reader.text("unit_label")
        if unit is not None and unit_label is None:
            reader.problem("'unit_label' is required with 'unit' (the unit as patients read it)")
        units: dict[str, float] = {}
        if unit:
            units[unit] = 1.0
        if unit_label is not None:
            units.update({word: 1.0 for word in unit_label.raw.values() if word})
        accept = reader.mapping("accept_units") or {}
        for word, factor in accept.items():
            if isinstance(factor, bool) or not isinstance(factor, int | float) or factor <= 0:
                reader.problem(f"'accept_units.{word}' must be a positive factor")
                continue
            units[str(word)] = float(factor)
        decimals = reader.integer("decimals", default=1, minimum=0, maximum=6)
        integer = reader.boolean("integer")
        places = 1 if decimals is None else decimals
        return cls(minimum or 0.0, maximum or 0.0, unit, unit_label, units, places, integer)

    def accept(self, text: str, context: AnswerContext) -> Accepted | Rejected:
        """Return the number in the canonical unit, or the re-ask."""
        prepared = _DECIMAL_STAR.sub(r"\1.\2", spell_out_numerals(normalize(text)).casefold())
        numbers = _NUMBER.findall(prepared)
        if len(numbers) != 1:
            return self._rejection(context.lang)
        value = float(numbers[0])
        for word, factor in self.units:
            if word and word in prepared:
                value *= factor
                break
        if not math.isfinite(value):
            # A reply of thousands of digits reads as infinity, which no integer holds.
            return self._rejection(context.lang)
        if self.integer:
            if not value.is_integer():
                return self._rejection(context.lang)
            result: float = int(value)
        elif self.decimals == 0:
            result = int(round(value))
        else:
            result = round(value, self.decimals)
        if not self.minimum <= result <= self.maximum:
            return self._rejection(context.lang)
        return Accepted(result)

    def _rejection(self, lang: str) -> Rejected:
        values = {"min": format_number(self.minimum), "max": format_number(self.maximum), "unit": self._unit_note}
        return Rejected("not_a_number", "invalid.integer" if self.integer else "invalid.number", values)

    def _unit_note(self, lang: str) -> str:
        return t("unit", lang, unit=self.unit_label.plain(lang)) if self.unit_label else ""

    def prompt(self, lang: str) -> Prompt:
        """Return the unit and range."""
        unit = self.unit_label.plain(lang) if self.unit_label else None
        return Prompt(unit=unit, minimum=self.minimum, maximum=self.maximum, integer=self.integer)

    def texts(self) -> Iterator[tuple[str, LocalText]]:
        """Yield the unit label."""
        if self.unit_label is not None:
            yield "unit_label", self.unit_label
