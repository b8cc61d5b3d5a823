"""Report import (同步检查报告数据): parsed reports into the record, whole or not at all, idempotently.

A :class:`ReportImport` takes the reports of one file (or one HTTP body) chunk by chunk; each chunk
holds whole reports, so the entry point can commit between chunks without ever leaving a report
half-imported. For each chunk it resolves the patients and finds the already-imported reports in
bulk (one query per kind, no query per row), then for each report:

- refused, when the format found problems (a row that cannot be read, a value that cannot be true),
  the patient is unknown, or the report id already belongs to another patient at this source (every
  problem is kept, naming row or segment, column, reason; never a value);
- skipped, when it holds nothing to import, or it was imported before with the very same results;
- replaced, when it was imported before: its old observations are deleted and the new ones written;
- imported otherwise.

A result whose code is outside the indicator table is not a problem: it is written as it came
(``recognised`` False, with its code system and display text) and counted in :attr:`ReportTally.kept`.
Observations are inserted with Core ``INSERT``s in batches; each value is sealed with the patient's
data key exactly as :mod:`security.fields` seals it (same codec, same associated data), so the ORM
reads them back like any other. Every report written is audited (ids and counts only), and its
patient is marked for tag-rule re-evaluation (:mod:`care.reevaluation`).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session

from care.imports.mappings import code_map_for
from care.imports.report_formats import (
    ParseContext,
    ParsedReport,
    PatientRef,
    ReportFileError,
    ReportFormat,
    ReportProblem,
    ReportSource,
    ResultLine,
)
from care.imports.report_formats.base import UNKNOWN_CODE, VALUE_NOT_USABLE, MappedCode, Moment, day_of
from care.models import CheckupReport, Observation, Patient, PatientStatus
from care.observations import Reading, open_red_flag_tasks
from care.plans.service import reports_imported
from care.reevaluation import request_tag_reevaluation
from security.audit import Actor, log
from security.crypto import field_aad
from security.fields import cipher_of, clock_of

#: Result rows per chunk handed to :meth:`ReportImport.process` (whole reports; a chunk may be larger).
CHUNK_ROWS = 2000
#: Observations per INSERT statement.
INSERT_BATCH = 1000
#: Problems kept per import (the rest are counted): a broken million-row file must not fill memory.
MAX_PROBLEMS = 1000
#: Queries name at most this many values in one ``IN``.
LOOKUP_CHUNK = 500
DEFAULT_TIMEZONE = "Asia/Shanghai"
MAX_SOURCE = 64
#: Distinct codes listed per kept reason (the rest are counted).
MAX_KEPT_CODES = 200
#: Codes the one-line summary names.
SUMMARY_CODES = 10
OUTCOMES = ("imported", "replaced", "skipped", "rejected")


@dataclass
class Counts:
    """Reports or rows by outcome."""

    imported: int = 0
    replaced: int = 0
    skipped: int = 0
    rejected: int = 0

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in OUTCOMES}

    def __str__(self) -> str:
        return ", ".join(f"{getattr(self, name)} {name}" for name in OUTCOMES)


@dataclass
class KeptCount:
    """Rows written but kept as they came, not used (for one reason), and the codes they carry."""

    rows: int = 0
    codes: set[str] = field(default_factory=set)

    def add(self, code: str) -> None:
        self.rows += 1
        if len(self.codes) < MAX_KEPT_CODES:
            self.codes.add(code)

    def listed(self) -> list[str]:
        return sorted(self.codes)

    def to_dict(self) -> dict[str, object]:
        return {"rows": self.rows, "codes": self.listed()}


#: kept reason -> how the summary names it.
KEPT_PHRASES: dict[str, str] = {
    UNKNOWN_CODE: "with codes not in the indicator table",
    VALUE_NOT_USABLE: "with values their indicator does not take as such",
}
#: kept reason -> its key in the JSON of the HTTP endpoint.
KEPT_KEYS: dict[str, str] = {UNKNOWN_CODE: "unknown_codes", VALUE_NOT_USABLE: "values_not_usable"}


@dataclass
class ReportTally:
    """What an import did, per report and per row, and the problems of refused reports.

    ``kept`` counts the rows written (imported or replaced) that were kept as they came and are not
    used by rules, trends or risk: codes outside the indicator table, values not taken as such.
    """

    reports: Counts = field(default_factory=Counts)
    rows: Counts = field(default_factory=Counts)
    problems: list[ReportProblem] = field(default_factory=list)
    problems_not_kept: int = 0
    patients: set[uuid.UUID] = field(default_factory=set)
    kept: dict[str, KeptCount] = field(default_factory=lambda: {reason: KeptCount() for reason in KEPT_PHRASES})

    def kept_summary(self) -> str:
        """``of the 42 rows written, 7 with codes not in the indicator table: 718-7, ...`` (empty when none)."""
        parts = []
        for reason, phrase in KEPT_PHRASES.items():
            count = self.kept[reason]
            if count.rows:
                codes = count.listed()
                more = ", ..." if len(codes) > SUMMARY_CODES else ""
                parts.append(f"{count.rows} {phrase}: {', '.join(codes[:SUMMARY_CODES])}{more}")
        if not parts:
            return ""
        written = self.rows.imported + self.rows.replaced
        return f"of the {written} rows written, {'; '.join(parts)} (kept as they came, not used in rules or risk)"

    def summary(self) -> str:
        """The one-line summary the CLI prints for a file."""
        line = f"reports: {self.reports}; rows: {self.rows}"
        kept = self.kept_summary()
        return f"{line}; {kept}" if kept else line

    def reject(self, report: ParsedReport, problems: Iterable[ReportProblem]) -> None:
        self.reports.rejected += 1
        self.rows.rejected += report.rows
        for problem in problems:
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(problem)
            else:
                self.problems_not_kept += 1

    def to_dict(self) -> dict[str, object]:
        """Return the JSON of the HTTP endpoint: counts, the rows kept as they came, then the problems."""
        return {
            "reports": self.reports.to_dict(),
            "rows": self.rows.to_dict(),
            "kept": {KEPT_KEYS[reason]: count.to_dict() for reason, count in self.kept.items()},
            "summary": self.summary(),
            "problems": [problem.to_dict() for problem in self.problems],
            "problems_not_listed": self.problems_not_kept,
        }


def chunks(reports: Iterable[ParsedReport], rows: int = CHUNK_ROWS) -> Iterator[list[ParsedReport]]:
    """Group whole reports into chunks of at least ``rows`` rows (the last may be smaller)."""
    chunk: list[ParsedReport] = []
    size = 0
    for report in reports:
        chunk.append(report)
        size += max(report.rows, 1)
        if size >= rows:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def instant(moment: Moment, zone: tzinfo) -> datetime:
    """Return an exact time: a day is its start in the patient's zone, a naive time is the patient's local time."""
    if isinstance(moment, datetime):
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
    return datetime.combine(moment, time(0), tzinfo=zone)


@dataclass(frozen=True)
class _Holder:
    patient_id: uuid.UUID
    timezone: str


def _describe(ref: PatientRef) -> str:
    if ref.kind == "card_no":
        return "no enrolled patient has this card number"
    return "no enrolled patient has this resident ID number"


class ReportImport:
    """Imports the reports of one file or body, chunk by chunk (the caller commits between chunks)."""

    def __init__(self, *, source: str, fmt: ReportFormat, actor: Actor) -> None:
        if not source or len(source) > MAX_SOURCE:
            raise ValueError(f"the source name must be 1-{MAX_SOURCE} characters")
        self.source = source
        self.fmt = fmt
        self.actor = actor
        self.tally = ReportTally()

    def reports(self, source: ReportSource, context: ParseContext) -> Iterator[list[ParsedReport]]:
        """Return the chunks of ``source``'s reports (parsing is lazy; file errors surface while iterating)."""
        return chunks(self.fmt.reports(source, context))

    def process(self, session: Session, reports: Sequence[ParsedReport]) -> None:
        """Import one chunk of whole reports (flushes; the caller commits)."""
        waiting: list[ParsedReport] = []
        for report in reports:
            if report.problems:
                self.tally.reject(report, report.problems)
            elif not report.results:
                self.tally.reports.skipped += 1
                self.tally.rows.skipped += report.rows
            else:
                waiting.append(report)
        if not waiting:
            return
        holders = self._patients(session, waiting)
        cipher = cipher_of(session)
        existing = self._existing(session, waiting)
        now = clock_of(session).now()
        cipher.load_keys(session, {holder.patient_id for holder in holders.values()}, create=True, now=now)
        pending: dict[uuid.UUID, list[dict[str, object]]] = {}
        readings: list[Reading] = []
        stale: list[str] = []
        written: set[uuid.UUID] = set()
        for report in waiting:
            holder = self._holder_of(report, holders)
            if holder is None:
                continue
            assert report.report_ref is not None  # noqa: S101 - a report without an id has problems
            index = CheckupReport.report_ref.index_value(cipher, report.report_ref)
            mac = cipher.blind_index("report_content", _canonical(report))
            found = existing.get(index)
            if found is not None and found.patient_id != holder.patient_id:
                self.tally.reject(report, [ReportProblem(
                    report.where, "report_id",
                    f"this report id from {self.source} already belongs to another patient",
                )])
                continue
            if found is not None and found.content_mac == mac:
                self.tally.reports.skipped += 1
                self.tally.rows.skipped += report.rows
                continue
            zone = _zone(holder.timezone)
            report_day = day_of(report.report_date) if report.report_date is not None else min(
                day_of(line.effective) for line in report.results
            )
            if found is None:
                found = CheckupReport(
                    source=self.source, report_ref=report.report_ref, patient_id=holder.patient_id,
                    report_date=report_day, format=self.fmt.name, result_count=len(report.results),
                    skipped_count=report.skipped_rows, content_mac=mac, import_count=1, imported_at=now,
                    updated_at=now,
                )
                session.add(found)
                existing[index] = found
                action = "report.import"
                self.tally.reports.imported += 1
                self.tally.rows.imported += len(report.results)
            else:
                if pending.pop(found.id, None) is None:
                    stale.append(str(found.id))
                found.report_date, found.format = report_day, self.fmt.name
                found.result_count, found.skipped_count = len(report.results), report.skipped_rows
                found.content_mac, found.import_count, found.updated_at = mac, found.import_count + 1, now
                action = "report.replace"
                self.tally.reports.replaced += 1
                self.tally.rows.replaced += len(report.results)
            self.tally.rows.skipped += report.skipped_rows
            for line in report.results:
                if line.kept is not None:
                    self.tally.kept[line.kept].add(line.code)
            pending[found.id] = self._rows(session, report, found, holder.patient_id, zone, now, readings)
            written.add(holder.patient_id)
            log(session, actor=self.actor, action=action, resource_type="checkup_report", resource_id=found.id,
                patient_id=holder.patient_id,
                details={"source": self.source, "format": self.fmt.name, "results": len(report.results)})
        session.flush()
        for start in range(0, len(stale), LOOKUP_CHUNK):
            session.execute(delete(Observation).where(Observation.source_ref.in_(stale[start : start + LOOKUP_CHUNK])))
        # The table, not the entity: the rows are keyed by column name ("value" is the ciphertext column).
        # One statement per shape of row: recognised results, and results kept as they came.
        table = cast(Table, Observation.__table__)
        for shape in (False, True):
            rows = [row for batch in pending.values() for row in batch if ("recognised" in row) is shape]
            for start in range(0, len(rows), INSERT_BATCH):
                session.execute(insert(table), rows[start : start + INSERT_BATCH])
        # A red-flag result (低血糖) opens its urgent task as it would arriving by chat; a re-imported
        # report names the same readings and opens none again.
        open_red_flag_tasks(session, readings, actor=self.actor)
        request_tag_reevaluation(session, written, reason="report_import")
        # Plans that start with a report, or are timed from the checkup, follow (care.plans).
        reports_imported(session, sorted(written), actor=self.actor)
        self.tally.patients |= written

    def _rows(
        self, session: Session, report: ParsedReport, checkup: CheckupReport, patient_id: uuid.UUID, zone: tzinfo,
        now: datetime, readings: list[Reading],
    ) -> list[dict[str, object]]:
        """The observation rows of ``report``, each value sealed as ``Observation.value`` seals it.

        What the red-flag rules read of each recognised result is added to ``readings``.
        """
        cipher = cipher_of(session)
        key = cipher.data_key(session, patient_id, create=True, now=now)
        table = Observation.__tablename__
        value_name, text_name, display_name = Observation.value.name, Observation.value_text.name, \
            Observation.display.name
        encode_value, encode_text = Observation.value.codec.encode, Observation.value_text.codec.encode
        source = f"report:{self.fmt.name}"
        reference = str(checkup.id)
        rows: list[dict[str, object]] = []
        for line in report.results:
            row_id = uuid.uuid4()
            row: dict[str, object] = {
                "id": row_id, "patient_id": patient_id, "code": line.code, "unit": line.unit,
                "value": None if line.value is None else cipher.seal(
                    key, field_aad(table, value_name, row_id), encode_value(line.value)),
                "value_text": None if line.value_text is None else cipher.seal(
                    key, field_aad(table, text_name, row_id), encode_text(line.value_text)),
                "effective_at": instant(line.effective, zone), "source": source, "source_ref": reference,
                "recorded_at": now,
            }
            if line.kept is not None or line.system is not None or line.display is not None:
                # A kept result: the columns a recognised one leaves to their defaults.
                row.update(display=None if line.display is None else cipher.seal(
                    key, field_aad(table, display_name, row_id), encode_text(line.display)),
                    code_system=line.system, recognised=line.kept is None)
            if line.kept is None and line.value is not None:
                moment = cast(datetime, row["effective_at"])
                readings.append(Reading(observation_id=row_id, patient_id=patient_id, code=line.code,
                                        value=line.value, unit=line.unit, effective_at=moment, source=source,
                                        source_ref=reference))
            rows.append(row)
        return rows

    def _holder_of(self, report: ParsedReport, holders: dict[tuple[str, str], _Holder]) -> _Holder | None:
        found = {holders[(ref.kind, ref.value)] for ref in report.patients if (ref.kind, ref.value) in holders}
        if len(found) == 1:
            return found.pop()
        if not found:
            refs = report.patients
            problems = [ReportProblem(ref.where, ref.column, _describe(ref)) for ref in refs[:1]] or [
                ReportProblem(report.where, "patient", "the report names no patient")
            ]
            self.tally.reject(report, problems)
            return None
        self.tally.reject(report, [ReportProblem(
            report.patients[0].where, report.patients[0].column, "the identifiers name different patients"
        )])
        return None

    @staticmethod
    def _patients(session: Session, reports: Sequence[ParsedReport]) -> dict[tuple[str, str], _Holder]:
        """Find every named patient with one query per identifier kind and chunk."""
        cipher = cipher_of(session)
        wanted: dict[str, set[str]] = {"card_no": set(), "id_number": set()}
        for report in reports:
            for ref in report.patients:
                wanted[ref.kind].add(ref.value)
        holders: dict[tuple[str, str], _Holder] = {}
        for kind, values in wanted.items():
            encrypted_field = getattr(Patient, kind)
            column = encrypted_field.index_column()
            by_index = {encrypted_field.index_value(cipher, value): value for value in values}
            indexes = list(by_index)
            for start in range(0, len(indexes), LOOKUP_CHUNK):
                query = select(Patient.id, Patient.timezone, column).where(
                    column.in_(indexes[start : start + LOOKUP_CHUNK]), Patient.status != PatientStatus.ERASED.value
                )
                for patient_id, zone, index in session.execute(query):
                    holders[(kind, by_index[index])] = _Holder(patient_id, zone or DEFAULT_TIMEZONE)
        return holders

    def _existing(self, session: Session, reports: Sequence[ParsedReport]) -> dict[bytes, CheckupReport]:
        """The reports of this source already imported under the chunk's report ids, by blind index."""
        cipher = cipher_of(session)
        indexes = list({CheckupReport.report_ref.index_value(cipher, report.report_ref or "") for report in reports})
        column = CheckupReport.report_ref.index_column()
        found: dict[bytes, CheckupReport] = {}
        for start in range(0, len(indexes), LOOKUP_CHUNK):
            query = select(CheckupReport).where(
                CheckupReport.source == self.source, column.in_(indexes[start : start + LOOKUP_CHUNK])
            )
            for checkup in session.scalars(query):
                stored = CheckupReport.report_ref.stored_index(checkup)
                if stored is not None:
                    found[stored] = checkup
        return found


def _line(line: ResultLine) -> str:
    # A recognised number is written as before results could be kept as they came, so that reports
    # imported then are still found unchanged.
    head = f"{line.code}|{line.value!r}|{line.unit}|{line.effective.isoformat()}"
    if line.value_text is None and line.system is None and line.display is None and line.kept is None:
        return head
    return f"{head}|{line.value_text!r}|{line.system!r}|{line.display!r}|{line.kept}"


def _canonical(report: ParsedReport) -> str:
    """The report's content as one string: the same results give the same string, in any order."""
    lines = sorted(_line(line) for line in report.results)
    head = "" if report.report_date is None else report.report_date.isoformat()
    return head + "\n" + "\n".join(lines) + f"\nskipped={report.skipped_rows}"


def import_document(
    session: Session, source: ReportSource, fmt: ReportFormat, *, source_name: str, actor: Actor,
    today: date | None = None, code_map: Mapping[str, MappedCode] | None = None,
) -> ReportTally:
    """Import one document whole in the caller's transaction (the HTTP endpoint); return the tally.

    ``code_map``: the clinic's local codes (default: the stored mappings of ``source_name``).

    Raises:
        ReportFileError: the document cannot be read in ``fmt`` at all.
    """
    job = ReportImport(source=source_name, fmt=fmt, actor=actor)
    context = ParseContext(today=today or clock_of(session).now().date(),
                           code_map=code_map if code_map is not None else code_map_for(session, source_name))
    for chunk in job.reports(source, context):
        job.process(session, chunk)
    return job.tally


@dataclass(frozen=True)
class PushResult:
    """What a pushed document did: imported (with its tally), or refused with the problems."""

    accepted: bool
    tally: ReportTally
    problems: tuple[ReportProblem, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """The endpoint's answer: the CLI's counts when imported; when refused, what was refused and
        that nothing was imported (the good reports are counted as ``withheld``)."""
        if self.accepted:
            return {"status": "imported", **self.tally.to_dict()}
        tally = self.tally
        withheld = {"reports": tally.reports.imported + tally.reports.replaced,
                    "rows": tally.rows.imported + tally.rows.replaced}
        problems = tally.problems or list(self.problems)
        return {
            "status": "rejected",
            "imported": False,
            "reports": {**Counts(skipped=tally.reports.skipped, rejected=tally.reports.rejected).to_dict()},
            "rows": {**Counts(rejected=tally.rows.rejected).to_dict()},
            "withheld": withheld,
            "summary": f"nothing imported: {tally.reports.rejected} report(s) refused, "
                       f"{withheld['reports']} good report(s) ({withheld['rows']} rows) withheld with them",
            "problems": [problem.to_dict() for problem in problems],
            "problems_not_listed": tally.problems_not_kept,
        }


def receive_pushed_reports(
    session: Session, body: bytes, fmt: ReportFormat, *, source_name: str, key_id: str, actor: Actor
) -> PushResult:
    """Import a document a source system pushed, all or nothing (``POST /api/v1/reports``).

    When any report of the document is refused, or the document cannot be read, the result is not
    accepted and the caller rolls back, so a refused push changes nothing; else the push is audited
    with its counts (the reports themselves were audited one by one).
    """
    try:
        tally = import_document(session, ReportSource.from_bytes("body", body), fmt, source_name=source_name,
                                actor=actor, code_map=code_map_for(session, source_name))
    except ReportFileError as problem:
        return PushResult(False, ReportTally(), (ReportProblem("body", fmt.name, str(problem)),))
    if tally.reports.rejected:
        return PushResult(False, tally)
    log(session, actor=actor, action="report.push", resource_type="api_key", resource_id=key_id,
        details={"source": source_name, "format": fmt.name, "patients": len(tally.patients),
                 **{f"reports_{name}": count for name, count in tally.reports.to_dict().items()}})
    return PushResult(True, tally)
