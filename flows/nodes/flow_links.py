"""``kind: start_flow`` and ``kind: schedule_followup`` - lead on to another flow.

Example::

    - {id: then_gad7, kind: start_flow, flow: gad7}                  # once this session has ended
    - {id: again, kind: schedule_followup, flow: phq9, in_days: 14}  # a follow-up in 14 days
    - id: next                   # the days worked out by an expression, and the date saved as a result
      kind: schedule_followup
      flow: national_hypertension_followup
      in_days: national_next_visit_days(visit_class)
      result: next_visit

The flow named must exist in the library (checked when the library loads and by ``flows validate``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from flows.events import FlowStarted, FollowupScheduled
from flows.expressions import Expression
from flows.nodes.base import ActionNode, register
from flows.reader import Reader

if TYPE_CHECKING:
    from flows.engine import Run


class _FlowNode(ActionNode):
    def __init__(self, node_id: str, when: Expression | None, flow: str) -> None:
        super().__init__(node_id, when)
        self.flow = flow

    def flow_refs(self) -> Iterator[tuple[str, str]]:
        """Yield the flow named."""
        yield "flow", self.flow


@register
class StartFlowNode(_FlowNode):
    """``kind: start_flow`` - ask the host to start ``flow`` for the patient once this session ends."""

    kind = "start_flow"

    @classmethod
    def read(cls, reader: Reader, node_id: str) -> StartFlowNode:
        """Read ``flow``."""
        return cls(node_id, reader.expression("when"), reader.identifier("flow", required=True) or "flow")

    def act(self, run: Run) -> None:
        """Emit ``flow_started``."""
        run.emit(FlowStarted(self.flow))


@register
class ScheduleFollowupNode(_FlowNode):
    """``kind: schedule_followup`` - schedule ``flow`` to run ``in_days`` days from now."""

    kind = "schedule_followup"

    def __init__(self, node_id: str, when: Expression | None, flow: str, in_days: int | Expression,
                 result: str | None = None) -> None:
        super().__init__(node_id, when, flow)
        self.in_days = in_days
        self.result = result

    @classmethod
    def read(cls, reader: Reader, node_id: str) -> ScheduleFollowupNode:
        """Read ``flow``, ``in_days`` (1-3650, or an expression giving that) and ``result`` (optional)."""
        flow = reader.identifier("flow", required=True) or "flow"
        in_days: int | Expression
        if isinstance(reader.data.get("in_days"), str):
            in_days = reader.expression("in_days", required=True) or 1
        else:
            in_days = reader.integer("in_days", required=True, minimum=1, maximum=3650) or 1
        return cls(node_id, reader.expression("when"), flow, in_days, reader.identifier("result"))

    def results(self) -> Iterator[str]:
        """Yield the result that holds the follow-up's date, if the node names one."""
        if self.result is not None:
            yield self.result

    def action_expressions(self) -> Iterator[tuple[str, Expression, frozenset[str]]]:
        """Yield ``in_days`` when it is an expression."""
        if not isinstance(self.in_days, int):
            yield "in_days", self.in_days, frozenset()

    def act(self, run: Run) -> None:
        """Emit ``followup_scheduled`` (and the due date, ``YYYY-MM-DD``, as a result when ``result`` is set)."""
        days = self.in_days
        if not isinstance(days, int):
            ok, value = run.evaluate(self.id, days)
            if not ok:
                return
            whole = isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
            if not whole or not 1 <= value <= 3650:
                run.error(self.id, f"'in_days' gave {value!r}, not a whole number of days from 1 to 3650")
                return
            days = int(value)
        due_at = run.after_days(days)
        run.emit(FollowupScheduled(self.flow, days, due_at))
        if self.result is not None:
            run.save_value(self.id, self.result, due_at[:10])
