"""Point tables of the questionnaire-style scores (FINDRISC, CDRS).

A table is a list of ``(interval, points)`` rows that must cover the whole line without gaps or
overlaps (checked when the table is built), so every value gets exactly one row.
"""

from __future__ import annotations

from dataclasses import dataclass

from care.clinical.ranges import Interval, check_cover


@dataclass(frozen=True)
class PointTable:
    """Rows ``(interval, points)`` covering the whole line, lowest first."""

    what: str
    rows: tuple[tuple[Interval, int], ...]

    def __post_init__(self) -> None:
        check_cover([interval for interval, _ in self.rows], f"point table {self.what}")

    def points(self, value: float) -> int:
        """Return the points of the row containing ``value``."""
        return next(points for interval, points in self.rows if interval.contains(value))


def below(upper: float) -> Interval:
    """``value < upper``."""
    return Interval(upper=upper)


def span(lower: float, upper: float) -> Interval:
    """``lower <= value < upper``."""
    return Interval(lower=lower, upper=upper)


def closed(lower: float, upper: float) -> Interval:
    """``lower <= value <= upper`` (a range printed with both ends included)."""
    return Interval(lower=lower, upper=upper, upper_inclusive=True)


def above(lower: float) -> Interval:
    """``value > lower``."""
    return Interval(lower=lower, lower_inclusive=False)


def at_least(lower: float) -> Interval:
    """``value >= lower``."""
    return Interval(lower=lower)
