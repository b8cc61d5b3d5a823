"""What every report format turns a file into: complete reports of converted results, with problems.

A format reads its source and yields :class:`ParsedReport` objects, each holding *all* of one
report's results (so the importer can write it whole or not at all), the identifiers of its patient
as given, and the problems found, each naming where (row, segment or entry), which column or field,
and why. Formats are pure: they never touch the database. Each result is read by :func:`convert`:
a code the clinic's mapping or the indicator table (:mod:`care.indicator_table`) knows is converted
to its indicator's canonical unit and coded with its stored LOINC code (clinical-spec.md section 8);
any other code is kept as it came. Whether values can be true is decided in one place,
:func:`care.imports.report_formats.checks.plausibility_problems`, called on each complete report.

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
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, ClassVar, Literal, TypeVar

from care import indicator_table
from care.identifiers import IdentifierError, normalize_card_no, normalize_id_number
from care.indicator_table import TableIndicator, UnitError

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


#: Why a result is kept as it came and not used by rules, trends or risk (see :class:`ResultLine`).
KeptReason = Literal["unknown_code", "value_not_usable"]
UNKNOWN_CODE: KeptReason = "unknown_code"
VALUE_NOT_USABLE: KeptReason = "value_not_usable"
#: The longest code, unit and text value a result may carry (the record's columns).
MAX_CODE = 32
MAX_UNIT = 32
MAX_TEXT = 1024


@dataclass(frozen=True, slots=True)
class ResultLine:
    """One result, converted when understood.

    A recognised result carries its indicator's stored LOINC code, its value in the canonical unit
    (``value``; a test-strip grade is ``value_text``) and ``indicator``, the table's short code. A
    result kept as it came (``kept`` says why) carries the sender's code, ``system`` and ``display``,
    its value as a number or as text, and the unit as given. ``column`` names the field the value
    came from, for problems.
    """

    code: str
    value: float | None
    unit: str
    effective: Moment
    where: str
    value_text: str | None = None
    system: str | None = None
    display: str | None = None
    indicator: str | None = None
    kept: KeptReason | None = None
    column: str = "value"


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


@dataclass(frozen=True, slots=True)
class MappedCode:
    """A clinic's local code: what it means (a short code or LOINC code) and the unit it comes in."""

    target: str
    unit: str | None = None


def code_key(code: str) -> str:
    """Return a local code as mappings look it up: width, case and spaces do not count."""
    return "".join(unicodedata.normalize("NFKC", code).split()).casefold()


@dataclass(frozen=True)
class ParseContext:
    """What parsing needs to know: today's date (results dated in the future are refused) and the
    clinic's local codes (:func:`code_key` -> :class:`MappedCode`)."""

    today: date
    code_map: Mapping[str, MappedCode] = field(default_factory=dict)

    def check_day(self, day: date) -> str | None:
        """Return why ``day`` cannot be a result's date, or None."""
        if day < EARLIEST_DATE:
            return f"is before {EARLIEST_DATE.year}"
        # One day of slack: a sender east of the clinic may already be on tomorrow's date.
        if day > self.today + timedelta(days=1):
            return "is in the future"
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


@dataclass(frozen=True, slots=True)
class Coding:
    """A code as the source gives it: the code, its system (a FHIR URI or an HL7 coding-system name), its text."""

    code: str
    system: str | None = None
    display: str | None = None


_COMPARATOR = re.compile(r"^(<=|>=|<|>|≤|≥)\s*([+-]?(?:\d+\.?\d*|\.\d+))$")
#: Flags a checkup report prints beside a value (high, low); they are not part of it.
_FLAGS = "↑↓"


def reported_value(raw: object) -> tuple[float | None, str | None]:
    """Return a reported value as ``(number, None)``, ``(None, text)``, or ``(None, None)`` when empty.

    Full-width characters count as their ASCII forms and a trailing ↑/↓ flag is dropped.
    """
    found = number(raw)
    if found is not None:
        return found, None
    if raw is None:
        return None, None
    text = unicodedata.normalize("NFKC", str(raw)).strip().rstrip(_FLAGS).strip()
    if not text:
        return None, None
    found = number(text)
    return (found, None) if found is not None else (None, text)


def _resolve(
    codings: Sequence[Coding], context: ParseContext, names: bool
) -> tuple[Coding | None, TableIndicator | None, MappedCode | None]:
    """The coding to use, the indicator it names (or None: kept as it came), and its mapping if any.

    The clinic's mapping comes first, then the indicator table; a code neither knows is kept under
    the first LOINC coding, else the first coding.
    """
    present = [coding for coding in codings if coding.code]
    if context.code_map:
        for coding in present:
            mapped = context.code_map.get(code_key(coding.code))
            if mapped is not None:
                return coding, indicator_table.find(mapped.target, names=True), mapped
    for coding in present:
        found = indicator_table.find(coding.code, names=names)
        if found is not None:
            return coding, found, None
    loinc = next((coding for coding in present if coding.system == indicator_table.LOINC_SYSTEM), None)
    return (loinc or (present[0] if present else None)), None, None


def convert(
    report: ParsedReport, codings: Sequence[Coding], raw_value: object, unit: str, effective: Moment, where: str,
    columns: Columns, context: ParseContext, *, names: bool = False,
) -> ResultLine | None:
    """Read one reported result; on a problem, add it to ``report`` and return None.

    ``names``: the code may be a printed name (a tabular report's code column). A code outside the
    indicator table, or a value its indicator does not take as such (``>90``, a number for a
    test-strip grade), is kept as it came; only what cannot be read is a problem. A problem's reason
    never repeats the value (results are PHI).
    """
    coding, found, mapped = _resolve(codings, context, names)
    if coding is None:
        report.refuse(where, columns.code, "is required")
        return None
    unit = (unit or "").strip() or (mapped.unit if mapped is not None and mapped.unit else "")
    value, text = reported_value(raw_value)
    if value is None and text is None:
        report.refuse(where, columns.value, "is required")
        return None
    if len(unit) > MAX_UNIT:
        report.refuse(where, columns.unit, f"is longer than {MAX_UNIT} characters")
        return None
    if text is not None and len(text) > MAX_TEXT:
        report.refuse(where, columns.value, f"is longer than {MAX_TEXT} characters")
        return None
    display = coding.display[:MAX_TEXT] if coding.display else None
    if found is None:
        code = mapped.target if mapped is not None else coding.code.strip()
        if len(code) > MAX_CODE:
            report.refuse(where, columns.code, f"is longer than {MAX_CODE} characters")
            return None
        system = indicator_table.LOINC_SYSTEM if mapped is not None else coding.system
        return ResultLine(code, value, unit, effective, where, text, system, display, None, UNKNOWN_CODE,
                          columns.value)
    kept = ResultLine(found.loinc, value, unit, effective, where, text, indicator_table.LOINC_SYSTEM,
                      display or coding.code.strip()[:MAX_TEXT], None, VALUE_NOT_USABLE, columns.value)
    if found.kind == "grade":
        grade = indicator_table.grade_of(text) if text is not None else None
        if grade is not None:
            return ResultLine(found.loinc, None, "", effective, where, grade, None, None, found.key, None,
                              columns.value)
        if value is not None:
            return kept
        report.refuse(where, columns.value, "is not a test-strip grade (-, ±, 1+ to 4+, 阴性, 弱阳性, 阳性)")
        return None
    if value is None:
        assert text is not None  # noqa: S101 - one of the two is set (checked above)
        comparison = _COMPARATOR.match(text)
        if comparison is not None:
            return replace(kept, value_text=comparison[1] + comparison[2])
        report.refuse(where, columns.value, "is not a number")
        return None
    if not unit and not found.unitless:
        report.refuse(where, columns.unit, "is required")
        return None
    try:
        canonical = found.to_canonical(value, unit)
    except UnitError as problem:
        report.refuse(where, columns.unit, str(problem))
        return None
    return ResultLine(found.loinc, canonical, found.unit, effective, where, None, None, None, found.key, None,
                      columns.value)


def day_of(moment: Moment) -> date:
    """Return the calendar day of a moment as the source wrote it."""
    return moment.date() if isinstance(moment, datetime) else moment
