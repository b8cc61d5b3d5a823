"""Reading the documented import templates: .xlsx (first sheet) or .csv (UTF-8), one record a row.

The first row is the header; each template names its columns in English and Chinese, and either
may be used. Rows are streamed (openpyxl read-only mode, csv reader), so memory stays flat however
long the file is. Row numbers are the spreadsheet's own (the header is row 1).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, BinaryIO
from xml.parsers import expat

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


# --- streaming from an open binary file (uploads, files read twice) ------------------------------
#
# ``read_rows`` above reads .xlsx through openpyxl, which builds a cell object per value: about
# 12,000 rows/s. Report import reads a million-row workbook twice (validate, then import), so the
# functions below read the sheet's XML directly with expat, in a single streaming pass (about ten
# times faster), and return the same Python values openpyxl gives: text, int, float, bool, and
# datetime for cells formatted as dates (ECMA-376 Part 1, 18.8.30 numFmt: built-in formats 14-22,
# 27-36, 45-47, 50-58 and custom codes with date or time tokens). DTDs are refused, so neither
# entity expansion nor external entities can be used against the reader.

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_BUILTIN_DATE_FORMATS = frozenset([*range(14, 23), *range(27, 37), *range(45, 48), *range(50, 59)])
_READ_CHUNK = 1 << 16


def read_rows_from(handle: BinaryIO, kind: str, template: Template, *, name: str = "upload") -> Iterator[Row]:
    """Stream the data rows of an .xlsx or .csv held in ``handle`` (``kind`` is ``xlsx`` or ``csv``).

    Rows are keyed by the template's column keys, numbered as in :func:`read_rows`; the reader
    never holds more than one row (and an .xlsx file's shared strings). ``name`` is used in errors.

    Raises:
        TemplateError: (while iterating) the content is not a readable workbook or UTF-8 CSV,
            or the header lacks required columns.
    """
    readers: dict[str, Callable[[BinaryIO, str], Iterator[list[Any]]]] = {
        "xlsx": _xlsx_rows_streamed,
        "csv": _csv_rows_from,
    }
    reader = readers.get(kind)
    if reader is None:
        raise TemplateError(f"{name}: only .xlsx and .csv files can be imported with this template")
    return _rows(template, reader(handle, name))


def _csv_rows_from(handle: BinaryIO, name: str) -> Iterator[list[Any]]:
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    try:
        yield from csv.reader(text)
    except UnicodeDecodeError as problem:
        raise TemplateError(f"{name} is not UTF-8 text (save it as CSV UTF-8)") from problem
    except csv.Error as problem:
        raise TemplateError(f"{name} is not valid CSV: {problem}") from problem
    finally:
        # Hand the caller its file back open; a caller that closed it first (it stopped reading
        # after an error) needs nothing back, and detaching from a closed file would fail.
        if not handle.closed:
            text.detach()


def _local(tag: str) -> str:
    """Drop the namespace of an expat name (``'<uri> c'`` -> ``'c'``)."""
    return tag.rpartition(" ")[2]


def _refuse_dtd(*_args: object) -> None:
    raise TemplateError("the workbook holds a DTD, which is not allowed")


def _expat(namespaces: bool = True) -> expat.XMLParserType:
    parser = expat.ParserCreate(namespace_separator=" ") if namespaces else expat.ParserCreate()
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    return parser


def _feed(parser: expat.XMLParserType, stream: IO[bytes], name: str) -> Iterator[None]:
    """Feed ``stream`` to ``parser`` chunk by chunk, yielding after each chunk."""
    try:
        while chunk := stream.read(_READ_CHUNK):
            parser.Parse(chunk, False)
            yield
        parser.Parse(b"", True)
        yield
    except expat.ExpatError as problem:
        raise TemplateError(f"{name} is not a readable .xlsx workbook (damaged XML: {problem})") from problem


def _parse_all(archive: zipfile.ZipFile, member: str, parser: expat.XMLParserType, name: str) -> None:
    with archive.open(member) as stream:
        for _ in _feed(parser, stream, name):
            pass


@dataclass
class _WorkbookParts:
    sheet: str
    shared_strings: str | None
    styles: str | None
    date1904: bool


def _workbook_parts(archive: zipfile.ZipFile, name: str) -> _WorkbookParts:
    """Find the first sheet, the shared strings and the styles (ECMA-376 Part 1, 12.3)."""
    names = set(archive.namelist())
    first_sheet: list[str] = []
    date1904 = [False]

    def workbook_start(tag: str, attrs: dict[str, str]) -> None:
        local = _local(tag)
        if local == "sheet" and not first_sheet:
            first_sheet.append(attrs.get(f"{_REL_NS} id", ""))
        elif local == "workbookPr":
            date1904[0] = attrs.get("date1904", "0").lower() in ("1", "true")

    targets: dict[str, str] = {}
    kinds: dict[str, str] = {}

    def rels_start(tag: str, attrs: dict[str, str]) -> None:
        if _local(tag) == "Relationship":
            target = attrs.get("Target", "")
            target = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            targets[attrs.get("Id", "")] = target
            kinds[attrs.get("Type", "").rpartition("/")[2]] = target

    if "xl/workbook.xml" in names:
        parser = _expat()
        parser.StartElementHandler = workbook_start
        _parse_all(archive, "xl/workbook.xml", parser, name)
    if "xl/_rels/workbook.xml.rels" in names:
        parser = _expat()
        parser.StartElementHandler = rels_start
        _parse_all(archive, "xl/_rels/workbook.xml.rels", parser, name)
    sheet = targets.get(first_sheet[0]) if first_sheet else None
    if sheet is None or sheet not in names:
        sheet = "xl/worksheets/sheet1.xml"
    if sheet not in names:
        raise TemplateError(f"{name} is not a readable .xlsx workbook (no worksheet)")
    shared = kinds.get("sharedStrings", "xl/sharedStrings.xml")
    styles = kinds.get("styles", "xl/styles.xml")
    return _WorkbookParts(sheet, shared if shared in names else None, styles if styles in names else None, date1904[0])


def _shared_strings(archive: zipfile.ZipFile, member: str, name: str) -> list[str]:
    strings: list[str] = []
    parts: list[str] = []
    state = {"text": False, "phonetic": 0}

    def start(tag: str, _attrs: dict[str, str]) -> None:
        local = _local(tag)
        if local == "si":
            parts.clear()
        elif local == "t":
            state["text"] = True
        elif local == "rPh":
            state["phonetic"] += 1

    def end(tag: str) -> None:
        local = _local(tag)
        if local == "si":
            strings.append("".join(parts))
        elif local == "t":
            state["text"] = False
        elif local == "rPh":
            state["phonetic"] -= 1

    def text(data: str) -> None:
        if state["text"] and not state["phonetic"]:
            parts.append(data)

    parser = _expat()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    _parse_all(archive, member, parser, name)
    return strings


def _is_date_code(code: str) -> bool:
    """True when a custom number format shows a date or time (tokens outside quotes and brackets)."""
    plain = re.sub(r'"[^"]*"|\[[^\]]*\]|\\.', "", code).lower()
    return any(token in plain for token in ("y", "d", "h", "s")) or re.search(r"(^|[^a-z])m", plain) is not None


def _date_styles(archive: zipfile.ZipFile, member: str, name: str) -> frozenset[int]:
    custom: dict[int, str] = {}
    formats: list[int] = []
    state = {"xfs": False}

    def start(tag: str, attrs: dict[str, str]) -> None:
        local = _local(tag)
        if local == "numFmt":
            custom[int(attrs.get("numFmtId", "0"))] = attrs.get("formatCode", "")
        elif local == "cellXfs":
            state["xfs"] = True
        elif local == "xf" and state["xfs"]:
            formats.append(int(attrs.get("numFmtId", "0")))

    def end(tag: str) -> None:
        if _local(tag) == "cellXfs":
            state["xfs"] = False

    parser = _expat()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    _parse_all(archive, member, parser, name)
    return frozenset(
        index
        for index, number in enumerate(formats)
        if number in _BUILTIN_DATE_FORMATS or (number in custom and _is_date_code(custom[number]))
    )


def _column_index(reference: str) -> int:
    index = 0
    for char in reference:
        if not char.isalpha():
            break
        index = index * 26 + (ord(char.upper()) - 64)
    return index - 1


def _excel_datetime(serial: float, date1904: bool) -> datetime:
    """Convert an Excel serial day to a datetime (the 1900 system counts a 29 Feb 1900 that never was)."""
    if date1904:
        return datetime(1904, 1, 1) + timedelta(days=serial)
    return (datetime(1899, 12, 31) if serial < 60 else datetime(1899, 12, 30)) + timedelta(days=serial)


def _number(raw: str) -> int | float:
    if raw.lstrip("-").isdigit():
        return int(raw)
    return float(raw)


@dataclass
class _SheetState:
    shared: list[str]
    date_styles: frozenset[int]
    date1904: bool
    rows: list[list[Any]] = field(default_factory=list)
    row: list[Any] = field(default_factory=list)
    row_number: int = 0
    column: int = 0
    kind: str | None = None
    style: int = 0
    text: list[str] = field(default_factory=list)
    collecting: bool = False
    phonetic: int = 0
    has_value: bool = False

    def value(self) -> Any:
        if not self.has_value:
            return None
        pieces = self.text
        raw = pieces[0] if len(pieces) == 1 else "".join(pieces)
        kind = self.kind
        if kind == "s":
            return self.shared[int(raw)]
        if kind in ("inlineStr", "str", "e"):
            return raw
        if kind == "b":
            return raw.strip() in ("1", "true")
        if kind == "d":
            return datetime.fromisoformat(raw)
        if not raw.strip():
            return None
        number = _number(raw.strip())
        if self.style in self.date_styles:
            return _excel_datetime(float(number), self.date1904)
        return number


def _sheet_handlers(state: _SheetState, name: str) -> tuple[Callable[..., None], ...]:
    # Element names are looked up once each in ``local_of`` (prefixed or not), then dispatched;
    # the handlers run once per element of a million-row sheet, so they avoid calls where they can.
    local_of: dict[str, str] = {}
    column_of: dict[str, int] = {}
    digits = "0123456789"

    def local(tag: str) -> str:
        found = local_of[tag] = _local(tag.replace(":", " "))
        return found

    def start(tag: str, attrs: dict[str, str]) -> None:
        kind = local_of.get(tag) or local(tag)
        if kind == "c":
            reference = attrs.get("r")
            if reference:
                letters = reference.rstrip(digits)
                column = column_of.get(letters)
                if column is None:
                    column = column_of[letters] = _column_index(letters)
                state.column = column
            else:
                state.column += 1
            state.kind = attrs.get("t")
            style = attrs.get("s")
            state.style = int(style) if style else 0
            state.text = []
            state.has_value = False
        elif kind == "v" or kind == "t":
            state.collecting = True
            state.has_value = True
        elif kind == "row":
            number = attrs.get("r")
            target = int(number) if number else state.row_number + 1
            while state.row_number < target - 1:
                state.row_number += 1
                state.rows.append([])
            state.row_number = target
            state.row = []
            state.column = -1
        elif kind == "rPh":
            state.phonetic += 1

    def end(tag: str) -> None:
        kind = local_of.get(tag) or local(tag)
        if kind == "c":
            try:
                value = state.value()
            except (ValueError, IndexError, OverflowError) as problem:
                raise TemplateError(f"{name}: row {state.row_number} holds an unreadable cell") from problem
            if value is not None:
                row = state.row
                missing = state.column - len(row)
                if missing > 0:
                    row.extend([None] * missing)
                row.append(value)
        elif kind == "v" or kind == "t":
            state.collecting = False
        elif kind == "row":
            state.rows.append(state.row)
        elif kind == "rPh":
            state.phonetic -= 1

    def text(data: str) -> None:
        if state.collecting and not state.phonetic:
            state.text.append(data)

    return start, end, text


def _xlsx_rows_streamed(handle: BinaryIO, name: str) -> Iterator[list[Any]]:
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError) as problem:
        raise TemplateError(f"{name} is not a readable .xlsx workbook") from problem
    with archive:
        try:
            parts = _workbook_parts(archive, name)
            shared = _shared_strings(archive, parts.shared_strings, name) if parts.shared_strings else []
            styles = _date_styles(archive, parts.styles, name) if parts.styles else frozenset()
            state = _SheetState(shared=shared, date_styles=styles, date1904=parts.date1904)
            parser = _expat(namespaces=False)
            parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = _sheet_handlers(
                state, name
            )
            with archive.open(parts.sheet) as stream:
                for _ in _feed(parser, stream, name):
                    yield from state.rows
                    state.rows.clear()
        except (zipfile.BadZipFile, KeyError, OSError, ValueError, EOFError) as problem:
            if isinstance(problem, TemplateError):
                raise
            raise TemplateError(f"{name} is not a readable .xlsx workbook ({type(problem).__name__})") from problem


def cell_text(raw: Any) -> str:
    """A cell (or form value) as text: whole numbers without ``.0`` (an id typed as a number), dates in ISO form."""
    if raw is None:
        return ""
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, datetime):
        return raw.date().isoformat()
    if isinstance(raw, date):
        return raw.isoformat()
    return str(raw).strip()
