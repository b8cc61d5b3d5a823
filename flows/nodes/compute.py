"""``kind: compute`` - work out a score or a derived value, and save it as a result.

Example::

    - id: total
      kind: compute
      result: phq9_total
      expression: phq9_q1 + phq9_q2 + phq9_q3 + phq9_q4 + phq9_q5 + phq9_q6 + phq9_q7 + phq9_q8 + phq9_q9
      code: 44261-6
      unit: "{score}"
      disclaimer: true           # the result carries the flow's disclaimer
      bands:
        - {upto: 4, category: minimal, label: {zh: 无或极轻微, en: minimal}}
        - {upto: 9, category: mild, label: {zh: 轻度, en: mild}}
        - {category: severe, label: {zh: 重度, en: severe}}
      save: true                 # false: a working value for later expressions only
      type: integer              # the value's type in the FHIR export: integer, decimal (default),
                                 # boolean or string

If the expression fails at run time (say an answer is missing), the result is left unset (None in
later expressions), nothing is saved and a ``flow_error`` event reports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from flows.bands import Band, band_expressions, band_texts, read_bands
from flows.codes import is_valid_loinc
from flows.expressions import Expression, compile_expression
from flows.nodes.base import Node, register
from flows.reader import Reader
from flows.text import LocalText

if TYPE_CHECKING:
    from flows.engine import Run


VALUE_TYPES = ("integer", "decimal", "boolean", "string")


@register
class ComputeNode(Node):
    """Evaluate ``expression`` and save it under ``result``."""

    kind = "compute"

    def __init__(
        self,
        node_id: str,
        *,
        result: str,
        expression: Expression,
        code: str | None,
        unit: str | None,
        bands: tuple[Band, ...],
        disclaimer: bool,
        save: bool,
        value_type: str = "decimal",
    ) -> None:
        super().__init__(node_id)
        self.result = result
        self.expression = expression
        self.code = code
        self.unit = unit
        self.bands = bands
        self.disclaimer = disclaimer
        self.save = save
        self.value_type = value_type

    @classmethod
    def read(cls, reader: Reader, node_id: str) -> ComputeNode:
        """Read ``result``, ``expression``, ``code``, ``unit``, ``bands``, ``disclaimer``, ``save``."""
        code = reader.string("code")
        if code is not None and not is_valid_loinc(code):
            reader.problem(f"'code' {code!r} is not a valid LOINC code (format or check digit)", "bad_code")
        return cls(
            node_id,
            result=reader.identifier("result") or node_id,
            expression=reader.expression("expression", required=True) or compile_expression("None"),
            code=code,
            unit=reader.string("unit"),
            bands=read_bands(reader),
            disclaimer=reader.boolean("disclaimer"),
            save=reader.boolean("save", default=True),
            value_type=reader.one_of("type", VALUE_TYPES, default="decimal") or "decimal",
        )

    def results(self) -> Iterator[str]:
        """Yield the result name."""
        yield self.result

    def texts(self) -> Iterator[tuple[str, LocalText]]:
        """Yield the band labels."""
        return band_texts(self.bands)

    def expressions(self) -> Iterator[tuple[str, Expression, frozenset[str]]]:
        """Yield the expression and the band conditions."""
        yield "expression", self.expression, frozenset()
        for where, expression in band_expressions(self.bands):
            yield where, expression, frozenset({"value"})

    def run(self, run: Run) -> str | None:
        """Compute and save the value."""
        ok, value = run.evaluate(self.id, self.expression)
        if ok:
            run.save_computed(self, value)
        return self.next_id
