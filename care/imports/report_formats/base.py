"""What every report format turns a file into: complete reports of converted results, with problems.

A format reads its source and yields :class:`ParsedReport` objects, each holding *all* of one
report's results (so the importer can write it whole or not at all), the identifiers of its patient
as given, and the problems found, each naming where (row, segment or entry), which column or field,
and why. Formats are pure: they never touch the database. Codes, units and plausibility are
checked with :func:`care.clinical.codes.resolve`; values are converted to the canonical unit and
coded with the indicator's canonical LOINC code (clinical-spec.md section 8).

A format registers itself under its name (STYLE.md habit 5)::

    @register
    class Hl7v2Format(ReportFormat):
        name = "hl7v2"
        suffixes = (".hl7",)
        media_types = ("application/hl7-v2", "x-application/hl7-v2+er7")
"""

from __future__ import annotations

import functools
import io
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, ClassVar, Literal, TypeVar

from care.clinical import codes, units
from care.identifiers import IdentifierError, normalize_card_no, normalize_id_number

#: A moment of a result: a day, a local time of the patient (naive), or an exact time (aware).
Moment = date | datetime
PatientKind = Literal["card_no", "id_number"]
EARLIEST_DATE = date(1900, 1, 1)


class ReportFileError(ValueError):
    """The source as a whole cannot be read in its format (damaged, wrong type, missing columns)."""


@dataclass(frozen=True)
class ReportProblem:
    """One reason a report is refused: where, which column or field, and why."""

    where: str
    column: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}, {self.column}: {self.reason}"

    def to_dict(self) -> dict[str, str]:
        """Return ``{"where", "column", "reason"}`` (the HTTP endpoint's 422 body)."""
        return {"where": self.where, "column": self.column, "reason": self.reason}


@dataclass(frozen=True)
class PatientRef:
    """An identifier of the report's patient as the source gives it (normalised)."""

    kind: PatientKind
    value: str
    where: str
    column: str


@dataclass(frozen=True)
class ResultLine:
    """One result, converted: the indicator's canonical LOINC code, value and unit."""

    code: str
    value: float
    unit: str
    effective: Moment
    where: str


@dataclass
class ParsedReport:
    """One report of a source, complete: every result, or the problems that refuse it."""

    report_ref: str | None
    where: str
    patients: list[PatientRef] = field(default_factory=list)
    report_date: Moment | None = None
    results: list[ResultLine] = field(default_factory=list)
    problems: list[ReportProblem] = field(default_factory=list)
    #: rows (segments, entries) the report is made of
    rows: int = 0
    #: rows that carry no importable result (not final, no value) and were left out
    skipped_rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def refuse(self, where: str, column: str, reason: str) -> None:
        """Add a problem (the report will not be imported)."""
        self.problems.append(ReportProblem(where, column, reason))

    def add_result(self, line: ResultLine, moment: Moment) -> None:
        """Add a converted result; the report's date is that of its earliest result."""
        self.results.append(line)
        if self.report_date is None or day_of(moment) < day_of(self.report_date):
            self.report_date = moment


@dataclass(frozen=True)
class ParseContext:
    """What parsing needs to know about now: today's date, to refuse results dated in the future."""

    today: date

    def check_day(self, day: date) -> str | None:
        """Return why ``day`` cannot be a result's date, or None."""
        if day < EARLIEST_DATE:
            return f"{day.isoformat()} is before {EARLIEST_DATE.year}"
        # One day of slack: a sender east of the clinic may already be on tomorrow's date.
        if day > self.today + timedelta(days=1):
            return f"{day.isoformat()} is in the future"
        return None


class ReportSource:
    """Something to import: a file on disk or bytes received over HTTP; it can be read more than once."""

    def __init__(self, name: str, *, path: Path | None = None, data: bytes | None = None) -> None:
        if (path is None) == (data is None):
            raise ValueError("give either a path or the data")
        self.name = name
        self.path = path
        self.data = data

    @classmethod
    def from_path(cls, path: Path) -> ReportSource:
        return cls(path.name, path=path)

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> ReportSource:
        return cls(name, data=data)

    def open(self) -> AbstractContextManager[BinaryIO]:
        """Open the content for reading, from the start."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None  # noqa: S101 - one of the two is set (checked in __init__)
        try:
            return self.path.open("rb")
        except OSError as problem:
            raise ReportFileError(f"{self.name} cannot be opened: {problem.strerror}") from problem


class ReportFormat(ABC):
    """A source format of checkup reports; subclasses register themselves with :func:`register`."""

    name: ClassVar[str]
    title: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]
    media_types: ClassVar[tuple[str, ...]]

    @abstractmethod
    def reports(self, source: ReportSource, context: ParseContext) -> Iterator[ParsedReport]:
        """Yield the source's reports, each complete.

        Raises:
            ReportFileError: (while iterating) the source cannot be read in this format at all.
        """


F = TypeVar("F", bound=type[ReportFormat])

#: format name -> format.
FORMATS: dict[str, ReportFormat] = {}


def register(cls: F) -> F:
    """Register a format under its ``name``."""
    if cls.name in FORMATS:
        raise ValueError(f"report format {cls.name!r} registered twice")
    FORMATS[cls.name] = cls()
    return cls


# --- helpers the formats share -------------------------------------------------------------------


# A file names the same patients again and again: normalise each identifier once (bounded).
_normalizers = {
    "card_no": functools.lru_cache(maxsize=65_536)(normalize_card_no),
    "id_number": functools.lru_cache(maxsize=65_536)(normalize_id_number),
}


def patient_ref(kind: PatientKind, raw: str, where: str, column: str) -> PatientRef | str:
    """Return the normalised identifier, or why it is not one."""
    try:
        value = _normalizers[kind](raw)
    except IdentifierError as problem:
        return str(problem)
    return PatientRef(kind, value, where, column)


def guess_patient_ref(raw: str, where: str, column: str) -> PatientRef | None:
    """Read an identifier of unknown kind: a valid resident ID number, else a card number."""
    found = patient_ref("id_number", raw, where, column)
    if isinstance(found, PatientRef):
        return found
    found = patient_ref("card_no", raw, where, column)
    return found if isinstance(found, PatientRef) else None


def number(raw: object) -> float | None:
    """Return ``raw`` as a finite number (int, float, or numeric text), else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            return None
    else:
        try:
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Columns:
    """The names of the code, value and unit columns (fields) in a format, for problems."""

    code: str
    value: str
    unit: str


def convert(
    report: ParsedReport, code: str, raw_value: object, unit: str, effective: Moment, where: str, columns: Columns
) -> ResultLine | None:
    """Resolve one reported result; on a problem, add it to ``report`` and return None."""
    if not code:
        report.refuse(where, columns.code, "is required")
        return None
    value = number(raw_value)
    if value is None:
        shown = "" if raw_value is None else str(raw_value)[:40]
        reason = "is required" if not shown else f"{shown!r} is not a number"
        report.refuse(where, columns.value, reason)
        return None
    if not unit:
        report.refuse(where, columns.unit, "is required")
        return None
    try:
        resolved = codes.resolve(code, value, unit)
    except codes.UnknownCodeError as problem:
        report.refuse(where, columns.code, str(problem))
        return None
    except units.UnitError as problem:
        report.refuse(where, columns.unit, str(problem))
        return None
    except codes.ImplausibleValueError as problem:
        report.refuse(where, columns.value, str(problem))
        return None
    return ResultLine(resolved.indicator.loinc, resolved.value, resolved.unit, effective, where)


def day_of(moment: Moment) -> date:
    """Return the calendar day of a moment as the source wrote it."""
    return moment.date() if isinstance(moment, datetime) else moment
