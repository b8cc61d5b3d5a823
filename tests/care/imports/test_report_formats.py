"""The report formats alone (no database): what each reads, and how it names what it refuses."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from care.imports.report_formats import (
    FORMATS,
    ParseContext,
    ParsedReport,
    ReportFileError,
    ReportSource,
    UnknownFormatError,
    format_for_media_type,
    format_for_path,
)
from care.imports.report_formats.hl7v2 import parse_ts
from tests.care.imports.samples import csv_bytes, fhir_bundle, hl7_message, quantity

TODAY = ParseContext(today=date(2026, 11, 29))


def parse(fmt: str, data: bytes) -> list[ParsedReport]:
    return list(FORMATS[fmt].reports(ReportSource.from_bytes(f"upload.{fmt}", data), TODAY))


@pytest.mark.parametrize(
    ("name", "fmt"), [("a.xlsx", "xlsx"), ("a.CSV", "csv"), ("a.hl7", "hl7v2"), ("bundle.json", "fhir")]
)
def test_formats_are_found_by_suffix(name: str, fmt: str) -> None:
    assert format_for_path(Path(name)).name == fmt


@pytest.mark.parametrize(
    ("media_type", "fmt"),
    [("text/csv; charset=utf-8", "csv"), ("application/hl7-v2", "hl7v2"), ("x-application/hl7-v2+er7", "hl7v2"),
     ("application/fhir+json", "fhir"), ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx")],
)
def test_formats_are_found_by_media_type(media_type: str, fmt: str) -> None:
    assert format_for_media_type(media_type).name == fmt


def test_unknown_types_are_refused() -> None:
    with pytest.raises(UnknownFormatError, match="unknown file type '.pdf'"):
        format_for_path(Path("a.pdf"))
    with pytest.raises(UnknownFormatError, match="unsupported media type 'text/plain'"):
        format_for_media_type("text/plain")


def test_a_row_without_report_id_is_refused_on_its_own() -> None:
    reports = parse("csv", csv_bytes([["T1", "", "2024-03-05", "sbp", "130", "mmHg"],
                                      ["T1", "R1", "2024-03-05", "sbp", "130", "mmHg"]]))
    assert [(report.report_ref, [str(p) for p in report.problems]) for report in reports] == [
        (None, ["row 2, report_id: is required"]), ("R1", []),
    ]


def test_rows_of_a_report_apart_are_gathered_into_one_report() -> None:
    reports = parse("csv", csv_bytes([
        ["T1", "R1", "2024-03-05", "sbp", "130", "mmHg"],
        ["T2", "R2", "2024-03-06", "sbp", "120", "mmHg"],
        ["T1", "R1", "2024-03-04", "dbp", "80", "mmHg"],
    ]))
    one, two = reports[1], reports[0]  # a report is handed over once its last row is read
    assert (two.report_ref, one.report_ref) == ("R2", "R1")
    assert one.where == "rows 2-4"
    assert [line.code for line in one.results] == ["8480-6", "8462-4"]
    assert one.report_date == date(2024, 3, 4)  # the earliest date of its rows
    assert [ref.value for ref in one.patients] == ["T1"]


def test_hl7_escapes_subcomponents_and_alternate_codes() -> None:
    message = "\r".join([
        "MSH|^~\\&|LIS|CENTRE|CARELOOP|CLINIC|20240305101500+0800||ORU^R01^ORU_R01|M1|P|2.5.1",
        "PID|1||T1^^^CLINIC&1.2.3&ISO^MR",
        "OBR|1||R\\T\\1^LIS||||20240305083000+0800",
        "OBX|1|SN|LOCAL-7^收缩压^L^8480-6^SBP^LN||^146|mm[Hg]|||||F",
        "OBX|2|NM|2093-3^^LN||201|mg/dL^^UCUM|||||C|||202403050830",
    ]).encode()
    [report] = parse("hl7v2", message)
    assert report.problems == []
    assert report.report_ref == "R&1"
    assert [ref.value for ref in report.patients] == ["T1"]
    first, second = report.results
    assert (first.code, first.value) == ("8480-6", 146.0)
    assert first.effective == datetime(2024, 3, 5, 8, 30, tzinfo=timezone(timedelta(hours=8)))
    assert (second.code, round(second.value, 3)) == ("14647-2", 5.198)
    assert second.effective == datetime(2024, 3, 5, 8, 30)  # no offset: the patient's local time


def test_hl7_in_gb18030_and_mllp_framing_is_read() -> None:
    text = "\x0b" + hl7_message(card="T1", results=[("8480-6", "130", "mmHg", "F")]) + "\x1c\r"
    [report] = parse("hl7v2", text.encode("gb18030"))
    assert report.problems == []
    assert len(report.results) == 1


def test_hl7_missing_pid_is_refused_and_a_comparator_value_is_kept_unused() -> None:
    message = "\r".join([
        "MSH|^~\\&|LIS|CENTRE|CARELOOP|CLINIC|20240305101500||ORU^R01|M1|P|2.5.1",
        "OBR|1||R1||||20240305083000",
        "OBX|1|SN|8480-6^^LN||>^140|mm[Hg]|||||F",
    ]).encode()
    [report] = parse("hl7v2", message)
    assert [str(problem) for problem in report.problems] == [
        "message 1 (line 1), OBR 1, PID: no PID segment before this OBR",
    ]
    [line] = report.results
    assert (line.code, line.value, line.value_text, line.unit, line.kept) == (
        "8480-6", None, ">140", "mm[Hg]", "value_not_usable")


def test_hl7_files_without_messages_are_file_errors() -> None:
    with pytest.raises(ReportFileError, match="before the first MSH"):
        parse("hl7v2", b"PID|1||T1\r")
    with pytest.raises(ReportFileError, match="no HL7 message"):
        parse("hl7v2", b"\r\n\r\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240305", date(2024, 3, 5)),
        ("202403050830", datetime(2024, 3, 5, 8, 30)),
        ("20240305083015.25+0800", datetime(2024, 3, 5, 8, 30, 15, 250000, tzinfo=timezone(timedelta(hours=8)))),
        ("2024-03-05", "is not a date/time"),
        ("2024", "is not a date/time"),
        ("20241305", "is not a valid date/time"),
    ],
)
def test_hl7_timestamps(text: str, expected: object) -> None:
    found = parse_ts(text)
    if isinstance(expected, str):
        assert isinstance(found, str)
        assert expected in found
    else:
        assert found == expected


def test_fhir_observations_outside_a_report_use_the_bundle_identifier() -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "identifier": {"value": "B-7"}, "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "identifier": [
            {"system": "urn:oid:2.16.156.10011.1.3", "value": "110101196005170028"},
            {"system": "https://clinic.example/card", "value": "T1"}]}},
        {"fullUrl": "urn:uuid:o", "resource": {"resourceType": "Observation", "status": "final",
                                               "subject": {"reference": "urn:uuid:p"},
                                               "effectiveDateTime": "2024-03-05T08:30:00+08:00",
                                               **quantity("8480-6", 130, "mmHg")}},
    ]}
    [report] = parse("fhir", json.dumps(bundle).encode())
    assert report.report_ref == "B-7"
    assert report.problems == []
    assert [(ref.kind, ref.value) for ref in report.patients] == [("card_no", "T1")]  # the ID's checksum fails


def test_fhir_preliminary_reports_are_skipped_and_other_patients_refused() -> None:
    [skipped] = parse("fhir", fhir_bundle(card="T1", status="preliminary", observations=[quantity("8480-6", 1, "x")]))
    assert (skipped.skipped_rows, skipped.results, skipped.problems) == (1, [], [])
    other = {**quantity("8480-6", 130, "mmHg"), "subject": {"identifier": {"type": {"coding": [{"code": "MR"}]},
                                                                          "value": "T2"}}}
    [refused] = parse("fhir", fhir_bundle(card="T1", observations=[other]))
    assert [str(problem) for problem in refused.problems] == [
        "entry 3 (Observation/obs-1), subject: is not the report's patient"
    ]


def test_a_document_of_another_resource_type_is_a_file_error() -> None:
    with pytest.raises(ReportFileError, match="is not a FHIR Bundle, DiagnosticReport or Observation"):
        parse("fhir", b'{"resourceType": "Patient"}')
    with pytest.raises(ReportFileError, match="is not a FHIR Bundle"):
        parse("fhir", b'[1, 2]')
