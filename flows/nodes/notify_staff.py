"""``kind: notify_staff`` - put a task in the staff work queue.

Example::

    - id: alert
      kind: notify_staff
      priority: urgent                 # urgent (now), high (today) or normal
      reason: phq9_item9_positive      # a stable key for the work queue
      include: [phq9_q9, phq9_total]   # results copied into the task
      due_in_hours: 1                  # optional: the task's due time (details.due_at), hours from now
      note: {zh: PHQ-9第9题阳性，请立即联系患者。, en: PHQ-9 item 9 positive. Call the patient now.}
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from flows.events import PRIORITIES
from flows.expressions import Expression
from flows.nodes.base import ActionNode, register
from flows.reader import Reader
from flows.text import LocalText

if TYPE_CHECKING:
    from flows.engine import Run


@register
class NotifyStaffNode(ActionNode):
    """``kind: notify_staff`` - create a staff task with ``priority``, ``reason``, a ``note`` and results."""

    kind = "notify_staff"

    def __init__(
        self,
        node_id: str,
        when: Expression | None,
        priority: str,
        reason: str,
        note: LocalText,
        include: tuple[str, ...],
        due_in_hours: int | None = None,
    ) -> None:
        super().__init__(node_id, when)
        self.priority = priority
        self.reason = reason
        self.note = note
        self.include = include
        self.due_in_hours = due_in_hours

    @classmethod
    def read(cls, reader: Reader, node_id: str) -> NotifyStaffNode:
        """Read ``priority``, ``reason``, ``note``, ``include`` and ``due_in_hours`` (0-8760)."""
        priority = reader.one_of("priority", PRIORITIES, required=True) or "normal"
        reason = reader.identifier("reason", required=True) or "flow"
        note = reader.text("note", required=True) or LocalText.of({})
        include: list[str] = []
        for item in reader.sequence("include"):
            if isinstance(item, str):
                include.append(item)
            else:
                reader.problem("'include' must list result names")
        due = reader.integer("due_in_hours", minimum=0, maximum=8760)
        return cls(node_id, reader.expression("when"), priority, reason, note, tuple(include), due)

    def texts(self) -> Iterator[tuple[str, LocalText]]:
        """Yield the staff note."""
        yield "note", self.note

    def act(self, run: Run) -> None:
        """Notify staff."""
        extra = None if self.due_in_hours is None else {"due_at": run.after_hours(self.due_in_hours)}
        run.notify(self.id, self.priority, self.reason, self.note, self.include, extra)
