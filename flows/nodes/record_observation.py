"""``kind: record_observation`` - record a measurement the patient reported, with its LOINC code.

Example::

    - id: rec_sbp
      kind: record_observation
      code: 8480-6              # LOINC (the check digit is verified)
      value: bp.sbp             # an expression giving a number; None records nothing
      unit: mmHg                # the canonical unit (mmHg, mmol/L, kg, cm...)
      short: sbp                # optional: the short code (known LOINC codes have one)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from flows.codes import LOINC_TO_SHORT, is_valid_loinc
from flows.expressions import Expression, compile_expression
from flows.nodes.base import ActionNode, register
from flows.reader import Reader

if TYPE_CHECKING:
    from flows.engine import Run

_NONE = compile_expression("None")


@register
class RecordObservationNode(ActionNode):
    """``kind: record_observation`` - record a measurement: LOINC ``code``, ``value`` (an expression), ``unit``."""

    kind = "record_observation"

    def __init__(
        self, node_id: str, when: Expression | None, code: str, value: Expression, unit: str, short: str | None
    ) -> None:
        super().__init__(node_id, when)
        self.code = code
        self.value = value
        self.unit = unit
        self.short = short

    @classmethod
    def read(cls, reader: Reader, node_id: str) -> RecordObservationNode:
        """Read ``code``, ``value``, ``unit`` and ``short`` (the short code; known LOINC codes have one)."""
        code = reader.string("code", required=True) or ""
        if code and not is_valid_loinc(code):
            reader.problem(f"'code' {code!r} is not a valid LOINC code (format or check digit)", "bad_code")
        value = reader.expression("value", required=True) or _NONE
        unit = reader.string("unit", required=True) or ""
        short = reader.identifier("short") or LOINC_TO_SHORT.get(code)
        return cls(node_id, reader.expression("when"), code, value, unit, short)

    def action_expressions(self) -> Iterator[tuple[str, Expression, frozenset[str]]]:
        """Yield ``value``."""
        yield "value", self.value, frozenset()

    def act(self, run: Run) -> None:
        """Record the observation when the value is a number (None: nothing to record)."""
        ok, value = run.evaluate(self.id, self.value)
        if not ok or value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            run.error(self.id, f"the observation value is not a number: {type(value).__name__}")
            return
        run.record_observation(self, float(value))
