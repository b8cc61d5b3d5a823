"""``kind: branch`` - go one way or another, on expressions.

Example::

    - id: check_item9
      kind: branch
      cases:
        - when: "phq9_q9 > 0"
          next: safety_alert
      default: total             # required: where to go when no case is true

Cases are tried in order; the first whose ``when`` is true wins. An expression that fails at run time
counts as false (and is reported as a ``flow_error`` event).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from flows.expressions import Expression
from flows.nodes.base import Node, register
from flows.reader import Reader

if TYPE_CHECKING:
    from flows.engine import Run


@register
class BranchNode(Node):
    """Choose the next node by the first true case, or the default."""

    kind = "branch"
    has_next = False

    def __init__(self, node_id: str, cases: tuple[tuple[Expression, str], ...], default: str | None) -> None:
        super().__init__(node_id)
        self.cases = cases
        self.default = default

    @classmethod
    def read(cls, reader: Reader, node_id: str) -> BranchNode:
        """Read ``cases`` (each ``when`` and ``next``) and ``default``."""
        cases: list[tuple[Expression, str]] = []
        raw = reader.sequence("cases", required=True)
        for position, item in enumerate(raw, start=1):
            child = reader.child(item, f"cases[{position}]")
            when = child.expression("when", required=True)
            target = child.identifier("next", required=True)
            child.finish()
            if when is not None and target is not None:
                cases.append((when, target))
        default = reader.identifier("default")
        if default is None and not reader.has("default"):
            reader.problem("a branch needs a 'default' (where to go when no case is true)", "branch_without_default")
        return cls(node_id, tuple(cases), default)

    def targets(self) -> Iterator[tuple[str, str]]:
        """Yield each case's target and the default."""
        for position, (_when, target) in enumerate(self.cases, start=1):
            yield f"cases[{position}].next", target
        if self.default is not None:
            yield "default", self.default

    def successors(self) -> Iterator[str]:
        """Yield every target."""
        for _field, target in self.targets():
            yield target

    def expressions(self) -> Iterator[tuple[str, Expression, frozenset[str]]]:
        """Yield each case's condition."""
        for position, (when, _target) in enumerate(self.cases, start=1):
            yield f"cases[{position}].when", when, frozenset()

    def run(self, run: Run) -> str | None:
        """Return the first true case's target, or the default."""
        for when, target in self.cases:
            if run.is_true(self.id, when):
                return target
        return self.default
