"""FHIR R4 documents (.json) as real systems send them, validated with ``fhir.resources``.

A document is a Bundle of any type (``transaction``, ``batch``, ``collection``, ``searchset``,
``document``, ``message``...), a DiagnosticReport, or a stand-alone Observation. Resources may be
entries of the Bundle (found by ``fullUrl``, by ``Type/id``, or by the ``Type/id`` end of an
absolute ``fullUrl``; ``/_history/n`` is ignored) or ``contained`` in the resource that refers to
them (``#id``). Other resource types (Composition, Encounter, Practitioner, OperationOutcome...)
are not needed and left alone.

Which results form one report, and its id at the source (the report is imported whole or not at
all, and again under the same id it replaces, never duplicates):

1. a Bundle with an ``identifier`` whose results are all one patient's: the whole Bundle is one
   report, its id ``Bundle.identifier.value``;
2. otherwise each DiagnosticReport: its results (``result``, and the members of a panel Observation,
   ``hasMember``), its id its first ``identifier.value``, else its ``id``, its date
   ``effectiveDateTime`` (or ``effectivePeriod.start``, or ``issued``);
3. and each Observation no DiagnosticReport or panel lists is a report of its own: its id its
   first ``identifier.value``, else ``Observation/`` and its ``id`` (so each is idempotent on its own).

A trimmed example::

    {"resourceType": "Bundle", "type": "searchset", "entry": [
      {"fullUrl": "https://lis.example/fhir/Patient/p1", "resource": {"resourceType": "Patient", "id": "p1",
        "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "T0000001"}]}},
      {"fullUrl": "https://lis.example/fhir/DiagnosticReport/r1", "resource": {"resourceType": "DiagnosticReport",
        "id": "r1", "status": "final", "identifier": [{"value": "R2024-0001"}], "code": {"text": "Checkup"},
        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-03-05",
        "result": [{"reference": "Observation/o1"}]}},
      {"fullUrl": "https://lis.example/fhir/Observation/o1", "resource": {"resourceType": "Observation",
        "id": "o1", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-03-05T08:30:00+08:00",
        "component": [
          {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
           "valueQuantity": {"value": 146, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
          {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
           "valueQuantity": {"value": 92, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}]}}]}

The patient: a Patient ``identifier`` whose ``type`` is ``MR``/``PI``/``PT``/``MB`` (v2-0203) or whose
system names a card is a card number; type ``NI``/``NNCHN``/``CZ``/``SS`` or the PRC resident ID system
``urn:oid:2.16.156.10011.1.3`` is a resident ID number; otherwise a valid resident ID is read as
one and anything else as a card number. A ``subject`` may also carry the identifier itself.

An Observation's value is ``value[x]`` (a Quantity, with its comparator written out as ``<5``; an
integer; a string; a CodeableConcept's text; a boolean, time, range or ratio as text); each of its
``component`` is a result of its own (a blood-pressure panel 85354-9 gives 8480-6 and 8462-4), the
panel itself is not one. Statuses ``final``, ``amended`` and ``corrected`` are imported, others
skipped; so are a panel that only lists members and a result with a ``dataAbsentReason``. A code
outside the clinic's mapping and the indicator table is kept as it came, with its system and display.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from pydantic import ValidationError

from care.imports.report_formats.base import (
    Coding,
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
from care.imports.report_formats.checks import plausibility_problems

UCUM_SYSTEM = "http://unitsofmeasure.org"
RESIDENT_ID_SYSTEMS = frozenset({"urn:oid:2.16.156.10011.1.3"})
CARD_TYPES = frozenset({"MR", "PI", "PT", "MB"})
ID_NUMBER_TYPES = frozenset({"NI", "NNCHN", "CZ", "SS"})
FINAL_OBSERVATION = frozenset({"final", "amended", "corrected"})
FINAL_REPORT = frozenset({"final", "amended", "corrected", "appended"})
TOP_LEVEL = frozenset({"Bundle", "DiagnosticReport", "Observation"})
MAX_REPORT_ID = 128
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
#: How deep arrays and objects may be nested in a document. A real Bundle goes about 15 levels deep
#: (entry, resource, contained, component, code, coding, extensions of extensions); the limit keeps
#: the JSON reader and the models from running out of stack on a hostile one.
MAX_JSON_DEPTH = 100
#: How deep panels of panels are followed (``hasMember``).
MAX_PANEL_DEPTH = 8
#: value[x] fields of an Observation (and of its components), in the order they are looked at.
VALUE_FIELDS = (
    "valueQuantity", "valueInteger", "valueString", "valueCodeableConcept", "valueBoolean", "valueRange",
    "valueRatio", "valueTime", "valueDateTime", "valuePeriod", "valueSampledData",
)


@functools.cache
def resource_types() -> Mapping[str, Any]:
    """Return the ``fhir.resources`` R4B models read (imported on first use: they take half a second)."""
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport
    from fhir.resources.R4B.observation import Observation
    from fhir.resources.R4B.patient import Patient

    return {"Patient": Patient, "Observation": Observation, "DiagnosticReport": DiagnosticReport}


@dataclass(eq=False)
class _Entry:
    kind: str
    where: str
    resource: Any = None
    problems: list[ReportProblem] = field(default_factory=list)
    #: the resource this one is contained in
    container: _Entry | None = None
    #: the resources contained in this one, by id
    contained: dict[str, _Entry] = field(default_factory=dict)


def _label(kind: str, ident: object) -> str:
    # A Patient's id is left out: some senders use the card or record number as the resource id.
    return f"{kind}/{str(ident)[:64]}" if ident and kind != "Patient" else kind


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


def _codings(concept: Any) -> list[Coding]:
    """The codings of a CodeableConcept; a concept with only a text is coded by its text."""
    if concept is None:
        return []
    text = concept.text or None
    found = [
        Coding(str(coding.code), str(coding.system) if coding.system else None, coding.display or text)
        for coding in concept.coding or [] if coding.code
    ]
    if not found and text:
        found.append(Coding(text, None, text))
    return found


def _unit(quantity: Any) -> str:
    if quantity.system == UCUM_SYSTEM and quantity.code:
        return str(quantity.code)
    return str(quantity.unit or quantity.code or "")


def _quantity_text(quantity: Any) -> str:
    if quantity is None or quantity.value is None:
        return ""
    unit = _unit(quantity)
    return f"{quantity.value} {unit}".strip()


def _value_of(holder: Any) -> tuple[object, str, str] | None:
    """An Observation's (or component's) value[x] as ``(raw value, unit, field)``; None when it has none."""
    for name in VALUE_FIELDS:
        value = getattr(holder, name, None)
        if value is None:
            continue
        if name == "valueQuantity":
            if value.value is None:
                return None, _unit(value), "valueQuantity.value"
            raw: object = f"{value.comparator}{value.value}" if value.comparator else value.value
            return raw, _unit(value), "valueQuantity.value"
        if name == "valueCodeableConcept":
            codings = value.coding or []
            text = value.text or next((c.display or c.code for c in codings if c.display or c.code), None)
            return text, "", name
        if name == "valueBoolean":
            return ("true" if value else "false"), "", name
        if name in ("valueTime", "valueDateTime"):
            return (value.isoformat() if isinstance(value, date | datetime | time) else str(value)), "", name
        if name == "valueRange":
            return f"{_quantity_text(value.low)}-{_quantity_text(value.high)}", "", name
        if name == "valueRatio":
            return f"{_quantity_text(value.numerator)}:{_quantity_text(value.denominator)}", "", name
        if name == "valuePeriod":
            return f"{value.start or ''}/{value.end or ''}", "", name
        if name == "valueSampledData":
            return str(value.data or "")[:1024], "", name
        return value, "", name
    return None


def _has_value(holder: Any) -> bool:
    return any(getattr(holder, name, None) is not None for name in VALUE_FIELDS)


class _Document:
    """The resources of one document, indexed for references, and the reports they make."""

    def __init__(self, data: dict[str, Any], context: ParseContext) -> None:
        self.context = context
        self.entries: list[_Entry] = []
        self.top: list[_Entry] = []
        self.by_reference: dict[str, _Entry] = {}
        self.identifier = ""
        self.where = "Bundle"
        if data.get("resourceType") == "Bundle":
            identifier = data.get("identifier")
            self.identifier = str(identifier.get("value") or "").strip() if isinstance(identifier, dict) else ""
            raw_entries = data.get("entry") or []
            if not isinstance(raw_entries, list):
                raise ReportFileError("the Bundle's 'entry' is not a list")
            for index, raw in enumerate(raw_entries, start=1):
                resource = raw.get("resource") if isinstance(raw, dict) else None
                if isinstance(resource, dict):
                    full_url = raw.get("fullUrl")
                    kind = str(resource.get("resourceType", "?"))[:40]
                    self._add(f"entry {index} ({_label(kind, resource.get('id'))})", resource,
                              full_url if isinstance(full_url, str) else None)
        else:
            kind = str(data.get("resourceType"))
            self.where = _label(kind, data.get("id"))
            self._add(self.where, data, None)

    # --- reading ---------------------------------------------------------------------------------

    def _add(self, where: str, raw: dict[str, Any], full_url: str | None) -> None:
        kind = str(raw.get("resourceType", ""))
        model = resource_types().get(kind)
        if model is None:
            return  # other resources (Composition, Encounter, Practitioner...) are not needed
        entry = _Entry(kind, where)
        try:
            entry.resource = model.model_validate(raw)
        except ValidationError as problem:
            entry.problems = _validation_problems(where, problem)
        self.entries.append(entry)
        self.top.append(entry)
        for key in self._keys(kind, raw.get("id"), full_url):
            self.by_reference.setdefault(key, entry)
        if entry.resource is not None:
            for inner in entry.resource.contained or []:
                inner_kind = inner.get_resource_type()
                if inner_kind in resource_types() and inner.id:
                    child = _Entry(inner_kind, f"{where}, contained {_label(inner_kind, inner.id)}", inner,
                                   container=entry)
                    entry.contained[str(inner.id)] = child
                    self.entries.append(child)

    @staticmethod
    def _keys(kind: str, ident: object, full_url: str | None) -> list[str]:
        keys = []
        if full_url:
            keys.append(full_url)
            parts = full_url.rstrip("/").split("/")
            if len(parts) >= 2 and "://" in full_url:
                keys.append("/".join(parts[-2:]))
        if ident:
            keys.append(f"{kind}/{ident}")
        return keys

    def resolve(self, reference: str | None, origin: _Entry) -> _Entry | None:
        """The entry a reference from ``origin`` names (``#id`` within its container), or None."""
        if not reference:
            return None
        if reference.startswith("#"):
            return (origin.container or origin).contained.get(reference[1:])
        reference = reference.split("/_history/", 1)[0]
        found = self.by_reference.get(reference)
        if found is None and "://" in reference:
            found = self.by_reference.get("/".join(reference.rstrip("/").split("/")[-2:]))
        return found

    def subject(self, reference: Any, origin: _Entry, report: ParsedReport) -> list[PatientRef]:
        """Return the subject's identifiers; add a problem to ``report`` when there are none."""
        where = origin.where
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
        entry = self.resolve(key, origin)
        if entry is None or entry.kind != "Patient":
            # The reference itself is not repeated: a conditional one (Patient?identifier=...) holds an ID number.
            report.refuse(where, "subject", "is not a Patient in this document and carries no identifier")
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

    def _subject_key(self, entry: _Entry) -> str | None:
        """Who a resource is about, for telling whether a Bundle is one patient's (None: it does not say)."""
        reference = entry.resource.subject if entry.resource is not None else None
        if reference is None:
            return None
        if reference.identifier is not None:
            return f"identifier:{reference.identifier.system}|{reference.identifier.value}"
        target = self.resolve(reference.reference, entry)
        return f"entry:{id(target)}" if target is not None else f"reference:{reference.reference}"

    # --- grouping --------------------------------------------------------------------------------

    def _members(self, entry: _Entry, seen: set[int], depth: int = 0) -> list[_Entry]:
        """An Observation and the members of its panel (``hasMember``), each once."""
        if id(entry) in seen:
            return []
        seen.add(id(entry))
        found = [entry]
        if entry.resource is not None and depth < MAX_PANEL_DEPTH:
            for member in entry.resource.hasMember or []:
                target = self.resolve(member.reference, entry)
                if target is not None and target.kind == "Observation":
                    found.extend(self._members(target, seen, depth + 1))
        return found

    def _results(self, report_entry: _Entry, report: ParsedReport, seen: set[int]) -> list[_Entry]:
        """The Observations a DiagnosticReport lists (with their panels' members); problems for the others."""
        members: list[_Entry] = []
        for item in report_entry.resource.result or []:
            target = self.resolve(item.reference, report_entry)
            if target is None or target.kind != "Observation":
                reference = item.reference or ""
                report.refuse(report_entry.where, "result", f"{reference[:80]!r} is not an Observation in this "
                                                            "document")
                continue
            members.extend(self._members(target, seen))
        return members

    def reports(self) -> Iterator[ParsedReport]:
        diagnostic = [entry for entry in self.top if entry.kind == "DiagnosticReport"]
        claimed: set[int] = set()
        for entry in diagnostic:
            if entry.resource is not None:
                for item in entry.resource.result or []:
                    target = self.resolve(item.reference, entry)
                    if target is not None:
                        claimed.update(id(member) for member in self._members(target, set()))
        for entry in self.entries:
            if entry.kind == "Observation" and entry.resource is not None:
                for member in entry.resource.hasMember or []:
                    target = self.resolve(member.reference, entry)
                    if target is not None and target is not entry:
                        claimed.add(id(target))
        strays = [entry for entry in self.top if entry.kind == "Observation" and id(entry) not in claimed]
        if self.identifier and self._one_patient(diagnostic, strays):
            yield self._whole(diagnostic, strays)
            return
        for entry in diagnostic:
            yield self._diagnostic_report(entry)
        for entry in strays:
            yield self._observation_report(entry)

    def _one_patient(self, diagnostic: list[_Entry], strays: list[_Entry]) -> bool:
        subjects = {self._subject_key(entry) for entry in (*diagnostic, *strays)}
        subjects.discard(None)
        return len(subjects) <= 1 and bool(diagnostic or strays)

    def _checked_id(self, report: ParsedReport, where: str, column: str) -> None:
        if not report.report_ref:
            report.refuse(where, column, "no report id (Bundle.identifier, DiagnosticReport.identifier or id, "
                                         "Observation.identifier or id)")
        elif len(report.report_ref) > MAX_REPORT_ID:
            report.refuse(where, column, f"is longer than {MAX_REPORT_ID} characters")

    def _report_time(self, entry: _Entry, report: ParsedReport) -> Moment | None:
        resource = entry.resource
        moment = _moment(resource.effectiveDateTime) or (
            _moment(resource.effectivePeriod.start) if resource.effectivePeriod is not None else None
        ) or _moment(resource.issued)
        if moment is not None and (reason := self.context.check_day(day_of(moment))) is not None:
            report.refuse(entry.where, "effectiveDateTime", reason)
            return None
        return moment

    def _add_diagnostic(self, entry: _Entry, report: ParsedReport, seen: set[int]) -> None:
        """Add one DiagnosticReport's results to ``report``."""
        if entry.problems:
            report.problems.extend(entry.problems)
            return
        members = self._results(entry, report, seen)
        report.rows += len(members)
        if not report.patients:
            report.patients = self.subject(entry.resource.subject, entry, report)
        moment = self._report_time(entry, report)
        if report.report_date is None:
            report.report_date = moment
        if entry.resource.status not in FINAL_REPORT:
            report.skipped_rows += len(members)
            return
        for member in members:
            self._observation(member, report, moment)

    def _whole(self, diagnostic: list[_Entry], strays: list[_Entry]) -> ParsedReport:
        """The whole Bundle as one report, under its identifier."""
        report = ParsedReport(report_ref=self.identifier, where=self.where)
        self._checked_id(report, self.where, "identifier")
        seen: set[int] = set()
        for entry in diagnostic:
            self._add_diagnostic(entry, report, seen)
        for stray in strays:
            self._add_observations(stray, report, seen)
        return self._checked(report)

    def _diagnostic_report(self, entry: _Entry) -> ParsedReport:
        report = ParsedReport(report_ref=None, where=entry.where)
        if entry.resource is not None:
            identifiers = [item.value for item in entry.resource.identifier or [] if item.value]
            report.report_ref = (identifiers[0] if identifiers else entry.resource.id) or None
            self._checked_id(report, entry.where, "identifier")
        self._add_diagnostic(entry, report, set())
        return self._checked(report)

    def _observation_report(self, entry: _Entry) -> ParsedReport:
        """A stand-alone Observation (with its panel's members) as a report of its own."""
        report = ParsedReport(report_ref=None, where=entry.where)
        if entry.resource is not None:
            identifiers = [item.value for item in entry.resource.identifier or [] if item.value]
            report.report_ref = identifiers[0] if identifiers else (
                f"Observation/{entry.resource.id}" if entry.resource.id else None
            )
            self._checked_id(report, entry.where, "identifier")
        self._add_observations(entry, report, set())
        return self._checked(report)

    def _add_observations(self, entry: _Entry, report: ParsedReport, seen: set[int]) -> None:
        members = self._members(entry, seen)
        report.rows += len(members)
        for member in members:
            if not report.patients and member.resource is not None:
                report.patients = self.subject(member.resource.subject, member, report)
            self._observation(member, report, None)

    @staticmethod
    def _checked(report: ParsedReport) -> ParsedReport:
        report.problems.extend(plausibility_problems(report.results))
        return report

    # --- one Observation ---------------------------------------------------------------------------

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
            own = {(ref.kind, ref.value) for ref in self.subject(resource.subject, entry, scratch)}
            if scratch.problems:
                report.problems.extend(scratch.problems)
                return
            if not own & {(ref.kind, ref.value) for ref in report.patients}:
                report.refuse(entry.where, "subject", "is not the report's patient")
                return
        parts: list[tuple[str, Any, Any]] = []
        if _has_value(resource):
            parts.append(("", resource.code, resource))
        parts.extend((f"component[{number}].", component.code, component)
                     for number, component in enumerate(resource.component or [], start=1))
        if not parts:
            if resource.hasMember or resource.dataAbsentReason is not None:
                report.skipped_rows += 1  # a panel that only lists its members, or a result not obtained
                return
            report.refuse(entry.where, "value[x]", "is required (a value, components or members)")
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
        for prefix, concept, holder in parts:
            value = _value_of(holder)
            if value is None:
                if holder.dataAbsentReason is None:
                    report.refuse(entry.where, prefix + "value[x]", "is required")
                continue
            raw, unit, column = value
            columns = Columns(prefix + "code", prefix + column, prefix + "valueQuantity.unit")
            line = convert(report, _codings(concept), raw, unit, moment, entry.where, columns, self.context)
            if line is not None:
                report.add_result(line, moment)


#: A JSON string (brackets inside one do not nest), written so that matching it never backtracks.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
#: Opening brackets become 1 and closing ones -1 (255 read as a signed byte).
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def json_depth(raw: bytes) -> int:
    """Return how deep arrays and objects nest in the JSON text ``raw``, without parsing it.

    Linear and without recursion, so it can be asked of any document before :func:`json.loads`
    (whose reader recurses once per level). UTF-8 never puts a quote, a backslash or a bracket
    inside a multi-byte character, so the bytes can be scanned as they are.
    """
    skeleton = _JSON_STRING.sub(b"", raw).translate(_DEPTH_STEPS, _NOT_BRACKETS)
    return max(itertools.accumulate(memoryview(skeleton).cast("b")), default=0)


def _read_json(raw: bytes, name: str) -> Any:
    """Parse a document's bytes, or say in one line why they cannot be read as JSON."""
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise ReportFileError(f"{name} is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as problem:
        raise ReportFileError(f"{name} is not UTF-8 text") from problem
    except json.JSONDecodeError as problem:
        raise ReportFileError(f"{name} is not valid JSON: {problem.msg} at line {problem.lineno}") from None
    except ValueError:  # an integer longer than Python converts (sys.get_int_max_str_digits())
        raise ReportFileError(f"{name} is not valid JSON: a number is too long") from None


@register
class FhirFormat(ReportFormat):
    """FHIR R4: a Bundle of any type, a DiagnosticReport, or an Observation."""

    name = "fhir"
    title = "FHIR R4 Bundle, DiagnosticReport or Observation (.json)"
    suffixes = (".json",)
    media_types = ("application/fhir+json",)

    def reports(self, source: ReportSource, context: ParseContext) -> Iterator[ParsedReport]:
        """Validate every resource, then yield the document's reports."""
        with source.open() as handle:
            raw = handle.read(MAX_BUNDLE_BYTES + 1)
        if len(raw) > MAX_BUNDLE_BYTES:
            raise ReportFileError(f"{source.name} is larger than {MAX_BUNDLE_BYTES // (1024 * 1024)} MB")
        data = _read_json(raw, source.name)
        if not isinstance(data, dict) or data.get("resourceType") not in TOP_LEVEL:
            raise ReportFileError(f"{source.name} is not a FHIR Bundle, DiagnosticReport or Observation "
                                  "(resourceType)")
        yield from _Document(data, context).reports()
