"""Problems found in flow definitions, and the error that carries them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def printable(text: str) -> str:
    """Return ``text`` with every character that cannot be shown on one line escaped (``\\n``, ``\\x1f``, ``\\udc80``).

    Flow files may hold any text (keys with line breaks, control characters, lone surrogates from YAML
    escapes); a problem is still one line, and printing it never fails on a UTF-8 terminal.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a flow definition.

    ``file`` is the path (or ``"<string>"``), ``node_id`` the node concerned (``None`` for the flow
    as a whole), ``reason`` one sentence for the person who wrote the flow, and ``kind`` a stable
    machine key (``unknown_target``, ``unreachable_node``, ``missing_translation``...). The node id and
    the reason are kept printable on one line (see :func:`printable`); ``file`` is the path as given,
    and escaped when shown.
    """

    file: str
    node_id: str | None
    reason: str
    kind: str = "schema"

    def __post_init__(self) -> None:
        if self.node_id is not None:
            object.__setattr__(self, "node_id", printable(self.node_id))
        object.__setattr__(self, "reason", printable(self.reason))

    def __str__(self) -> str:
        return f"{printable(self.file)}:{self.node_id or '-'}: {self.reason}"

    def sort_key(self) -> tuple[str, str, str, str]:
        """Order problems by file, then node, then kind."""
        return (self.file, self.node_id or "", self.kind, self.reason)


class FlowValidationError(ValueError):
    """Raise when a flow definition (or a library of them) has problems; carries every problem found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(problems, key=Problem.sort_key)
        count = len(self.problems)
        first = str(self.problems[0]) if self.problems else "no details"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"invalid flow definition: {first}{more}")
