"""Bands: the category (and its wording) of a number, a score or a reading.

A question or a compute node may list bands; the first band that fits gives the result its category
and label. A band fits by ``upto`` (value <= upto), ``below`` (value < below) or ``when`` (an
expression in which ``value`` is the value); the last band may give none of them and catches the rest::

    bands:
      - {upto: 4, category: minimal, label: {zh: 无或极轻微, en: minimal}}
      - {upto: 9, category: mild, label: {zh: 轻度, en: mild}}
      - {category: severe, label: {zh: 重度, en: severe}}
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from flows.expressions import Expression
from flows.reader import Reader
from flows.text import LocalText


@dataclass(frozen=True, slots=True)
class Band:
    """One band: its category key, its wording, and when it fits."""

    category: str
    label: LocalText | None
    upto: float | None = None
    below: float | None = None
    when: Expression | None = None

    def is_catch_all(self) -> bool:
        """Return whether the band fits any value."""
        return self.upto is None and self.below is None and self.when is None


def read_bands(reader: Reader) -> tuple[Band, ...]:
    """Read the ``bands`` list, reporting bands that can never fit."""
    bands: list[Band] = []
    raw = reader.sequence("bands")
    for position, item in enumerate(raw, start=1):
        child = reader.child(item, f"bands[{position}]")
        category = child.identifier("category", required=True) or f"band_{position}"
        label = child.text("label")
        upto = child.number("upto")
        below = child.number("below")
        when = child.expression("when")
        child.finish()
        given = sum(1 for item in (upto, below, when) if item is not None)
        if given > 1:
            child.problem("give only one of 'upto', 'below' and 'when'")
        band = Band(category, label, upto, below, when)
        if band.is_catch_all() and position != len(raw):
            child.problem("only the last band may fit every value (give 'upto', 'below' or 'when')", "bad_range")
        bands.append(band)
    previous: float | None = None
    for band in bands:
        limit = band.upto if band.upto is not None else band.below
        if limit is not None:
            if previous is not None and limit < previous:
                reader.problem("bands must go up: each 'upto'/'below' at least the one before", "bad_range")
                break
            previous = limit
    return tuple(bands)


def band_texts(bands: tuple[Band, ...]) -> Iterator[tuple[str, LocalText]]:
    """Yield each band's label."""
    for position, band in enumerate(bands, start=1):
        if band.label is not None:
            yield f"bands[{position}].label", band.label


def band_expressions(bands: tuple[Band, ...]) -> Iterator[tuple[str, Expression]]:
    """Yield each band's ``when`` expression."""
    for position, band in enumerate(bands, start=1):
        if band.when is not None:
            yield f"bands[{position}].when", band.when
