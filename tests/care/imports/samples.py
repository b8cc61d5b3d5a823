"""Sample report documents in each format (synthetic patients and results)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook

from care.imports.report_formats.tabular import RESULT_TEMPLATE

ENGLISH = [column.english for column in RESULT_TEMPLATE.columns]
CHINESE = [column.chinese for column in RESULT_TEMPLATE.columns]


def csv_bytes(rows: Sequence[Sequence[Any]], *, header: Sequence[str] = ENGLISH) -> bytes:
    """The results template as CSV UTF-8 (with a BOM, as Excel saves it)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode()


def xlsx_bytes(rows: Sequence[Sequence[Any]], *, header: Sequence[str] = CHINESE) -> bytes:
    """The results template as a workbook (first sheet)."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "结果"
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def hl7_message(
    *, card: str | None = None, id_number: str | None = None, report_id: str = "R-HL7-1", control: str = "MSG1",
    when: str = "20240305083000", results: Sequence[tuple[str, str, str, str]] = (), message_type: str = "ORU^R01",
) -> str:
    """One ORU^R01 message; ``results`` are (code, value, unit, status) OBX values."""
    identifiers = []
    if card:
        identifiers.append(f"{card}^^^CLINIC^MR")
    if id_number:
        identifiers.append(f"{id_number}^^^CHN^NI")
    segments = [
        f"MSH|^~\\&|LIS|CENTRE|CARELOOP|CLINIC|20240305101500+0800||{message_type}|{control}|P|2.5.1",
        f"PID|1||{'~'.join(identifiers)}||测试^患者||19600517|F",
        f"OBR|1|PL-{report_id}|{report_id}^LIS|CHECKUP^体检|||{when}",
    ]
    for number, (code, value, unit, status) in enumerate(results, start=1):
        segments.append(f"OBX|{number}|NM|{code}^^LN||{value}|{unit}|||||{status}|||{when}")
    return "\r".join(segments) + "\r"


def fhir_bundle(
    *, card: str, report_id: str = "R-FHIR-1", when: str = "2024-03-05", status: str = "final",
    observations: Sequence[dict[str, Any]] = (),
) -> bytes:
    """A collection Bundle: a Patient (card number), a DiagnosticReport and its Observations."""
    entries: list[dict[str, Any]] = [
        {"fullUrl": "urn:uuid:patient-1", "resource": {
            "resourceType": "Patient", "id": "patient-1",
            "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": card}]}},
    ]
    references = []
    for number, observation in enumerate(observations, start=1):
        url = f"urn:uuid:obs-{number}"
        references.append({"reference": url})
        resource = {"resourceType": "Observation", "id": f"obs-{number}", "status": "final",
                    "subject": {"reference": "urn:uuid:patient-1"}, "effectiveDateTime": when}
        resource.update(observation)
        entries.append({"fullUrl": url, "resource": resource})
    entries.insert(1, {"fullUrl": "urn:uuid:report-1", "resource": {
        "resourceType": "DiagnosticReport", "id": "report-1", "status": status,
        "identifier": [{"system": "urn:centre:reports", "value": report_id}],
        "code": {"text": "体检"}, "subject": {"reference": "urn:uuid:patient-1"},
        "effectiveDateTime": when, "result": references}})
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}, ensure_ascii=False).encode()


def quantity(loinc: str, value: float, unit: str, ucum: str | None = None) -> dict[str, Any]:
    """An Observation's code and valueQuantity."""
    q: dict[str, Any] = {"value": value, "unit": unit}
    if ucum is not None:
        q.update(system="http://unitsofmeasure.org", code=ucum)
    return {"code": {"coding": [{"system": "http://loinc.org", "code": loinc}]}, "valueQuantity": q}
