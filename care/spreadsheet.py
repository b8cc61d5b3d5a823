"""Cells of the workbooks Careloop exports, made safe to open."""

from __future__ import annotations

#: What a spreadsheet program takes for the start of a formula (or of a DDE payload).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """``value`` as an exported cell: a text that a spreadsheet would run as a formula gets a leading
    apostrophe (shown as text, never evaluated); numbers, dates and empty cells stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
