"""Errors the record's services raise, each with a reason a person can act on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class CareError(Exception):
    """Base of the record's service errors."""


@dataclass(frozen=True)
class Problem:
    """One bad field: which, and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class ValidationFailedError(CareError):
    """The input has one or more bad fields; nothing was changed."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(problem) for problem in self.problems) or "invalid input")


class NotFoundError(CareError):
    """The record asked for does not exist (or was erased)."""


class ConflictError(CareError):
    """The change conflicts with the record's current state."""
