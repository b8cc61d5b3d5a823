"""The contract of a node kind, and the registry of kinds.

A flow is a list of nodes. Each has an ``id`` (snake_case, unique in the flow) and a ``kind``; most
have a ``next`` (the id of the node that follows; when left out, the next node in the list, and after
the last node the flow ends as completed). Nodes that do not wait for the patient run one after the
other within a step; a question waits for the patient's next message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from flows.expressions import Expression
from flows.reader import Reader
from flows.text import LocalText

if TYPE_CHECKING:
    from flows.engine import Run


class Node:
    """Base of every node kind."""

    kind: ClassVar[str] = ""
    #: Whether the node waits for the patient (questions).
    waits: ClassVar[bool] = False
    #: Whether the node has a ``next`` field (end and branch do not).
    has_next: ClassVar[bool] = True

    def __init__(self, node_id: str) -> None:
        self.id = node_id
        self.next_id: str | None = None
        self.explicit_next = False

    @classmethod
    def read(cls, reader: Reader, node_id: str) -> Node:
        """Return the node read from its mapping (``id``, ``kind`` and ``next`` are read by the caller)."""
        raise NotImplementedError

    def targets(self) -> Iterator[tuple[str, str]]:
        """Yield ``(field, node id)`` for every node this one names explicitly."""
        if self.explicit_next and self.next_id is not None:
            yield "next", self.next_id

    def successors(self) -> Iterator[str]:
        """Yield every node that may come after this one (named or by falling through)."""
        if self.next_id is not None:
            yield self.next_id

    def results(self) -> Iterator[str]:
        """Yield the names of the results this node saves."""
        return iter(())

    def texts(self) -> Iterator[tuple[str, LocalText]]:
        """Yield ``(field, text)`` for every text shown to the patient or to staff."""
        return iter(())

    def expressions(self) -> Iterator[tuple[str, Expression, frozenset[str]]]:
        """Yield ``(field, expression, extra names it may use)``."""
        return iter(())

    def flow_refs(self) -> Iterator[tuple[str, str]]:
        """Yield ``(field, flow id)`` for every other flow this node names."""
        return iter(())

    def run(self, run: Run) -> str | None:
        """Do the node's work and return the next node's id (None: the flow ends)."""
        raise NotImplementedError


NODE_KINDS: dict[str, type[Node]] = {}


def register(cls: type[Node]) -> type[Node]:
    """Register a node kind under its ``kind``."""
    NODE_KINDS[cls.kind] = cls
    return cls


class ActionNode(Node):
    """A node that does one thing to the record, optionally only ``when`` an expression is true."""

    def __init__(self, node_id: str, when: Expression | None) -> None:
        super().__init__(node_id)
        self.when = when

    def expressions(self) -> Iterator[tuple[str, Expression, frozenset[str]]]:
        """Yield ``when`` and the action's own expressions."""
        if self.when is not None:
            yield "when", self.when, frozenset()
        yield from self.action_expressions()

    def action_expressions(self) -> Iterator[tuple[str, Expression, frozenset[str]]]:
        """Yield the action's own expressions."""
        return iter(())

    def run(self, run: Run) -> str | None:
        """Act unless ``when`` is false, then go on."""
        if self.when is None or run.is_true(self.id, self.when):
            self.act(run)
        return self.next_id

    def act(self, run: Run) -> None:
        """Do the action."""
        raise NotImplementedError
