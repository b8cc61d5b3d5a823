"""``kind: end`` - end the conversation, optionally with a last message.

Example::

    - id: done
      kind: end
      status: completed            # completed (default), skipped or handed_off
      text: {zh: 谢谢您！祝您身体健康。, en: Thank you! Take care.}
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from flows.nodes.base import Node, register
from flows.reader import Reader
from flows.text import LocalText

if TYPE_CHECKING:
    from flows.engine import Run

STATUSES = ("completed", "skipped", "handed_off")


@register
class EndNode(Node):
    """Say the last message (if any) and end with ``status``."""

    kind = "end"
    has_next = False

    def __init__(self, node_id: str, status: str, text: LocalText | None) -> None:
        super().__init__(node_id)
        self.status = status
        self.text = text

    @classmethod
    def read(cls, reader: Reader, node_id: str) -> EndNode:
        """Read ``status`` and ``text``."""
        status = reader.one_of("status", STATUSES, default="completed") or "completed"
        return cls(node_id, status, reader.text("text"))

    def successors(self) -> Iterator[str]:
        """Yield nothing: the flow ends here."""
        return iter(())

    def texts(self) -> Iterator[tuple[str, LocalText]]:
        """Yield the last message."""
        if self.text is not None:
            yield "text", self.text

    def run(self, run: Run) -> str | None:
        """End the session."""
        if self.text is not None:
            run.say(self.id, self.text)
        run.end(self.status)
        return None
