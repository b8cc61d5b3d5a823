"""Read one YAML mapping of a flow file, recording every problem instead of stopping at the first."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from flows.expressions import Expression, ExpressionError, compile_expression
from flows.problems import Problem
from flows.text import LANGUAGES, LocalText

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_MISSING = object()


class Reader:
    """Typed access to the fields of one mapping (the flow, a node, a choice...), collecting problems.

    Every getter records a problem and returns a safe default when a field is missing or of the wrong
    type, so that one pass over a file reports everything. :meth:`finish` reports fields that nothing
    read (usually a typo such as ``nxt:``).
    """

    def __init__(
        self,
        data: object,
        *,
        file: str,
        node_id: str | None,
        problems: list[Problem],
        where: str = "",
    ) -> None:
        self.file = file
        self.node_id = node_id
        self.problems = problems
        self.where = where
        self._read: set[str] = set()
        if isinstance(data, Mapping):
            self.data: Mapping[str, Any] = data
        else:
            self.data = {}
            self.problem(f"expected a mapping of fields, got {_kind(data)}")

    # -- reporting -----------------------------------------------------------------------------

    def problem(self, reason: str, kind: str = "schema") -> None:
        """Record a problem at this mapping."""
        prefix = f"{self.where}: " if self.where else ""
        self.problems.append(Problem(self.file, self.node_id, prefix + reason, kind))

    def child(self, data: object, where: str) -> Reader:
        """Return a reader for a nested mapping, reporting under the same node."""
        label = f"{self.where}.{where}" if self.where else where
        return Reader(data, file=self.file, node_id=self.node_id, problems=self.problems, where=label)

    def ignore_rest(self) -> None:
        """Mark every field read (after a problem that makes the rest meaningless)."""
        self._read.update(self.data)

    def finish(self) -> None:
        """Report every field that was not read."""
        for key in self.data:
            if key not in self._read:
                self.problem(f"unknown field '{key}'")

    # -- getters ------------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        """Return whether ``key`` is present (and mark it read)."""
        self._read.add(key)
        return key in self.data and self.data[key] is not None

    def raw(self, key: str, default: Any = None) -> Any:
        """Return the value under ``key`` as written."""
        self._read.add(key)
        value = self.data.get(key, default)
        return default if value is None else value

    def string(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        """Return a text field."""
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.problem(f"'{key}' must be a text, got {_kind(value)}")
            return default
        return str(value)

    def identifier(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        """Return a snake_case name (``[a-z][a-z0-9_]*``)."""
        value = self.string(key, required=required, default=None)
        if value is None:
            return default
        if not IDENTIFIER.match(value):
            self.problem(f"'{key}' must be a snake_case name (a-z, 0-9, _), got {value!r}")
            return default
        return value

    def integer(
        self,
        key: str,
        *,
        required: bool = False,
        default: int | None = None,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        """Return a whole number within the given bounds."""
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"'{key}' must be a whole number, got {_kind(value)}")
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            low = "" if minimum is None else str(minimum)
            high = "" if maximum is None else str(maximum)
            self.problem(f"'{key}' must be between {low} and {high}, got {value}", "bad_range")
            return default
        return value

    def number(self, key: str, *, required: bool = False, default: float | None = None) -> float | None:
        """Return a number."""
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(f"'{key}' must be a number, got {_kind(value)}")
            return default
        return float(value)

    def boolean(self, key: str, *, default: bool = False) -> bool:
        """Return a true/false field."""
        value = self._get(key, False)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.problem(f"'{key}' must be true or false, got {_kind(value)}")
            return default
        return value

    def one_of(
        self, key: str, options: Sequence[str], *, default: str | None = None, required: bool = False
    ) -> str | None:
        """Return a text that must be one of ``options``."""
        value = self.string(key, required=required)
        if value is None:
            return default
        if value not in options:
            self.problem(f"'{key}' must be one of {', '.join(options)}, got {value!r}")
            return default
        return value

    def text(self, key: str, *, required: bool = False) -> LocalText | None:
        """Return a text given per language: ``{zh: ..., en: ...}``."""
        value = self._get(key, required)
        if value is _MISSING:
            return None
        return self.local_text(value, key)

    def local_text(self, value: object, key: str) -> LocalText | None:
        """Return ``value`` read as a text per language."""
        if isinstance(value, str):
            self.problem(f"'{key}' must give the text per language, e.g. {{zh: ..., en: ...}}", "missing_translation")
            return LocalText.of({LANGUAGES[0]: value})
        if not isinstance(value, Mapping):
            self.problem(f"'{key}' must be a mapping of language to text, got {_kind(value)}")
            return None
        clean: dict[str, str] = {}
        for lang, item in value.items():
            if lang not in LANGUAGES:
                self.problem(f"'{key}' has an unknown language {lang!r} (known: {', '.join(LANGUAGES)})")
                continue
            if not isinstance(item, str):
                self.problem(f"'{key}.{lang}' must be a text, got {_kind(item)}")
                continue
            clean[str(lang)] = item
        return LocalText.of(clean)

    def expression(self, key: str, *, required: bool = False) -> Expression | None:
        """Return a checked expression (bad ones are reported as ``bad_expression``)."""
        value = self._get(key, required)
        if value is _MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.problem(f"'{key}' must be an expression, got {_kind(value)}", "bad_expression")
            return None
        try:
            return compile_expression(str(value))
        except ExpressionError as failure:
            self.problem(f"bad expression in '{key}' ({value!s:.60}): {failure}", "bad_expression")
            return None

    def sequence(self, key: str, *, required: bool = False) -> list[Any]:
        """Return a list field."""
        value = self._get(key, required)
        if value is _MISSING:
            return []
        if not isinstance(value, list):
            self.problem(f"'{key}' must be a list, got {_kind(value)}")
            return []
        return value

    def mapping(self, key: str, *, required: bool = False) -> Mapping[str, Any] | None:
        """Return a nested mapping as written."""
        value = self._get(key, required)
        if value is _MISSING:
            return None
        if not isinstance(value, Mapping):
            self.problem(f"'{key}' must be a mapping, got {_kind(value)}")
            return None
        return value

    def _get(self, key: str, required: bool) -> Any:
        self._read.add(key)
        value = self.data.get(key, _MISSING)
        if value is None:
            value = _MISSING
        if value is _MISSING and required:
            self.problem(f"'{key}' is required")
        return value


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__
