"""``type: glucose`` - a blood-glucose reading, saved in mmol/L.

Example::

    - id: fpg
      kind: question
      type: glucose
      fasting: true          # the question asks for a fasting reading (default: not said)
      text: {zh: 请告诉我们您今天早上的空腹血糖。, en: What was your fasting blood sugar this morning?}

Replies: "6.1", "6.1 mmol/L", "110 mg/dL" (-> 6.1), "空腹血糖6.1", keypad "6*1", speech "六点一".
The value is in mmol/L; ``extra`` keeps the reply's value and unit and ``fasting`` (true, false, or
None when neither the question nor the reply says). A ``fasting: true`` question refuses a reading
the patient calls after-meal ("餐后血糖9.0") and asks for the fasting one.
"""

from __future__ import annotations

from flows.answers.base import Accepted, AnswerContext, AnswerType, Prompt, Rejected, register
from flows.answers.readings import GLUCOSE_RANGE, find_glucose, prepare
from flows.reader import Reader


@register
class GlucoseAnswer(AnswerType):
    """Blood glucose in mmol/L (mg/dL converted)."""

    name = "glucose"
    fhir_type = "quantity"
    unit_code = "mmol/L"

    def __init__(self, fasting: bool | None) -> None:
        self.fasting = fasting

    @classmethod
    def parse(cls, reader: Reader) -> GlucoseAnswer:
        """Read ``fasting``."""
        return cls(reader.boolean("fasting") if reader.has("fasting") else None)

    def accept(self, text: str, context: AnswerContext) -> Accepted | Rejected:
        """Return the reading in mmol/L, or the re-ask."""
        found = find_glucose(prepare(text), fasting_default=self.fasting)
        if found is None:
            return Rejected("not_a_glucose", "invalid.glucose")
        if isinstance(found, str):
            return Rejected("glucose_out_of_range", "invalid.glucose_range")
        if self.fasting and found.fasting is False:
            return Rejected("not_fasting", "invalid.glucose_fasting")
        extra = {"input_value": found.input_value, "input_unit": found.input_unit, "fasting": found.fasting}
        return Accepted(found.mmol, None, None, extra)

    def prompt(self, lang: str) -> Prompt:
        """Return the unit and range."""
        return Prompt(unit="mmol/L", minimum=GLUCOSE_RANGE[0], maximum=GLUCOSE_RANGE[1])
