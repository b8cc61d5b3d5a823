"""The results template (CONTRACT.md "Results"): .xlsx or .csv, one row per result, English or Chinese headers.

    card_no 卡号 | report_id 报告编号 | date 检查日期 | code 指标代码 | value 结果 | unit 单位
    T0000001    | R2024-0001        | 2024-03-05   | sbp          | 146        | mmHg
    T0000001    | R2024-0001        | 2024-03-05   | 2093-3       | 201        | mg/dL

The code column takes a LOINC code, a short code of the indicator table, a printed name or
abbreviation (总胆固醇, TC, 谷丙转氨酶(ALT)...), or a local code of the clinic's mapping; any other
code is kept as it came. The rows of one report need not be adjacent. Two streaming passes: the first reads the file,
checks and converts every row, notes per report id its card, its last row and whether any row is
bad, and writes each good row, converted, to an encrypted temporary spool
(:class:`care.imports.spool.EncryptedSpool`: reading the workbook is most of the work, so it is
read once); the refused reports are handed over at its end. The second pass reads the spool back
and hands each good report over once its last row is read. Memory holds one small entry per report
id plus the rows of reports still open (none beyond the current one when a file is sorted by
report); the rows themselves wait on disk, sealed with a key that only this process holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar

from care.imports.report_formats.base import (
    Coding,
    Columns,
    ParseContext,
    ParsedReport,
    PatientRef,
    ReportFileError,
    ReportFormat,
    ReportProblem,
    ReportSource,
    ResultLine,
    convert,
    patient_ref,
    register,
)
from care.imports.report_formats.checks import plausibility_problems
from care.imports.spool import EncryptedSpool
from care.imports.tabular import Column, Row, Template, TemplateError, cell_text, read_rows_from

RESULT_TEMPLATE = Template(
    "results",
    (
        Column("card_no", "card_no", "卡号", True),
        Column("report_id", "report_id", "报告编号", True),
        Column("date", "date", "检查日期", True),
        Column("code", "code", "指标代码", True),
        Column("value", "value", "结果", True),
        Column("unit", "unit", "单位", True),
    ),
)
COLUMNS = Columns(code="code", value="value", unit="unit")
MAX_REPORT_ID = 128





def _day(raw: Any) -> date | str:
    """Return the row's date, or why it is not one."""
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    text = cell_text(raw)
    if not text:
        return "is required"
    try:
        return date.fromisoformat(text)
    except ValueError:
        return "is not a date in YYYY-MM-DD form"


@dataclass
class _Checked:
    """One row after checking: its report, card, date and result, or its problems."""

    report_id: str
    card: PatientRef | None
    day: date | None
    report: ParsedReport


def _check(row: Row, context: ParseContext) -> _Checked:
    where = f"row {row.number}"
    values = row.values
    scratch = ParsedReport(report_ref=None, where=where, rows=1)
    report_id = cell_text(values.get("report_id"))
    if not report_id:
        scratch.refuse(where, "report_id", "is required")
    elif len(report_id) > MAX_REPORT_ID:
        scratch.refuse(where, "report_id", f"is longer than {MAX_REPORT_ID} characters")
    card_text = cell_text(values.get("card_no"))
    card: PatientRef | None = None
    if not card_text:
        scratch.refuse(where, "card_no", "is required")
    else:
        found = patient_ref("card_no", card_text, where, "card_no")
        if isinstance(found, str):
            scratch.refuse(where, "card_no", found)
        else:
            card = found
    day = _day(values.get("date"))
    if isinstance(day, str):
        scratch.refuse(where, "date", day)
        checked_day: date | None = None
    else:
        reason = context.check_day(day)
        if reason is not None:
            scratch.refuse(where, "date", reason)
        checked_day = day
    line = convert(
        scratch, (Coding(cell_text(values.get("code"))),), values.get("value"), cell_text(values.get("unit")),
        checked_day or context.today, where, COLUMNS, context, names=True,
    )
    if line is not None:
        scratch.results.append(line)
        scratch.problems.extend(plausibility_problems((line,)))
    return _Checked(report_id, card, checked_day, scratch)


@dataclass(slots=True)
class _ReportIndex:
    """What the first pass keeps about one report id (small: a million-row file has tens of thousands)."""

    first_row: int
    last_row: int
    rows: int = 0
    card: str | None = None
    card_row: int = 0
    problems: list[ReportProblem] | None = None


@dataclass
class _Open:
    """A good report whose rows are being gathered in the second pass."""

    report: ParsedReport
    last_row: int
    days: list[date] = field(default_factory=list)


def _span(entry: _ReportIndex) -> str:
    return f"rows {entry.first_row}-{entry.last_row}" if entry.rows > 1 else f"row {entry.first_row}"


class _TabularFormat(ReportFormat):
    kind: ClassVar[str]

    def _rows(self, source: ReportSource) -> Iterator[Row]:
        with source.open() as handle:
            try:
                yield from read_rows_from(handle, self.kind, RESULT_TEMPLATE, name=source.name)
            except TemplateError as problem:
                raise ReportFileError(str(problem)) from problem

    def reports(self, source: ReportSource, context: ParseContext) -> Iterator[ParsedReport]:
        """Check every row (first pass), yield the refused reports, then yield each good report whole."""
        index: dict[str, _ReportIndex] = {}
        with EncryptedSpool() as spool:
            for row in self._rows(source):
                checked = _check(row, context)
                if not checked.report_id:
                    # A row without a report id belongs to no report: it is refused on its own.
                    yield checked.report
                    continue
                self._note(index, row.number, checked)
                if not checked.report.problems and checked.day is not None:
                    line = checked.report.results[0]
                    spool.append((row.number, checked.report_id, checked.day.toordinal(), line.code, line.value,
                                  line.unit, line.value_text, line.system, line.display, line.indicator, line.kept))
            for report_id, entry in index.items():
                if entry.problems:
                    refused = ParsedReport(report_ref=report_id, where=_span(entry), rows=entry.rows)
                    refused.problems.extend(entry.problems)
                    yield refused
            yield from self._second_pass(spool, index)

    @staticmethod
    def _note(index: dict[str, _ReportIndex], number: int, checked: _Checked) -> None:
        """Record one checked row in its report's index entry."""
        entry = index.get(checked.report_id)
        if entry is None:
            entry = index[checked.report_id] = _ReportIndex(first_row=number, last_row=number)
        entry.last_row = number
        entry.rows += 1
        problems = list(checked.report.problems)
        if checked.card is not None:
            if entry.card is None:
                entry.card, entry.card_row = checked.card.value, number
            elif entry.card != checked.card.value:
                problems.append(ReportProblem(
                    f"row {number}", "card_no",
                    f"report {checked.report_id!r} belongs to card {entry.card} (row {entry.card_row})",
                ))
        if problems:
            entry.problems = (entry.problems or []) + problems

    @staticmethod
    def _second_pass(spool: EncryptedSpool, index: dict[str, _ReportIndex]) -> Iterator[ParsedReport]:
        """Gather the good rows (read back from the spool, already converted) into whole reports."""
        open_reports: dict[str, _Open] = {}
        for number, report_id, ordinal, code, value, unit, text, system, display, indicator, kept in spool:
            entry = index[report_id]
            if entry.problems:
                continue
            gathering = open_reports.get(report_id)
            if gathering is None:
                assert entry.card is not None  # noqa: S101 - a good report has its card
                card = PatientRef("card_no", entry.card, f"row {entry.card_row}", "card_no")
                report = ParsedReport(report_ref=report_id, where=_span(entry), patients=[card], rows=entry.rows)
                gathering = open_reports[report_id] = _Open(report, entry.last_row)
            day = date.fromordinal(ordinal)
            gathering.days.append(day)
            gathering.report.results.append(
                ResultLine(code, value, unit, day, f"row {number}", text, system, display, indicator, kept)
            )
            if number == gathering.last_row:
                del open_reports[report_id]
                report = gathering.report
                report.report_date = min(gathering.days)
                problems = plausibility_problems(report.results)
                if problems:
                    report.results = []
                    report.problems.extend(problems)
                yield report


@register
class XlsxFormat(_TabularFormat):
    """The results template as an Excel workbook (first sheet)."""

    name = "xlsx"
    title = "Excel workbook (.xlsx)"
    kind = "xlsx"
    suffixes = (".xlsx",)
    media_types = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",)


@register
class CsvFormat(_TabularFormat):
    """The results template as CSV (UTF-8)."""

    name = "csv"
    title = "CSV (UTF-8)"
    kind = "csv"
    suffixes = (".csv",)
    media_types = ("text/csv",)


__all__ = ["RESULT_TEMPLATE", "CsvFormat", "XlsxFormat"]
