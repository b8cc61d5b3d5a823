"""``kind: message`` - say something; no answer expected.

Example::

    - id: intro
      kind: message
      text:
        zh: 您好！下面有9个简单的问题，大约需要3分钟。
        en: Hello! Here are 9 short questions. It takes about 3 minutes.
      when: "age >= 65"          # optional: say it only when the expression is true
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from flows.expressions import Expression
from flows.nodes.base import Node, register
from flows.reader import Reader
from flows.text import LocalText

if TYPE_CHECKING:
    from flows.engine import Run


@register
class MessageNode(Node):
    """Send ``text`` to the patient (only ``when`` true, if given)."""

    kind = "message"

    def __init__(self, node_id: str, text: LocalText, when: Expression | None = None) -> None:
        super().__init__(node_id)
        self.text = text
        self.when = when

    @classmethod
    def read(cls, reader: Reader, node_id: str) -> MessageNode:
        """Read ``text`` and ``when``."""
        return cls(node_id, reader.text("text", required=True) or LocalText.of({}), reader.expression("when"))

    def texts(self) -> Iterator[tuple[str, LocalText]]:
        """Yield the message."""
        yield "text", self.text

    def expressions(self) -> Iterator[tuple[str, Expression, frozenset[str]]]:
        """Yield ``when``."""
        if self.when is not None:
            yield "when", self.when, frozenset()

    def run(self, run: Run) -> str | None:
        """Say the message."""
        if self.when is None or run.is_true(self.id, self.when):
            run.say(self.id, self.text)
        return self.next_id
