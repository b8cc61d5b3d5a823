"""FHIR as real systems send it: every Bundle type, DiagnosticReports with contained or referenced
Observations, stand-alone Observations, panels; the report's identity; idempotent re-import."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from care.identifiers import id_number_check_character
from care.imports.report_formats import FORMATS, ReportSource
from care.imports.reports import ReportTally, import_document
from care.models import CheckupReport, Observation, Patient
from care.observations import observations_of
from security.audit import Actor
from tests.care.imports.samples import fixture, quantity

ACTOR = Actor("system", "pytest", "tests")
ID_FIRST17 = "11010119650302002"
ID_NUMBER = ID_FIRST17 + id_number_check_character(ID_FIRST17)


def run(db: Session, data: bytes, *, source: str = "lis") -> ReportTally:
    tally = import_document(db, ReportSource.from_bytes("upload.json", data), FORMATS["fhir"], source_name=source,
                            actor=ACTOR)
    db.flush()
    return tally


def stored(db: Session, patient: Patient) -> dict[str, tuple[object, str, bool]]:
    """code -> (value rounded or text, unit, used) of every result, kept ones included."""
    found: dict[str, tuple[object, str, bool]] = {}
    for row in observations_of(db, patient, kept_too=True):
        value = round(row.value, 3) if row.value is not None else row.value_text
        found[row.code] = (value, row.unit, row.recognised)
    return found


def test_a_transaction_bundle_of_a_basic_metabolic_panel(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient(card_no="UC-0001")
    tally = run(db, fixture("bmp_transaction.json"))
    assert tally.problems == []
    assert (tally.reports.imported, tally.rows.imported) == (1, 8)
    assert stored(db, patient) == {
        "2345-7": (104.0, "mg/dL", False),  # random glucose is not FPG: kept as it came
        "14937-7": (4.998, "mmol/L", True),  # BUN 14 mg/dL
        "14682-9": (79.56, "µmol/L", True),  # creatinine 0.9 mg/dL
        "2000-8": (2.345, "mmol/L", True),  # calcium 9.4 mg/dL
        "2951-2": (139.0, "mmol/L", True), "2823-3": (4.2, "mmol/L", True), "2075-0": (102.0, "mmol/L", True),
        "2028-9": (26.0, "mmol/L", True),
    }
    report = db.scalars(select(CheckupReport)).one()
    assert report.report_ref == "BMP-2024-0311-17"  # DiagnosticReport.identifier: the Bundle has none
    assert report.report_date == date(2024, 3, 11)
    kept = next(row for row in observations_of(db, patient, kept_too=True) if row.code == "2345-7")
    assert (kept.code_system, kept.display) == ("http://loinc.org", "Glucose [Mass/volume] in Serum or Plasma")
    assert tally.kept["unknown_code"].to_dict() == {"rows": 1, "codes": ["2345-7"]}


def test_a_searchset_with_absolute_urls_and_included_results(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient(card_no="UC-0002")
    tally = run(db, fixture("cbc_searchset.json"))
    assert tally.problems == []
    assert (tally.reports.imported, tally.rows.imported) == (1, 10)
    values = stored(db, patient)
    assert values["718-7"] == (136.0, "g/L", True)  # 13.6 g/dL, referenced as Observation/cbc-hgb/_history/2
    assert values["6690-2"] == (6.8, "10^9/L", True)
    assert values["786-4"] == (333.0, "g/L", True)
    assert values["58413-6"] == (0.0, "/100{WBCs}", False)
    assert db.scalars(select(CheckupReport)).one().report_ref == "cbc-2024-0520"  # the DiagnosticReport's id


def test_a_stand_alone_observation_is_its_own_report(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient(card_no="UC-0003")
    tally = run(db, fixture("esr_observation.json"))
    assert tally.problems == []
    assert stored(db, patient) == {"4537-7": (18.0, "mm/h", True)}
    assert db.scalars(select(CheckupReport)).one().report_ref == "ESR-2024-0007"


def test_a_diagnostic_report_with_contained_observations_and_grades(
    db: Session, make_patient: Callable[..., Patient]
) -> None:
    patient = make_patient(card_no="UC-0004")
    tally = run(db, fixture("urinalysis_contained.json"))
    assert tally.problems == []
    assert stored(db, patient) == {
        "20454-5": ("-", "", True), "25428-4": ("1+", "", True), "5794-3": ("±", "", True),
        "5811-5": (1.02, "", True), "5803-2": (6.0, "", True),
        "5778-6": ("淡黄色", "", False),  # urine colour: not in the table, kept with its text
    }


def test_a_document_bundle_is_one_report_under_its_identifier_with_the_bp_panel_split(
    db: Session, make_patient: Callable[..., Patient]
) -> None:
    patient = make_patient(card_no="UC-0005")
    tally = run(db, fixture("lipids_bp_document.json"))
    assert tally.problems == []
    assert (tally.reports.imported, tally.rows.imported) == (1, 6)
    values = stored(db, patient)
    assert values["22748-8"] == (3.388, "mmol/L", True)  # LDL-C 2089-1, 131 mg/dL
    assert values["14647-2"] == (5.482, "mmol/L", True)
    assert (values["8480-6"], values["8462-4"]) == ((138.0, "mmHg", True), (86.0, "mmHg", True))
    assert "85354-9" not in values  # the panel is not a result; its components are
    assert db.scalars(select(CheckupReport)).one().report_ref == "urn:uuid:0e9d7a30-0000-4000-8000-doc000000001"


def test_a_batch_with_an_identifier_and_a_panel_of_members(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient(id_number=ID_NUMBER, birth_date=date(1965, 3, 2), gender="F")
    tally = run(db, fixture("cbc_panel_batch.json", id_number=ID_NUMBER))
    assert tally.problems == []
    assert (tally.reports.imported, tally.rows.imported, tally.rows.skipped) == (1, 3, 1)
    assert stored(db, patient) == {"6690-2": (5.9, "10^9/L", True), "718-7": (141.0, "g/L", True),
                                   "777-3": (210.0, "10^9/L", True)}
    assert db.scalars(select(CheckupReport)).one().report_ref == "LIS-20241103-0042"


def test_observations_of_a_collection_without_identifiers_are_each_idempotent_on_their_own(
    db: Session, make_patient: Callable[..., Patient]
) -> None:
    patient = make_patient(card_no="UC-0006")
    data = fixture("home_readings_collection.json")
    first = run(db, data)
    assert first.problems == []
    assert (first.reports.imported, first.rows.imported) == (2, 2)
    refs = sorted(report.report_ref for report in db.scalars(select(CheckupReport)))
    assert refs == ["Observation/hr-1", "SCALE-77-2024-10-01"]
    again = run(db, data)
    assert (again.reports.skipped, again.reports.imported, again.reports.replaced) == (2, 0, 0)
    # One reading corrected: only its own report is replaced.
    corrected = json.loads(data)
    corrected["entry"][1]["resource"]["valueQuantity"]["value"] = 68.1
    third = run(db, json.dumps(corrected).encode())
    assert (third.reports.replaced, third.reports.skipped) == (1, 1)
    assert stored(db, patient)["29463-7"] == (68.1, "kg", True)
    assert len(observations_of(db, patient)) == 2


@pytest.mark.parametrize(
    "name",
    ["bmp_transaction.json", "cbc_searchset.json", "esr_observation.json", "urinalysis_contained.json",
     "lipids_bp_document.json", "cbc_panel_batch.json"],
)
def test_every_shape_imported_again_changes_nothing(
    db: Session, make_patient: Callable[..., Patient], name: str
) -> None:
    for card in ("UC-0001", "UC-0002", "UC-0003", "UC-0004", "UC-0005"):
        make_patient(card_no=card)
    make_patient(id_number=ID_NUMBER, birth_date=date(1965, 3, 2), gender="F")
    data = fixture(name, id_number=ID_NUMBER)
    first = run(db, data)
    assert first.problems == []
    rows = db.scalars(select(Observation.id)).all()
    again = run(db, data)
    assert (again.reports.imported, again.reports.replaced, again.reports.skipped) == (0, 0, first.reports.imported)
    assert db.scalars(select(Observation.id)).all() == rows


def test_a_searchset_of_two_patients_with_an_identifier_is_one_report_per_diagnostic_report(
    db: Session, make_patient: Callable[..., Patient]
) -> None:
    one, two = make_patient(card_no="UC-0010"), make_patient(card_no="UC-0011")
    entries: list[dict[str, object]] = []
    for number, patient in enumerate((one, two), start=1):
        entries.append({"fullUrl": f"urn:uuid:p{number}", "resource": {
            "resourceType": "Patient",
            "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": patient.card_no}]}})
        entries.append({"fullUrl": f"urn:uuid:r{number}", "resource": {
            "resourceType": "DiagnosticReport", "id": f"r{number}", "status": "final", "code": {"text": "BP"},
            "subject": {"reference": f"urn:uuid:p{number}"}, "effectiveDateTime": "2024-03-05",
            "result": [{"reference": f"urn:uuid:o{number}"}]}})
        entries.append({"fullUrl": f"urn:uuid:o{number}", "resource": {
            "resourceType": "Observation", "status": "final", "subject": {"reference": f"urn:uuid:p{number}"},
            "effectiveDateTime": "2024-03-05", **quantity("8480-6", 120 + number, "mmHg")}})
    bundle = {"resourceType": "Bundle", "type": "searchset", "identifier": {"value": "S-1"}, "entry": entries}
    tally = run(db, json.dumps(bundle).encode())
    assert tally.problems == []
    assert tally.reports.imported == 2
    assert sorted(report.report_ref for report in db.scalars(select(CheckupReport))) == ["r1", "r2"]
    assert stored(db, one) == {"8480-6": (121.0, "mmHg", True)}
    assert stored(db, two) == {"8480-6": (122.0, "mmHg", True)}


@pytest.mark.parametrize(
    ("document", "where", "column", "reason"),
    [
        ({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
          "subject": {"identifier": {"value": "UC-0020"}}, "valueString": "1"},
         "Observation", "identifier", "no report id"),
        ({"resourceType": "DiagnosticReport", "id": "d1", "status": "final", "code": {"text": "x"},
          "subject": {"identifier": {"value": "UC-0020"}}, "effectiveDateTime": "2024-03-05",
          "result": [{"reference": "#nope"}]},
         "DiagnosticReport/d1", "result", "'#nope' is not an Observation in this document"),
        ({"resourceType": "Observation", "id": "o1", "status": "final",
          "subject": {"reference": "Patient/elsewhere"}, "effectiveDateTime": "2024-03-05",
          **quantity("8480-6", 120, "mmHg")},
         "Observation/o1", "subject", "is not a Patient in this document and carries no identifier"),
        ({"resourceType": "Observation", "id": "o1", "status": "final",
          "subject": {"identifier": {"value": "UC-0020"}}, "effectiveDateTime": "2024-03-05",
          **quantity("8480-6", 1350, "mmHg")},
         "Observation/o1", "valueQuantity.value",
         "sbp is outside the plausible range 60-300 mmHg (a unit or typing error?)"),
        ({"resourceType": "Observation", "id": "o1", "status": "final",
          "subject": {"identifier": {"value": "UC-0020"}}, "effectiveDateTime": "2024-03-05",
          "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
          "component": [{**quantity("8480-6", 80, "mmHg")}, {**quantity("8462-4", 20000, "mmHg")}]},
         "Observation/o1", "component[2].valueQuantity.value", "dbp is outside the plausible range"),
    ],
)
def test_refusals_name_the_resource_and_field_never_the_value(
    db: Session, make_patient: Callable[..., Patient], document: dict[str, object], where: str, column: str,
    reason: str,
) -> None:
    make_patient(card_no="UC-0020")
    tally = run(db, json.dumps(document).encode())
    assert tally.reports.rejected == 1
    problem = tally.problems[0]
    assert (problem.where, problem.column) == (where, column)
    assert reason in problem.reason
    assert "1350" not in problem.reason
    assert "20000" not in problem.reason
    assert db.scalars(select(Observation.id)).all() == []


def test_an_observation_with_a_comparator_is_kept_unused(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient(card_no="UC-0021")
    observation = {"resourceType": "Observation", "id": "gfr", "status": "final",
                   "subject": {"identifier": {"value": "UC-0021"}}, "effectiveDateTime": "2024-03-05T08:00:00Z",
                   "code": {"coding": [{"system": "http://loinc.org", "code": "33914-3", "display": "eGFR MDRD"}]},
                   "valueQuantity": {"value": 90, "comparator": ">", "unit": "mL/min/{1.73_m2}",
                                     "system": "http://unitsofmeasure.org", "code": "mL/min/{1.73_m2}"}}
    tally = run(db, json.dumps(observation).encode())
    assert tally.problems == []
    [row] = observations_of(db, patient, kept_too=True)
    assert (row.code, row.value, row.value_text, row.unit, row.recognised) == (
        "98979-8", None, ">90", "mL/min/{1.73_m2}", False)
    assert row.effective_at == datetime(2024, 3, 5, 8, 0, tzinfo=UTC)
    assert tally.kept["value_not_usable"].to_dict() == {"rows": 1, "codes": ["98979-8"]}
    assert observations_of(db, patient) == []
