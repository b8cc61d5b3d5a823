"""``kind: set_profile`` - set a field of the patient's health profile.

Example::

    - id: save_smoker
      kind: set_profile
      field: smoker                        # the profile field (see docs/flows.md for the list)
      value: "smoking == 'current'"        # an expression
      when: "smoking is not None"          # optional, as on every action node

A value of None (say, a question skipped after too many invalid answers) sets nothing: what the
profile already holds is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from flows.expressions import Expression, compile_expression
from flows.nodes.base import ActionNode, register
from flows.reader import Reader

if TYPE_CHECKING:
    from flows.engine import Run

_NONE = compile_expression("None")


@register
class SetProfileNode(ActionNode):
    """``kind: set_profile`` - set ``field`` of the health profile to the value of ``value`` (an expression)."""

    kind = "set_profile"

    def __init__(self, node_id: str, when: Expression | None, field: str, value: Expression) -> None:
        super().__init__(node_id, when)
        self.field = field
        self.value = value

    @classmethod
    def read(cls, reader: Reader, node_id: str) -> SetProfileNode:
        """Read ``field`` and ``value``."""
        field = reader.identifier("field", required=True) or "field"
        value = reader.expression("value", required=True) or _NONE
        return cls(node_id, reader.expression("when"), field, value)

    def action_expressions(self) -> Iterator[tuple[str, Expression, frozenset[str]]]:
        """Yield ``value``."""
        yield "value", self.value, frozenset()

    def act(self, run: Run) -> None:
        """Set the field; a value of None (an unanswered question) or a failing expression sets nothing."""
        ok, value = run.evaluate(self.id, self.value)
        if ok and value is not None:
            run.set_profile(self.field, value)
