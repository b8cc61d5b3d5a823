"""``type: reading`` - a home reading in free form: blood pressure, blood glucose, or both.

Example::

    - id: reading
      kind: question
      type: reading
      accept: [bp, glucose]      # default: both
      text: {zh: 请发来您今天的读数。, en: Please send us today's reading.}

Replies: "血压135/85", "BP 128/82", "135/85", "空腹血糖 6.1", "glucose 110 mg/dL", "血压135/85 血糖6.1".
A bare number is taken as glucose only when glucose is the only kind accepted (and a bare pair as
blood pressure). Expressions see a namespace: ``reading.sbp``, ``reading.dbp``, ``reading.pulse``,
``reading.glucose`` (mmol/L), ``reading.glucose_fasting`` - None for what was not reported. The value
is the readable summary (``"135/85 mmHg"``, ``"6.1 mmol/L"``); the category ``bp``, ``glucose`` or
``bp+glucose``.
"""

from __future__ import annotations

from typing import Any

from flows.answers.base import Accepted, AnswerContext, AnswerType, Rejected, register
from flows.answers.number import format_number
from flows.answers.readings import PULSE_WORD, find_bp, find_glucose, mentions_bp, mentions_glucose, prepare
from flows.reader import Reader

KINDS = ("bp", "glucose")


@register
class ReadingAnswer(AnswerType):
    """Blood pressure and/or blood glucose, recognised by keywords and shape."""

    name = "reading"
    fhir_type = "string"
    structured = True

    def __init__(self, kinds: tuple[str, ...]) -> None:
        self.kinds = kinds

    @classmethod
    def parse(cls, reader: Reader) -> ReadingAnswer:
        """Read ``accept`` (a list of ``bp`` and/or ``glucose``)."""
        raw = reader.sequence("accept") or list(KINDS)
        kinds = tuple(kind for kind in raw if kind in KINDS)
        if len(kinds) != len(raw) or not kinds:
            reader.problem(f"'accept' must list some of {', '.join(KINDS)}")
            kinds = kinds or KINDS
        return cls(kinds)

    def accept(self, text: str, context: AnswerContext) -> Accepted | Rejected:
        """Return the readings found, or the re-ask."""
        prepared = prepare(text)
        extra: dict[str, Any] = {}
        rest = prepared
        if "bp" in self.kinds:
            bp = find_bp(prepared)
            if isinstance(bp, str):
                return Rejected("bp_out_of_range", "invalid.bp_range")
            if bp is not None and (mentions_bp(prepared) or not mentions_glucose(prepared)):
                extra.update({"sbp": bp.sbp, "dbp": bp.dbp, "pulse": bp.pulse})
                rest = PULSE_WORD.sub(" ", prepared[: bp.span[0]] + " " + prepared[bp.span[1] :])
            elif mentions_bp(prepared) and not mentions_glucose(prepared):
                return Rejected("not_a_bp", "invalid.bp")
        if "glucose" in self.kinds and (mentions_glucose(rest) or (self.kinds == ("glucose",) and not extra)):
            glucose = find_glucose(rest)
            if isinstance(glucose, str):
                return Rejected("glucose_out_of_range", "invalid.glucose_range")
            if glucose is None:
                if not extra:
                    return Rejected("not_a_glucose", "invalid.glucose")
            else:
                extra.update(
                    {
                        "glucose": glucose.mmol,
                        "glucose_fasting": glucose.fasting,
                        "glucose_input_value": glucose.input_value,
                        "glucose_input_unit": glucose.input_unit,
                    }
                )
        if not extra:
            if any(ch.isdigit() for ch in prepared) and len(self.kinds) > 1:
                return Rejected("reading_kind_unknown", "invalid.reading_kind")
            return Rejected("not_a_reading", "invalid.reading")
        parts: list[str] = []
        kinds: list[str] = []
        if "sbp" in extra:
            parts.append(f"{extra['sbp']}/{extra['dbp']} mmHg")
            kinds.append("bp")
        if "glucose" in extra:
            parts.append(f"{format_number(extra['glucose'])} mmol/L")
            kinds.append("glucose")
        for key in ("sbp", "dbp", "pulse", "glucose", "glucose_fasting"):
            extra.setdefault(key, None)
        return Accepted(", ".join(parts), "+".join(kinds), None, extra)
