"""``kind: start_flow`` and ``kind: schedule_followup`` - lead on to another flow.

Example::

    - {id: then_gad7, kind: start_flow, flow: gad7}                  # once this session has ended
    - {id: again, kind: schedule_followup, flow: phq9, in_days: 14}  # a follow-up in 14 days

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

    def __init__(self, node_id: str, when: Expression | None, flow: str, in_days: int) -> None:
        super().__init__(node_id, when, flow)
        self.in_days = in_days

    @classmethod
    def read(cls, reader: Reader, node_id: str) -> ScheduleFollowupNode:
        """Read ``flow`` and ``in_days`` (1-3650)."""
        flow = reader.identifier("flow", required=True) or "flow"
        in_days = reader.integer("in_days", required=True, minimum=1, maximum=3650) or 1
        return cls(node_id, reader.expression("when"), flow, in_days)

    def act(self, run: Run) -> None:
        """Emit ``followup_scheduled``."""
        run.emit(FollowupScheduled(self.flow, self.in_days, run.after_days(self.in_days)))
