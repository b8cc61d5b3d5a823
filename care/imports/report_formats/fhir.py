"""FHIR R4 Bundles (.json) of DiagnosticReports, Observations and Patients, validated with ``fhir.resources``.

Each DiagnosticReport is a report: its id at the source is its first ``identifier.value`` (else its
``id``), its date ``effectiveDateTime`` (or ``effectivePeriod.start``, or ``issued``), its results
the Observations of ``result``. Observations that no DiagnosticReport lists form one report whose
id is the Bundle's ``identifier.value``. A trimmed example::

    {"resourceType": "Bundle", "type": "collection", "entry": [
      {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient",
        "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "T0000001"}]}},
      {"fullUrl": "urn:uuid:r1", "resource": {"resourceType": "DiagnosticReport", "status": "final",
        "identifier": [{"value": "R2024-0001"}], "code": {"text": "Checkup"},
        "subject": {"reference": "urn:uuid:p1"}, "effectiveDateTime": "2024-03-05",
        "result": [{"reference": "urn:uuid:o1"}]}},
      {"fullUrl": "urn:uuid:o1", "resource": {"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
        "subject": {"reference": "urn:uuid:p1"}, "effectiveDateTime": "2024-03-05T08:30:00+08:00",
        "valueQuantity": {"value": 146, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}}]}

The patient: a Patient ``identifier`` whose ``type`` is ``MR``/``PI``/``PT``/``MB`` (v2-0203) or whose
system names a card is a card number; type ``NI``/``NNCHN``/``CZ``/``SS`` or the PRC resident ID system
``urn:oid:2.16.156.10011.1.3`` is a resident ID number; otherwise a valid resident ID is read as
one and anything else as a card number. A ``subject`` may also carry the identifier itself.
Observation statuses ``final``, ``amended`` and ``corrected`` are imported, others skipped; an
Observation with ``component`` (a blood-pressure panel) gives one result per component.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from care.clinical import codes
from care.imports.report_formats.base import (
    Columns,
    Moment,
    ParseContext,
    ParsedReport,
    PatientRef,
    ReportFileError,
    ReportFormat,
    ReportProblem,
    ReportSource,
    convert,
    day_of,
    guess_patient_ref,
    patient_ref,
    register,
)

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
RESIDENT_ID_SYSTEMS = frozenset({"urn:oid:2.16.156.10011.1.3"})
CARD_TYPES = frozenset({"MR", "PI", "PT", "MB"})
ID_NUMBER_TYPES = frozenset({"NI", "NNCHN", "CZ", "SS"})
FINAL_OBSERVATION = frozenset({"final", "amended", "corrected"})
FINAL_REPORT = frozenset({"final", "amended", "corrected", "appended"})
MAX_REPORT_ID = 128
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
COLUMNS = Columns(code="code", value="valueQuantity.value", unit="valueQuantity.unit")


@functools.cache
def resource_types() -> Mapping[str, Any]:
    """Return the ``fhir.resources`` R4B models read (imported on first use: they take half a second)."""
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport
    from fhir.resources.R4B.observation import Observation
    from fhir.resources.R4B.patient import Patient

    return {"Patient": Patient, "Observation": Observation, "DiagnosticReport": DiagnosticReport}


@dataclass
class _Entry:
    index: int
    kind: str
    where: str
    resource: Any = None
    problems: list[ReportProblem] = field(default_factory=list)


def _where(index: int, raw: dict[str, Any]) -> str:
    kind = str(raw.get("resourceType", "?"))[:40]
    ident = raw.get("id")
    return f"entry {index} ({kind}/{str(ident)[:64]})" if ident else f"entry {index} ({kind})"


def _validation_problems(where: str, error: ValidationError) -> list[ReportProblem]:
    problems = []
    for item in error.errors()[:5]:
        location = ".".join(str(part) for part in item.get("loc", ())) or "resource"
        problems.append(ReportProblem(where, location, str(item.get("msg", "is not valid"))))
    return problems


def _identifier_ref(identifier: Any, where: str, column: str) -> PatientRef | None:
    value = (identifier.value or "").strip()
    if not value:
        return None
    system = (identifier.system or "").lower()
    type_codes = {
        (coding.code or "").upper()
        for coding in ((identifier.type.coding or []) if identifier.type is not None else [])
    }
    if type_codes & ID_NUMBER_TYPES or system in RESIDENT_ID_SYSTEMS:
        found = patient_ref("id_number", value, where, column)
    elif type_codes & CARD_TYPES or "card" in system:
        found = patient_ref("card_no", value, where, column)
    else:
        return guess_patient_ref(value, where, column)
    return found if isinstance(found, PatientRef) else None


def _moment(value: Any) -> Moment | None:
    """A FHIR date/dateTime/instant as a moment; partial dates (a year, a month) are not enough."""
    if isinstance(value, datetime | date):
        return value
    return None


def _code(concept: Any) -> str:
    """A LOINC coding of ``concept`` if any, else the first coding the catalogue knows, else the first."""
    codings = list(concept.coding or []) if concept is not None else []
    for coding in codings:
        if coding.system == LOINC_SYSTEM and coding.code:
            return str(coding.code)
    for coding in codings:
        if coding.code:
            try:
                codes.indicator(coding.code)
            except codes.UnknownCodeError:
                continue
            return str(coding.code)
    return str(codings[0].code or "") if codings else ""


def _unit(quantity: Any) -> str:
    if quantity.system == UCUM_SYSTEM and quantity.code:
        return str(quantity.code)
    return str(quantity.unit or quantity.code or "")


class _Bundle:
    """The entries of one Bundle, indexed by fullUrl and ``Type/id``."""

    def __init__(self, data: dict[str, Any], context: ParseContext) -> None:
        self.context = context
        self.entries: list[_Entry] = []
        self.by_reference: dict[str, _Entry] = {}
        identifier = data.get("identifier")
        self.identifier = (
            str(identifier.get("value") or "").strip() if isinstance(identifier, dict) else ""
        )
        raw_entries = data.get("entry") or []
        if not isinstance(raw_entries, list):
            raise ReportFileError("the Bundle's 'entry' is not a list")
        for index, raw in enumerate(raw_entries, start=1):
            self._add(index, raw)

    def _add(self, index: int, raw: Any) -> None:
        resource = raw.get("resource") if isinstance(raw, dict) else None
        if not isinstance(resource, dict):
            return
        kind = str(resource.get("resourceType", ""))
        model = resource_types().get(kind)
        if model is None:
            return  # other resources (Encounter, Practitioner...) are not needed
        entry = _Entry(index, kind, _where(index, resource))
        try:
            entry.resource = model.model_validate(resource)
        except ValidationError as problem:
            entry.problems = _validation_problems(entry.where, problem)
        self.entries.append(entry)
        full_url = raw.get("fullUrl")
        if isinstance(full_url, str) and full_url:
            self.by_reference[full_url] = entry
        if resource.get("id"):
            self.by_reference[f"{kind}/{resource['id']}"] = entry

    def subject(self, reference: Any, where: str, report: ParsedReport) -> list[PatientRef]:
        """Return the subject's identifiers; add a problem to ``report`` when there are none."""
        if reference is None:
            report.refuse(where, "subject", "is required (the patient)")
            return []
        if reference.identifier is not None:
            found = _identifier_ref(reference.identifier, where, "subject.identifier")
            if found is None:
                report.refuse(where, "subject.identifier", "is not a card number or valid resident ID number")
                return []
            return [found]
        key = reference.reference or ""
        entry = self.by_reference.get(key)
        if entry is None or entry.kind != "Patient":
            report.refuse(where, "subject", f"{key[:80]!r} is not a Patient in this Bundle and carries no identifier")
            return []
        if entry.problems:
            report.problems.extend(entry.problems)
            return []
        refs = [
            ref
            for identifier in entry.resource.identifier or []
            if (ref := _identifier_ref(identifier, entry.where, "identifier")) is not None
        ]
        if not refs:
            report.refuse(entry.where, "identifier", "holds no card number or valid resident ID number")
        return refs

    def reports(self) -> Iterator[ParsedReport]:
        listed: set[int] = set()
        for entry in self.entries:
            if entry.kind == "DiagnosticReport":
                yield self._diagnostic_report(entry, listed)
        strays = [entry for entry in self.entries if entry.kind == "Observation" and entry.index not in listed]
        if strays:
            yield self._bundle_report(strays)

    def _diagnostic_report(self, entry: _Entry, listed: set[int]) -> ParsedReport:
        report = ParsedReport(report_ref=None, where=entry.where)
        if entry.problems:
            report.problems.extend(entry.problems)
            return report
        resource = entry.resource
        references = [item.reference or "" for item in resource.result or []]
        members = []
        for reference in references:
            member = self.by_reference.get(reference)
            if member is None or member.kind != "Observation":
                report.refuse(entry.where, "result", f"{reference[:80]!r} is not an Observation in this Bundle")
                continue
            listed.add(member.index)
            members.append(member)
        report.rows = len(members)
        identifiers = [item.value for item in resource.identifier or [] if item.value]
        report.report_ref = (identifiers[0] if identifiers else resource.id) or None
        if not report.report_ref:
            report.refuse(entry.where, "identifier", "no report id (identifier.value or id)")
        elif len(report.report_ref) > MAX_REPORT_ID:
            report.refuse(entry.where, "identifier", f"is longer than {MAX_REPORT_ID} characters")
        report.patients = self.subject(resource.subject, entry.where, report)
        report_time = _moment(resource.effectiveDateTime) or (
            _moment(resource.effectivePeriod.start) if resource.effectivePeriod is not None else None
        ) or _moment(resource.issued)
        if report_time is not None and (reason := self.context.check_day(day_of(report_time))) is not None:
            report.refuse(entry.where, "effectiveDateTime", reason)
            report_time = None
        report.report_date = report_time
        if resource.status not in FINAL_REPORT:
            report.skipped_rows = report.rows
            return report
        for member in members:
            self._observation(member, report, report_time)
        return report

    def _bundle_report(self, strays: list[_Entry]) -> ParsedReport:
        where = f"{len(strays)} Observation(s) outside any DiagnosticReport"
        report = ParsedReport(report_ref=self.identifier or None, where=where, rows=len(strays))
        if not self.identifier:
            report.refuse(strays[0].where, "DiagnosticReport", "is not listed by a DiagnosticReport, and the "
                          "Bundle has no identifier to use as the report id")
            return report
        first_valid = next((entry for entry in strays if not entry.problems), None)
        if first_valid is not None:
            report.patients = self.subject(first_valid.resource.subject, first_valid.where, report)
        for entry in strays:
            self._observation(entry, report, None)
        return report

    def _observation(self, entry: _Entry, report: ParsedReport, report_time: Moment | None) -> None:
        if entry.problems:
            report.problems.extend(entry.problems)
            return
        resource = entry.resource
        if resource.status not in FINAL_OBSERVATION:
            report.skipped_rows += 1
            return
        if resource.subject is not None and report.patients:
            scratch = ParsedReport(report_ref=None, where=entry.where)
            own = {(ref.kind, ref.value) for ref in self.subject(resource.subject, entry.where, scratch)}
            if scratch.problems:
                report.problems.extend(scratch.problems)
                return
            if not own & {(ref.kind, ref.value) for ref in report.patients}:
                report.refuse(entry.where, "subject", "is not the report's patient")
                return
        moment = _moment(resource.effectiveDateTime) or (
            _moment(resource.effectivePeriod.start) if resource.effectivePeriod is not None else None
        ) or _moment(resource.effectiveInstant) or _moment(resource.issued) or report_time
        if moment is None:
            report.refuse(entry.where, "effectiveDateTime", "no time of the result (a full date at least)")
            return
        if (reason := self.context.check_day(day_of(moment))) is not None:
            report.refuse(entry.where, "effectiveDateTime", reason)
            return
        parts: list[tuple[str, Any, str]] = []
        if resource.valueQuantity is None and resource.component:
            for number, component in enumerate(resource.component, start=1):
                prefix = f"component[{number}]."
                parts.append((_code(component.code), component.valueQuantity, prefix))
        else:
            parts.append((_code(resource.code), resource.valueQuantity, ""))
        for code, quantity, prefix in parts:
            columns = Columns(prefix + "code", prefix + COLUMNS.value, prefix + COLUMNS.unit)
            if quantity is None:
                report.refuse(entry.where, prefix + "valueQuantity", "is required (a number with its unit)")
                continue
            line = convert(report, code, quantity.value, _unit(quantity), moment, entry.where, columns)
            if line is not None:
                report.add_result(line, moment)


@register
class FhirFormat(ReportFormat):
    """FHIR R4 Bundles."""

    name = "fhir"
    title = "FHIR R4 Bundle (.json)"
    suffixes = (".json",)
    media_types = ("application/fhir+json",)

    def reports(self, source: ReportSource, context: ParseContext) -> Iterator[ParsedReport]:
        """Validate every entry, then yield the Bundle's reports."""
        with source.open() as handle:
            raw = handle.read(MAX_BUNDLE_BYTES + 1)
        if len(raw) > MAX_BUNDLE_BYTES:
            raise ReportFileError(f"{source.name} is larger than {MAX_BUNDLE_BYTES // (1024 * 1024)} MB")
        try:
            data = json.loads(raw.decode("utf-8-sig"))
        except UnicodeDecodeError as problem:
            raise ReportFileError(f"{source.name} is not UTF-8 text") from problem
        except json.JSONDecodeError as problem:
            raise ReportFileError(f"{source.name} is not valid JSON: {problem.msg} at line {problem.lineno}") from None
        if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
            raise ReportFileError(f"{source.name} is not a FHIR Bundle (resourceType must be 'Bundle')")
        yield from _Bundle(data, context).reports()
