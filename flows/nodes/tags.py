"""``kind: add_tag`` and ``kind: remove_tag`` - change the patient's tags.

Example::

    - {id: tag_positive, kind: add_tag, tag: phq9_positive, when: "phq9_total >= 10"}
    - {id: untag, kind: remove_tag, tag: phq9_positive, when: "phq9_total < 10"}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.events import TagAdded, TagRemoved
from flows.expressions import Expression
from flows.nodes.base import ActionNode, register
from flows.reader import Reader

if TYPE_CHECKING:
    from flows.engine import Run


class _TagNode(ActionNode):
    def __init__(self, node_id: str, when: Expression | None, tag: str) -> None:
        super().__init__(node_id, when)
        self.tag = tag

    @classmethod
    def read(cls, reader: Reader, node_id: str) -> _TagNode:
        """Read ``tag``."""
        return cls(node_id, reader.expression("when"), reader.identifier("tag", required=True) or "tag")


@register
class AddTagNode(_TagNode):
    """``kind: add_tag`` - add ``tag`` to the patient."""

    kind = "add_tag"

    def act(self, run: Run) -> None:
        """Add the tag."""
        run.change_tag(self.tag, added=True)
        run.emit(TagAdded(self.tag))


@register
class RemoveTagNode(_TagNode):
    """``kind: remove_tag`` - remove ``tag`` from the patient."""

    kind = "remove_tag"

    def act(self, run: Run) -> None:
        """Remove the tag."""
        run.change_tag(self.tag, added=False)
        run.emit(TagRemoved(self.tag))
