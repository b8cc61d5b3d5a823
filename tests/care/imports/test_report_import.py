"""Report import into the record: whole or not at all, idempotent, converted, encrypted, audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from care.imports.report_formats import FORMATS, ReportSource
from care.imports.reports import ReportTally, import_document
from care.models import AuditEntry, CheckupReport, Observation, Patient, StaffTask, TagReevaluation
from care.observations import observations_of
from security.audit import Actor
from tests.care.imports.samples import csv_bytes, fhir_bundle, hl7_message, quantity, xlsx_bytes

ACTOR = Actor("system", "pytest", "tests")


def run(db: Session, fmt: str, data: bytes, *, source: str = "centre") -> ReportTally:
    tally = import_document(db, ReportSource.from_bytes(f"upload.{fmt}", data), FORMATS[fmt], source_name=source,
                            actor=ACTOR)
    db.flush()
    return tally


def values(db: Session, patient: Patient) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for observation in observations_of(db, patient):
        assert observation.value is not None
        found.setdefault(observation.code, []).append(round(observation.value, 3))
    return found


def test_csv_rows_become_observations_in_canonical_units(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient()
    data = csv_bytes([
        [patient.card_no, "R1", "2024-03-05", "sbp", "146", "mmHg"],
        [patient.card_no, "R1", "2024-03-05", "2093-3", "201", "mg/dL"],
        [patient.card_no, "R1", "2024-03-05", "14647-2", "5.2", "mmol/L"],
        [patient.card_no, "R1", "2024-03-05", "fpg", "126", "mg/dL"],
        [patient.card_no, "R1", "2024-03-05", "cr", "1.0", "mg/dL"],
        [patient.card_no, "R1", "2024-03-05", "height", "1.70", "m"],
    ])
    tally = run(db, "csv", data)
    assert tally.reports.imported == 1
    assert tally.rows.imported == 6
    assert not tally.problems
    assert values(db, patient) == {
        "8480-6": [146.0], "14647-2": [5.198, 5.2], "14771-0": [7.0], "14682-9": [88.4], "8302-2": [170.0],
    }
    report = db.scalars(select(CheckupReport)).one()
    assert report.report_ref == "R1"
    assert report.report_date == date(2024, 3, 5)
    assert report.result_count == 6
    first = observations_of(db, patient)[0]
    assert first.effective_at == datetime(2024, 3, 4, 16, 0, tzinfo=UTC)  # 2024-03-05 00:00 in Shanghai
    assert first.source == "report:csv"
    assert first.source_ref == str(report.id)


def resident_id(first17: str = "11010119600517002") -> str:
    from care.identifiers import id_number_check_character

    return first17 + id_number_check_character(first17)


def test_xlsx_with_chinese_headers_and_rows_of_a_report_apart(
    db: Session, make_patient: Callable[..., Patient]
) -> None:
    one, two = make_patient(), make_patient()
    data = xlsx_bytes([
        [one.card_no, "R1", datetime(2023, 5, 12), "sbp", 128, "mmHg"],
        [two.card_no, "R2", "2023-06-01", "fpg", 5.4, "mmol/L"],
        [one.card_no, "R1", datetime(2023, 5, 12), "dbp", 82, "mmHg"],
        [two.card_no, "R2", "2023-06-01", "tc", 190, "mg/dL"],
        [one.card_no, "R1", datetime(2023, 5, 12), "weight", 70.5, "kg"],
    ])
    tally = run(db, "xlsx", data)
    assert (tally.reports.imported, tally.rows.imported, tally.problems) == (2, 5, [])
    assert values(db, one) == {"8480-6": [128.0], "8462-4": [82.0], "29463-7": [70.5]}
    assert values(db, two) == {"14771-0": [5.4], "14647-2": [4.913]}


def test_mixed_units_in_one_file_are_converted_with_each_analytes_factor(
    db: Session, make_patient: Callable[..., Patient]
) -> None:
    patient = make_patient()
    rows = [
        ("R1", "2022-04-01", "fpg", "108", "mg/dL"), ("R2", "2023-04-01", "fpg", "6.0", "mmol/L"),
        ("R1", "2022-04-01", "tg", "177.14", "mg/dL"), ("R2", "2023-04-01", "tg", "2.0", "mmol/L"),
        ("R1", "2022-04-01", "ua", "7.06", "mg/dL"), ("R2", "2023-04-01", "ua", "420", "µmol/L"),
        ("R1", "2022-04-01", "cr", "1.0", "mg/dL"), ("R2", "2023-04-01", "cr", "88", "umol/L"),
        ("R1", "2022-04-01", "hdl", "50", "mg/dL"), ("R2", "2023-04-01", "hdl", "1.3", "mmol/L"),
    ]
    tally = run(db, "csv", csv_bytes([[patient.card_no, *row] for row in rows]))
    assert tally.rows.imported == 10
    assert not tally.problems
    assert values(db, patient) == {
        "14771-0": [6.0, 6.0], "14927-8": [2.0, 2.0], "14933-6": [419.929, 420.0], "14682-9": [88.4, 88.0],
        "14646-4": [1.293, 1.3],
    }


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        (["sbp", "1350", "mmHg"], "value", "sbp is outside the plausible range 60-300 mmHg (a unit or typing error?)"),
        (["height", "17", "cm"], "value", "height is outside the plausible range 50-250 cm"),
        (["hgb", "1350", "g/L"], "value", "hgb is outside the plausible range 20-260 g/L"),
        (["fpg", "5.5", "mg/L"], "unit", "unit 'mg/L' is not accepted for fpg"),
        (["sbp", "高", "mmHg"], "value", "is not a number"),
        (["尿蛋白", "很多", ""], "value", "is not a test-strip grade"),
        (["718-7", "135", "furlongs"], "unit", "unit 'furlongs' is not accepted for hgb"),
        (["sbp", "", "mmHg"], "value", "is required"),
        (["sbp", "130", ""], "unit", "is required"),
    ],
)
def test_a_bad_row_refuses_its_whole_report_and_spares_the_others(
    db: Session, make_patient: Callable[..., Patient], row: list[str], column: str, reason: str
) -> None:
    patient = make_patient()
    data = csv_bytes([
        [patient.card_no, "GOOD", "2024-03-05", "sbp", "130", "mmHg"],
        [patient.card_no, "BAD", "2024-03-05", "dbp", "80", "mmHg"],
        [patient.card_no, "BAD", "2024-03-05", *row],
    ])
    tally = run(db, "csv", data)
    assert tally.reports.to_dict() == {"imported": 1, "replaced": 0, "skipped": 0, "rejected": 1}
    assert tally.rows.rejected == 2
    [problem] = tally.problems
    assert (problem.where, problem.column) == ("row 4", column)
    assert reason in problem.reason
    assert not row[1] or row[1] not in problem.reason  # a result is PHI: the reason never repeats it
    assert values(db, patient) == {"8480-6": [130.0]}  # nothing of the bad report, not even its good row


@pytest.mark.parametrize(
    ("card", "report_date", "column", "reason"),
    [
        ("NOSUCHCARD", "2024-03-05", "card_no", "no enrolled patient has this card number"),
        ("", "2024-03-05", "card_no", "is required"),
        ("{card}", "2024-13-05", "date", "is not a date in YYYY-MM-DD form"),
        ("{card}", "2027-01-01", "date", "is in the future"),
        ("{card}", "1899-12-31", "date", "is before 1900"),
    ],
)
def test_unknown_patients_and_bad_dates_are_named(
    db: Session, make_patient: Callable[..., Patient], card: str, report_date: str, column: str, reason: str
) -> None:
    patient = make_patient()
    data = csv_bytes([[card.format(card=patient.card_no), "R1", report_date, "sbp", "130", "mmHg"]])
    tally = run(db, "csv", data)
    assert tally.reports.rejected == 1
    assert [(p.where, p.column) for p in tally.problems] == [("row 2", column)]
    assert reason in tally.problems[0].reason
    assert db.scalar(select(func.count()).select_from(Observation)) == 0


def test_rows_of_one_report_naming_two_cards_are_refused(db: Session, make_patient: Callable[..., Patient]) -> None:
    one, two = make_patient(), make_patient()
    data = csv_bytes([
        [one.card_no, "R1", "2024-03-05", "sbp", "130", "mmHg"],
        [two.card_no, "R1", "2024-03-05", "dbp", "80", "mmHg"],
    ])
    tally = run(db, "csv", data)
    assert tally.reports.rejected == 1
    assert tally.problems[0].where == "row 3"
    assert f"belongs to card {one.card_no}" in tally.problems[0].reason


def test_reimport_replaces_never_duplicates(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient()
    first = csv_bytes([
        [patient.card_no, "R1", "2024-03-05", "sbp", "130", "mmHg"],
        [patient.card_no, "R1", "2024-03-05", "dbp", "80", "mmHg"],
    ])
    assert run(db, "csv", first).reports.imported == 1
    again = run(db, "csv", first)
    assert (again.reports.skipped, again.rows.skipped, again.reports.imported) == (1, 2, 0)
    corrected = csv_bytes([
        [patient.card_no, "R1", "2024-03-05", "sbp", "134", "mmHg"],
        [patient.card_no, "R1", "2024-03-05", "dbp", "80", "mmHg"],
    ])
    replaced = run(db, "csv", corrected)
    assert (replaced.reports.replaced, replaced.rows.replaced) == (1, 2)
    assert values(db, patient) == {"8480-6": [134.0], "8462-4": [80.0]}
    report = db.scalars(select(CheckupReport)).one()
    assert report.import_count == 2
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.resource_id == str(report.id))).all()
    assert sorted(actions) == ["report.import", "report.replace"]


def test_a_report_id_of_another_patient_is_refused(db: Session, make_patient: Callable[..., Patient]) -> None:
    one, two = make_patient(), make_patient()
    run(db, "csv", csv_bytes([[one.card_no, "R1", "2024-03-05", "sbp", "130", "mmHg"]]))
    tally = run(db, "csv", csv_bytes([[two.card_no, "R1", "2024-03-05", "sbp", "150", "mmHg"]]))
    assert tally.reports.rejected == 1
    assert "already belongs to another patient" in tally.problems[0].reason
    assert values(db, one) == {"8480-6": [130.0]}
    assert values(db, two) == {}
    # The same id at another source is another report.
    assert run(db, "csv", csv_bytes([[two.card_no, "R1", "2024-03-05", "sbp", "150", "mmHg"]]),
               source="other").reports.imported == 1


def test_import_marks_the_patient_for_tag_rule_reevaluation(
    db: Session, make_patient: Callable[..., Patient], clock: object
) -> None:
    patient, untouched = make_patient(), make_patient()
    run(db, "csv", csv_bytes([[patient.card_no, "R1", "2024-03-05", "sbp", "130", "mmHg"]]))
    marks = db.scalars(select(TagReevaluation)).all()
    assert [(mark.patient_id, mark.reason) for mark in marks] == [(patient.id, "report_import")]
    assert untouched.id not in {mark.patient_id for mark in marks}


def test_audit_entries_hold_ids_and_counts_never_values(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient()
    run(db, "csv", csv_bytes([[patient.card_no, "SECRET-REPORT-9", "2024-03-05", "sbp", "187", "mmHg"]]))
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "report.import")).one()
    assert entry.patient_id == patient.id
    assert "187" not in entry.details
    assert "SECRET-REPORT-9" not in entry.details
    assert patient.card_no not in entry.details


def test_hl7_messages_match_by_card_or_resident_id_and_skip_non_final_results(
    db: Session, make_patient: Callable[..., Patient]
) -> None:
    by_card = make_patient()
    by_id = make_patient(id_number=resident_id(), birth_date=date(1960, 5, 17), gender="F")
    data = (
        hl7_message(card=by_card.card_no, report_id="H1", results=[
            ("8480-6", "146", "mm[Hg]", "F"), ("2093-3", "201", "mg/dL", "C"), ("8462-4", "90", "mm[Hg]", "P"),
        ])
        + hl7_message(id_number=resident_id(), report_id="H2", control="MSG2", results=[
            ("14771-0", "6.1", "mmol/L", "F"),
        ])
    ).encode()
    tally = run(db, "hl7v2", data)
    assert not tally.problems
    assert (tally.reports.imported, tally.rows.imported, tally.rows.skipped) == (2, 3, 1)
    assert values(db, by_card) == {"8480-6": [146.0], "14647-2": [5.198]}
    assert values(db, by_id) == {"14771-0": [6.1]}
    [h1] = [obs for obs in observations_of(db, by_card) if obs.code == "8480-6"]
    assert h1.effective_at == datetime(2024, 3, 5, 0, 30, tzinfo=UTC)  # 08:30 local (Shanghai)


@pytest.mark.parametrize(
    ("message", "where", "column", "reason"),
    [
        (dict(results=[("8480-6", "", "mm[Hg]", "F")]), "message 1 (line 1), OBX 1", "OBX-5", "is required"),
        (dict(results=[("8480-6", "130", "furlongs", "F")]), "message 1 (line 1), OBX 1", "OBX-6", "not accepted"),
        (dict(results=[("8480-6", "1350", "mm[Hg]", "F")]), "message 1 (line 1), OBX 1", "OBX-5", "plausible"),
        (dict(when="2024-03-05", results=[("8480-6", "130", "mm[Hg]", "F")]), "message 1 (line 1), OBR 1",
         "OBR-7", "is not a date/time"),
        (dict(card="NOSUCH", results=[("8480-6", "130", "mm[Hg]", "F")]), "message 1 (line 1), PID", "PID-3",
         "no enrolled patient has this card number"),
        (dict(message_type="ADT^A01", results=[("8480-6", "130", "mm[Hg]", "F")]), "message 1 (line 1)", "MSH-9",
         "is not ORU^R01"),
    ],
)
def test_hl7_problems_name_message_segment_and_field(
    db: Session, make_patient: Callable[..., Patient], message: dict[str, object], where: str, column: str,
    reason: str,
) -> None:
    patient = make_patient()
    fields: dict[str, object] = {"card": patient.card_no, **message}
    good = hl7_message(card=patient.card_no, report_id="GOOD", control="G", results=[("8480-6", "120", "mmHg", "F")])
    tally = run(db, "hl7v2", (hl7_message(**fields) + good).encode())  # type: ignore[arg-type]
    assert tally.reports.rejected == 1
    assert tally.reports.imported == 1
    problem = tally.problems[0]  # a bad OBR-7 time is repeated in OBX-14 by this sample, and named there too
    assert (problem.where, problem.column) == (where, column)
    assert reason in problem.reason
    assert values(db, patient) == {"8480-6": [120.0]}


def test_fhir_bundle_with_a_blood_pressure_panel(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient()
    panel = {"code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]}, "component": [
        quantity("8480-6", 146, "mmHg", "mm[Hg]"), quantity("8462-4", 92, "mmHg", "mm[Hg]")]}
    data = fhir_bundle(card=patient.card_no, observations=[
        panel, quantity("2093-3", 201, "mg/dL", "mg/dL"),
        {**quantity("14771-0", 6.0, "mmol/L"), "status": "preliminary"},
    ])
    tally = run(db, "fhir", data)
    assert not tally.problems
    assert (tally.reports.imported, tally.rows.imported, tally.rows.skipped) == (1, 3, 1)
    assert values(db, patient) == {"8480-6": [146.0], "8462-4": [92.0], "14647-2": [5.198]}
    assert db.scalars(select(CheckupReport)).one().report_ref == "R-FHIR-1"


@pytest.mark.parametrize(
    ("observation", "column", "reason"),
    [
        (quantity("8480-6", 130, "bar"), "valueQuantity.unit", "not accepted"),
        (quantity("8302-2", 17, "cm"), "valueQuantity.value", "plausible"),
        ({"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}}, "value[x]", "is required"),
        (quantity("8480-6", "高", "mmHg"), "valueQuantity.value", ""),
        ({**quantity("8480-6", 130, "mmHg"), "valueQuantity": {"value": "abc"}}, "valueQuantity.value", ""),
    ],
)
def test_fhir_problems_name_the_entry_and_field(
    db: Session, make_patient: Callable[..., Patient], observation: dict[str, object], column: str, reason: str
) -> None:
    patient = make_patient()
    tally = run(db, "fhir", fhir_bundle(card=patient.card_no, observations=[quantity("8480-6", 120, "mmHg"),
                                                                             observation]))
    assert tally.reports.rejected == 1
    assert tally.rows.rejected == 2
    [problem] = tally.problems
    assert problem.where == "entry 4 (Observation/obs-2)"
    assert problem.column == column
    assert reason in problem.reason
    assert values(db, patient) == {}


def test_fhir_unknown_patient_is_named(db: Session) -> None:
    tally = run(db, "fhir", fhir_bundle(card="NOSUCH", observations=[quantity("8480-6", 120, "mmHg")]))
    assert [str(problem) for problem in tally.problems] == [
        "entry 1 (Patient), identifier: no enrolled patient has this card number"
    ]


def test_a_report_whose_results_contradict_each_other_is_refused_whole(db, make_patient):
    patient = make_patient()
    rows = [[patient.card_no, "RX1", "2024-03-05", *row] for row in (
        ("sbp", "80", "mmHg"), ("dbp", "120", "mmHg"), ("tc", "3.5", "mmol/L"), ("hdl", "4.0", "mmol/L"))]
    tally = import_document(db, ReportSource.from_bytes("swapped.csv", csv_bytes(rows)), FORMATS["csv"],
                            source_name="centre", actor=ACTOR)
    reasons = [problem.reason for problem in tally.problems]
    assert any("sbp must be higher than dbp" in reason for reason in reasons)
    assert any("hdl must be lower than tc" in reason for reason in reasons)
    assert tally.reports.imported == 0
    assert db.scalar(select(func.count()).select_from(Observation).where(Observation.patient_id == patient.id)) == 0


def test_an_imported_low_glucose_opens_one_urgent_task(db, make_patient):
    patient = make_patient()
    rows = [[patient.card_no, "RG1", "2024-03-05", "fpg", "2.6", "mmol/L"]]
    for _ in range(2):  # imported twice: the same reading, one task
        import_document(db, ReportSource.from_bytes("glucose.csv", csv_bytes(rows)), FORMATS["csv"],
                        source_name="centre", actor=ACTOR)
        db.flush()
    tasks = list(db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)))
    assert [(task.kind, task.priority, task.reason) for task in tasks] == [
        ("reading_red_flag", "urgent", "hypoglycaemia_level2")]
