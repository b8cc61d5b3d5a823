"""``type: blood_pressure`` - a blood-pressure reading, "135/85".

Example::

    - id: bp
      kind: question
      type: blood_pressure
      text: {zh: 请告诉我们您今天在家量的血压。, en: Please tell us your blood pressure from today.}
      bands:
        - {when: "value.sbp >= 180 or value.dbp >= 110", category: red_flag, label: {zh: 明显偏高, en: very high}}
        - {when: "value.sbp >= 135 or value.dbp >= 85", category: above_target, label: {zh: 偏高, en: above target}}
        - {category: in_target, label: {zh: 达标, en: on target}}

Replies: see :mod:`flows.answers.readings`. The value is ``"135/85"`` (unit mmHg); expressions see the
answer as a namespace: ``bp.sbp``, ``bp.dbp``, ``bp.pulse`` (None unless given).
"""

from __future__ import annotations

from flows.answers.base import Accepted, AnswerContext, AnswerType, Rejected, register
from flows.answers.readings import find_bp, prepare
from flows.reader import Reader


@register
class BloodPressureAnswer(AnswerType):
    """Systolic/diastolic in mmHg."""

    name = "blood_pressure"
    fhir_type = "string"
    structured = True
    unit_code = "mmHg"

    @classmethod
    def parse(cls, reader: Reader) -> BloodPressureAnswer:
        """Read nothing: the type needs no settings."""
        return cls()

    def accept(self, text: str, context: AnswerContext) -> Accepted | Rejected:
        """Return the reading, or the re-ask."""
        found = find_bp(prepare(text))
        if found is None:
            return Rejected("not_a_bp", "invalid.bp")
        if isinstance(found, str):
            return Rejected("bp_out_of_range", "invalid.bp_range")
        extra: dict[str, int] = {"sbp": found.sbp, "dbp": found.dbp}
        if found.pulse is not None:
            extra["pulse"] = found.pulse
        return Accepted(found.text(), None, None, extra)
