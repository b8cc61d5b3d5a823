"""Reading the documented import templates: .xlsx (first sheet) or .csv (UTF-8), one record a row.

The first row is the header; each template names its columns in English and Chinese, and either
may be used. Rows are streamed (openpyxl read-only mode, csv reader), so memory stays flat however
long the file is. Row numbers are the spreadsheet's own (the header is row 1).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_CELL_CHARS = 4096


class TemplateError(ValueError):
    """The file as a whole cannot be read as the template (wrong type, missing columns)."""


@dataclass(frozen=True)
class Column:
    key: str
    english: str
    chinese: str
    required: bool


@dataclass(frozen=True)
class Template:
    name: str
    columns: tuple[Column, ...]

    def header_map(self) -> dict[str, str]:
        mapping: dict[str, str] = {}
        for column in self.columns:
            mapping[_header_key(column.english)] = column.key
            mapping[_header_key(column.chinese)] = column.key
            mapping[_header_key(column.key)] = column.key
        return mapping


@dataclass(frozen=True)
class Row:
    number: int
    values: Mapping[str, Any]


def _header_key(text: str) -> str:
    return "".join(str(text).split()).lower().replace("_", "").replace("-", "")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if len(value) > MAX_CELL_CHARS:
            value = value[:MAX_CELL_CHARS]
        return value or None
    return value


def _resolve_header(template: Template, header: list[Any]) -> dict[int, str]:
    mapping = template.header_map()
    positions: dict[int, str] = {}
    for index, cell in enumerate(header):
        if cell is None:
            continue
        key = mapping.get(_header_key(str(cell)))
        if key is not None and key not in positions.values():
            positions[index] = key
    missing = [c for c in template.columns if c.required and c.key not in positions.values()]
    if missing:
        names = ", ".join(f"{c.english} ({c.chinese})" for c in missing)
        raise TemplateError(f"the header row lacks required column(s): {names}")
    return positions


def _rows(template: Template, raw_rows: Iterator[list[Any]]) -> Iterator[Row]:
    try:
        header = next(raw_rows)
    except StopIteration as empty:
        raise TemplateError("the file is empty (no header row)") from empty
    positions = _resolve_header(template, header)
    for number, raw in enumerate(raw_rows, start=2):
        values = {key: _clean(raw[index]) if index < len(raw) else None for index, key in positions.items()}
        if all(value is None for value in values.values()):
            continue
        yield Row(number, values)


def _xlsx_rows(path: Path) -> Iterator[list[Any]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, KeyError, OSError, ValueError) as problem:
        raise TemplateError(f"{path.name} is not a readable .xlsx workbook") from problem
    except Exception as problem:  # zipfile.BadZipFile and friends from a damaged file
        raise TemplateError(f"{path.name} is not a readable .xlsx workbook ({type(problem).__name__})") from problem
    try:
        sheet = workbook.worksheets[0]
        for row in sheet.iter_rows(values_only=True):
            yield list(row)
    finally:
        workbook.close()


def _csv_rows(path: Path) -> Iterator[list[Any]]:
    try:
        handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed in finally
    except OSError as problem:
        raise TemplateError(f"{path.name} cannot be opened: {problem.strerror}") from problem
    try:
        reader = csv.reader(handle)
        try:
            yield from reader
        except UnicodeDecodeError as problem:
            raise TemplateError(f"{path.name} is not UTF-8 text (save it as CSV UTF-8)") from problem
        except csv.Error as problem:
            raise TemplateError(f"{path.name} is not valid CSV: {problem}") from problem
    finally:
        handle.close()


def read_rows(path: Path, template: Template) -> Iterator[Row]:
    """Stream the data rows of ``path`` as dicts keyed by the template's column keys."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        return _rows(template, _xlsx_rows(path))
    if suffix == ".csv":
        return _rows(template, _csv_rows(path))
    raise TemplateError(f"{path.name}: only .xlsx and .csv files can be imported with this template")
