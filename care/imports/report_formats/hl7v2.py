"""HL7 v2 ORU^R01 result messages (.hl7), parsed with the ``hl7`` package.

A file holds one or more messages (plain, one segment a line, or MLLP-framed; batch headers
FHS/BHS/BTS/FTS are ignored). Each OBR starts a report; its OBX segments are its results::

    MSH|^~\\&|LIS|CENTRE|CARELOOP|CLINIC|20240305101500+0800||ORU^R01|MSG0001|P|2.5.1
    PID|1||T0000001^^^CLINIC^MR~110101196005170012^^^CHN^NI||张^三||19600517|M
    OBR|1|PL-1|R2024-0001^LIS||||20240305083000
    OBX|1|NM|8480-6^Systolic BP^LN||146|mm[Hg]|||||F|||20240305083000
    OBX|2|NM|2093-3^Cholesterol^LN||201|mg/dL|||||F

Field use (HL7 v2.5.1 chapters 2, 3 and 7):

- the patient: PID-3 identifiers (CX.1 the id, CX.5 the type: ``MR``/``PI``/``PT``/``MB`` a card
  number, ``NI``/``NNCHN``/``CZ``/``SS`` a resident ID number; any other type is read as a resident
  ID when its checksum holds, else as a card number), then PID-2 and PID-19;
- the report id: OBR-3 (filler order number), else OBR-2 (placer order number), else MSH-10 with
  the OBR set id; the report date: OBR-7 (observation date/time);
- a result: OBX-3 (code: CE.1, or the alternate CE.4 when only that one is known; CE.3/CE.6 the
  coding system, ``LN`` LOINC), OBX-5 (the value: NM a number; SN written out, so ``<^5`` is
  ``<5``; CE/CWE its text; ST/TX as given), OBX-6 (units), OBX-14 (time; else OBR-7), OBX-11
  (status: ``F`` final and ``C`` corrected are imported; any other status is skipped, not
  imported). An OBX whose code is neither in the clinic's mapping nor in the indicator table is
  kept as it came, not refused.

Times without an offset are the patient's local time. The file is read as UTF-8, or as GB 18030
when it is not UTF-8 (Chinese systems often send GBK).

Parsing: ``hl7.parse`` reads each message's MSH segment (the encoding characters of MSH-1 and
MSH-2, and the header's validity) and undoes escape sequences (``\\S\\``, ``\\T\\``, ``\\X..\\``...)
with the message's own rules; the segments are split on those separators here. Building the
``hl7`` container tree of every field of every segment took 40 % of a million-result import and
is not needed to read a handful of fields.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import hl7

from care.imports.report_formats.base import (
    Coding,
    Columns,
    Moment,
    ParseContext,
    ParsedReport,
    PatientRef,
    ReportFileError,
    ReportFormat,
    ReportSource,
    convert,
    day_of,
    guess_patient_ref,
    patient_ref,
    register,
)
from care.imports.report_formats.checks import plausibility_problems
from care.indicator_table import LOINC_SYSTEM

CARD_TYPES = frozenset({"MR", "PI", "PT", "MB", "MC"})
ID_NUMBER_TYPES = frozenset({"NI", "NNCHN", "CZ", "SS"})
FINAL_STATUSES = frozenset({"F", "C"})
BATCH_SEGMENTS = frozenset({"FHS", "BHS", "BTS", "FTS"})
LOINC_NAMES = frozenset({"LN", "LOINC"})
MAX_REPORT_ID = 128
_SNIFF_BYTES = 1 << 16
_TS = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?)?([+-]\d{4})?$")


def parse_ts(text: str) -> Moment | str:
    """Read an HL7 TS/DTM value (``YYYYMMDD[HHMM[SS[.S]]][+/-ZZZZ]``); return why when it is not one."""
    match = _TS.match(text.strip())
    if match is None:
        return "is not a date/time of the form YYYYMMDD[HHMM[SS]][+ZZZZ]"
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        if hour is None:
            return date(int(year), int(month), int(day))
        micro = int((fraction or "0").ljust(6, "0"))
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0), micro)
    except ValueError as problem:
        return f"is not a valid date/time ({problem})"
    if offset:
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        if delta >= timedelta(hours=24):
            return f"{text[:40]!r} has an impossible time-zone offset"
        moment = moment.replace(tzinfo=timezone(sign * delta))
    return moment


class _Segment:
    """One segment split on its message's separators; fields are numbered as in HL7 (MSH-1 is the separator)."""

    __slots__ = ("fields", "message", "name", "separators")

    def __init__(self, text: str, message: Any) -> None:
        self.message = message
        # hl7's separators string: segment, field, repetition, component, sub-component.
        self.separators: str = message.separators
        fields = text.split(self.separators[1])
        if fields[0] == "MSH":
            fields.insert(1, self.separators[1])
        self.name = fields[0]
        self.fields = fields

    def part(self, field: int, repeat: int = 0, component: int = 0) -> str:
        """Return the text of ``field`` (repetition, component; 0-based), unescaped; '' when absent."""
        if field >= len(self.fields):
            return ""
        value = self.fields[field]
        repetition, component_separator, subcomponent = self.separators[2], self.separators[3], self.separators[4]
        for index, separator in ((repeat, repetition), (component, component_separator)):
            if separator in value:
                pieces = value.split(separator)
                if index >= len(pieces):
                    return ""
                value = pieces[index]
            elif index:
                return ""
        if subcomponent in value:
            value = value.split(subcomponent, 1)[0]
        if self.message.esc in value:
            value = self.message.unescape(value)
        return value.strip()

    def components(self, field: int, count: int) -> list[str]:
        """Return the first ``count`` components of ``field``'s first repetition, unescaped ('' when absent)."""
        if field >= len(self.fields):
            return [""] * count
        value = self.fields[field]
        repetition, component_separator, subcomponent = self.separators[2], self.separators[3], self.separators[4]
        if repetition in value:
            value = value.split(repetition, 1)[0]
        found = []
        for piece in value.split(component_separator, count)[:count]:
            if subcomponent in piece:
                piece = piece.split(subcomponent, 1)[0]
            if self.message.esc in piece:
                piece = self.message.unescape(piece)
            found.append(piece.strip())
        return found + [""] * (count - len(found))

    def repetitions(self, field: int) -> int:
        """Count the repetitions of ``field`` (0 when absent)."""
        if field >= len(self.fields) or not self.fields[field]:
            return 0
        return self.fields[field].count(self.separators[2]) + 1


@dataclass(frozen=True)
class _Message:
    number: int
    line: int
    text: str
    results: int


def _decoded(handle: Any) -> io.TextIOWrapper:
    head = handle.read(_SNIFF_BYTES)
    handle.seek(0)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        encoding = "utf-8-sig"
    except UnicodeDecodeError:
        encoding = "gb18030"
    return io.TextIOWrapper(handle, encoding=encoding, newline="")


def _messages(handle: Any, name: str) -> Iterator[_Message]:
    """Split the stream into messages at each MSH segment, one segment a line."""
    text = _decoded(handle)
    segments: list[str] = []
    number = start = results = 0
    try:
        for line_number, raw in enumerate(text, start=1):
            segment = raw.strip("\r\n\x0b\x1c ")
            if not segment:
                continue
            kind = segment[:3]
            if kind == "MSH":
                if segments:
                    yield _Message(number, start, "\r".join(segments), results)
                number += 1
                start, segments, results = line_number, [segment], 0
            elif kind in BATCH_SEGMENTS:
                continue
            elif not segments:
                raise ReportFileError(f"{name}: line {line_number} comes before the first MSH segment")
            else:
                segments.append(segment)
                results += kind == "OBX"
    except UnicodeDecodeError as problem:
        raise ReportFileError(f"{name} is neither UTF-8 nor GB 18030 text") from problem
    finally:
        text.detach()
    if segments:
        yield _Message(number, start, "\r".join(segments), results)
    elif number == 0:
        raise ReportFileError(f"{name} holds no HL7 message (no MSH segment)")


def _patients(segment: _Segment, where: str) -> list[PatientRef]:
    found: list[PatientRef] = []
    for repeat in range(segment.repetitions(3)):
        value = segment.part(3, repeat, 0)
        if not value:
            continue
        kind = segment.part(3, repeat, 4).upper()
        column = "PID-3"
        if kind in CARD_TYPES or kind in ID_NUMBER_TYPES:
            ref = patient_ref("card_no" if kind in CARD_TYPES else "id_number", value, where, column)
            if isinstance(ref, PatientRef):
                found.append(ref)
        elif (guessed := guess_patient_ref(value, where, column)) is not None:
            found.append(guessed)
    for field, column in ((2, "PID-2"), (19, "PID-19")):
        value = segment.part(field)
        if value and (guessed := guess_patient_ref(value, where, column)) is not None:
            found.append(guessed)
    return found


def _system(name: str) -> str | None:
    """An HL7 coding-system name (CE.3/CWE.3) as the record keeps it: ``LN`` is LOINC's URI."""
    if not name:
        return None
    return LOINC_SYSTEM if name.upper() in LOINC_NAMES else name[:255]


def _codings(segment: _Segment) -> tuple[Coding, Coding]:
    """OBX-3: the identifier (CE.1-3), then the alternate identifier (CE.4-6)."""
    code, text, system, alternate, alternate_text, alternate_system = segment.components(3, 6)
    return (
        Coding(code, _system(system), text or None),
        Coding(alternate, _system(alternate_system), alternate_text or None),
    )


def _value(segment: _Segment) -> str:
    """OBX-5 as text: a number, or a structured number (SN) written out (``<5``, ``1:40``), or a coded value's text."""
    value_type = segment.part(2).upper()
    if value_type == "SN":
        comparator, first, separator, second = (segment.part(5, 0, index) for index in range(4))
        if comparator == "=":
            comparator = ""
        return f"{comparator}{first}{separator}{second}"
    if value_type in ("CE", "CWE", "CNE"):
        return segment.part(5, 0, 1) or segment.part(5, 0, 0)
    return segment.part(5)


COLUMNS = Columns(code="OBX-3", value="OBX-5", unit="OBX-6")


class _Walk:
    """Builds the reports of one parsed message."""

    def __init__(self, message: _Message, header: Any, context: ParseContext) -> None:
        self.message = message
        self.header = header
        self.context = context
        self.label = f"message {message.number} (line {message.line})"
        self.reports: list[ParsedReport] = []
        self.patients: list[PatientRef] = []
        self.pid_where: str | None = None
        self.current: ParsedReport | None = None
        self.report_time: Moment | None = None
        self.control_id = ""

    def run(self) -> list[ParsedReport]:
        segments = [_Segment(text, self.header) for text in self.message.text.split("\r")]
        msh = segments[0]
        self.control_id = msh.part(10)
        message_type, trigger = msh.part(9, 0, 0).upper(), msh.part(9, 0, 1).upper()
        if (message_type, trigger) != ("ORU", "R01"):
            refused = ParsedReport(report_ref=None, where=self.label, rows=self.message.results)
            refused.refuse(self.label, "MSH-9", f"message type {message_type}^{trigger} is not ORU^R01")
            return [refused]
        handlers = {"PID": self.pid, "OBR": self.obr, "OBX": self.obx}
        for position, segment in enumerate(segments, start=1):
            handler = handlers.get(segment.name)
            if handler is not None:
                handler(segment, position)
        for report in self.reports:
            report.problems.extend(plausibility_problems(report.results))
        return self.reports

    def pid(self, segment: _Segment, position: int) -> None:
        self.pid_where = f"{self.label}, PID"
        self.patients = _patients(segment, self.pid_where)

    def obr(self, segment: _Segment, position: int) -> None:
        set_id = segment.part(1) or str(len(self.reports) + 1)
        where = f"{self.label}, OBR {set_id}"
        report_ref = segment.part(3, 0, 0) or segment.part(2, 0, 0)
        if not report_ref and self.control_id:
            report_ref = f"{self.control_id}-{set_id}"
        report = ParsedReport(report_ref=report_ref or None, where=where, patients=list(self.patients))
        self.reports.append(report)
        self.current = report
        if not report_ref:
            report.refuse(where, "OBR-3", "no report id in OBR-3, OBR-2 or MSH-10")
        elif len(report_ref) > MAX_REPORT_ID:
            report.refuse(where, "OBR-3", f"is longer than {MAX_REPORT_ID} characters")
        if self.pid_where is None:
            report.refuse(where, "PID", "no PID segment before this OBR")
        elif not self.patients:
            report.refuse(self.pid_where, "PID-3", "holds no card number or valid resident ID number")
        self.report_time = None
        raw_time = segment.part(7)
        if raw_time:
            moment = parse_ts(raw_time)
            if isinstance(moment, str):
                report.refuse(where, "OBR-7", moment)
            elif (reason := self.context.check_day(day_of(moment))) is not None:
                report.refuse(where, "OBR-7", reason)
            else:
                self.report_time = report.report_date = moment

    def obx(self, segment: _Segment, position: int) -> None:
        set_id = segment.part(1) or str(position)
        report = self.current
        where = f"{self.label}, OBX {set_id}"
        if report is None:
            report = ParsedReport(report_ref=None, where=where, rows=1)
            report.refuse(where, "OBR", "an OBX comes before any OBR")
            self.reports.append(report)
            return
        report.rows += 1
        if segment.part(11).upper() not in FINAL_STATUSES:
            report.skipped_rows += 1
            return
        raw_time = segment.part(14)
        moment: Moment | str | None = parse_ts(raw_time) if raw_time else self.report_time
        if moment is None:
            report.refuse(where, "OBX-14", "no observation time in OBX-14 or OBR-7")
            return
        if isinstance(moment, str):
            report.refuse(where, "OBX-14", moment)
            return
        reason = self.context.check_day(day_of(moment))
        if reason is not None:
            report.refuse(where, "OBX-14", reason)
            return
        unit = segment.part(6, 0, 0) or segment.part(6, 0, 1)
        line = convert(report, _codings(segment), _value(segment), unit, moment, where, COLUMNS, self.context)
        if line is not None:
            report.add_result(line, moment)


@register
class Hl7v2Format(ReportFormat):
    """HL7 v2 ORU^R01 messages."""

    name = "hl7v2"
    title = "HL7 v2 ORU^R01 (.hl7)"
    suffixes = (".hl7",)
    media_types = ("application/hl7-v2", "x-application/hl7-v2+er7")

    def reports(self, source: ReportSource, context: ParseContext) -> Iterator[ParsedReport]:
        """Yield the reports of each message in turn; a message that does not parse is refused whole."""
        with source.open() as handle:
            for message in _messages(handle, source.name):
                try:
                    header = hl7.parse(message.text.split("\r", 1)[0])
                except (hl7.ParseException, ValueError, IndexError) as problem:
                    where = f"message {message.number} (line {message.line})"
                    refused = ParsedReport(report_ref=None, where=where, rows=message.results)
                    refused.refuse(where, "MSH", f"the message cannot be parsed: {problem}")
                    yield refused
                    continue
                yield from _Walk(message, header, context).run()
