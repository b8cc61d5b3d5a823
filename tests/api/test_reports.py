"""``POST /api/v1/reports``: a source system pushes results with its API key; all or nothing."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import api.reports
from care.api_keys import create_api_key, revoke_api_key
from care.imports.mappings import MappingRow, store_mappings
from care.imports.report_formats import FORMATS, ReportSource
from care.imports.reports import import_document
from care.models import AuditEntry, CheckupReport, Observation, Patient, SourceApiKey
from security.audit import Actor
from tests.care.imports.samples import (
    CHECKUP_60,
    checkup_rows,
    csv_bytes,
    fhir_bundle,
    fixture,
    hl7_message,
    quantity,
    xlsx_bytes,
)

ACTOR = Actor("system", "pytest", "tests")
URL = "/api/v1/reports"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def api_key(db: Session) -> str:
    key = create_api_key(db, "centre-a", actor=ACTOR).key
    db.flush()
    return key


def push(client: FlaskClient, body: bytes, content_type: str, key: str | None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    response = client.post(URL, data=body, headers=headers, content_type=content_type)
    return response.status_code, json.loads(response.data)


def counts(db: Session) -> tuple[int, int]:
    db.expire_all()
    return (db.scalar(select(func.count()).select_from(Observation)) or 0,
            db.scalar(select(func.count()).select_from(CheckupReport)) or 0)


def refusals(db: Session) -> list[str]:
    db.expire_all()
    return [entry.details for entry in db.scalars(select(AuditEntry).where(AuditEntry.action == "report.push_refused"))]


def documents(card: str) -> dict[str, tuple[bytes, str]]:
    return {
        "csv": (csv_bytes([[card, "R1", "2024-03-05", "sbp", "146", "mmHg"],
                           [card, "R1", "2024-03-05", "tc", "201", "mg/dL"]]), "text/csv; charset=utf-8"),
        "xlsx": (xlsx_bytes([[card, "R1", "2024-03-05", "sbp", 146, "mmHg"],
                             [card, "R1", "2024-03-05", "tc", 201, "mg/dL"]]), XLSX),
        "hl7": (hl7_message(card=card, report_id="R1", results=[
            ("8480-6", "146", "mm[Hg]", "F"), ("2093-3", "201", "mg/dL", "F")]).encode(), "application/hl7-v2"),
        "er7": (hl7_message(card=card, report_id="R1", results=[
            ("8480-6", "146", "mm[Hg]", "F"), ("2093-3", "201", "mg/dL", "F")]).encode(), "x-application/hl7-v2+er7"),
        "fhir": (fhir_bundle(card=card, report_id="R1", observations=[
            quantity("8480-6", 146, "mmHg"), quantity("2093-3", 201, "mg/dL")]), "application/fhir+json"),
    }


@pytest.mark.parametrize("kind", ["csv", "xlsx", "hl7", "er7", "fhir"])
def test_each_format_is_imported_with_200_and_counts(
    client: FlaskClient, db: Session, make_patient: Callable[..., Patient], api_key: str, kind: str
) -> None:
    patient = make_patient()
    body, content_type = documents(patient.card_no)[kind]
    status, answer = push(client, body, content_type, api_key)
    assert status == 200, answer
    assert answer["status"] == "imported"
    assert answer["reports"] == {"imported": 1, "replaced": 0, "skipped": 0, "rejected": 0}
    assert answer["rows"] == {"imported": 2, "replaced": 0, "skipped": 0, "rejected": 0}
    assert counts(db) == (2, 1)
    report = db.scalars(select(CheckupReport)).one()
    assert report.source == "centre-a"
    pushes = db.scalars(select(AuditEntry).where(AuditEntry.action == "report.push")).all()
    assert len(pushes) == 1
    assert pushes[0].actor_kind == "api"
    assert db.scalars(select(SourceApiKey)).one().last_used_at is not None
    # Pushed again: skipped, nothing duplicated.
    status, answer = push(client, body, content_type, api_key)
    assert (status, answer["reports"]) == (200, {"imported": 0, "replaced": 0, "skipped": 1, "rejected": 0})
    assert counts(db) == (2, 1)


@pytest.mark.parametrize(("header", "status"), [(None, 401), ("clk_00000000_not-a-key", 401), ("garbage", 401)])
def test_missing_or_unknown_keys_get_401(
    client: FlaskClient, db: Session, make_patient: Callable[..., Patient], header: str | None, status: int
) -> None:
    body, content_type = documents(make_patient().card_no)["csv"]
    code, answer = push(client, body, content_type, header)
    assert code == status
    assert answer["error"] == "unauthorized"
    assert counts(db) == (0, 0)
    assert refusals(db) == ['{"source":null,"status":401}']


def test_a_revoked_key_gets_403(
    client: FlaskClient, db: Session, make_patient: Callable[..., Patient], api_key: str
) -> None:
    revoke_api_key(db, api_key.split("_")[1], actor=ACTOR)
    db.flush()
    body, content_type = documents(make_patient().card_no)["csv"]
    code, answer = push(client, body, content_type, api_key)
    assert (code, answer["error"]) == (403, "revoked")
    assert counts(db) == (0, 0)
    assert refusals(db) == ['{"source":"centre-a","status":403}']


def test_an_unknown_type_gets_415(client: FlaskClient, db: Session, api_key: str) -> None:
    code, answer = push(client, b"hello", "text/plain", api_key)
    assert code == 415
    assert "application/fhir+json" in answer["supported"]  # type: ignore[operator]
    assert refusals(db) == ['{"source":"centre-a","status":415}']


def test_an_oversized_body_gets_413(
    client: FlaskClient, db: Session, make_patient: Callable[..., Patient], api_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(api.reports, "REPORT_MAX_BYTES", 64)
    body, content_type = documents(make_patient().card_no)["csv"]
    code, answer = push(client, body, content_type, api_key)
    assert (code, answer["error"]) == (413, "too_large")
    assert counts(db) == (0, 0)


def test_any_bad_report_gets_422_with_the_problems_and_changes_nothing(
    client: FlaskClient, db: Session, make_patient: Callable[..., Patient], api_key: str
) -> None:
    patient = make_patient()
    body = csv_bytes([
        [patient.card_no, "GOOD", "2024-03-05", "sbp", "146", "mmHg"],
        [patient.card_no, "BAD", "2024-03-05", "sbp", "1350", "mmHg"],
    ])
    code, answer = push(client, body, "text/csv", api_key)
    assert code == 422
    assert answer["status"] == "rejected"
    assert answer["imported"] is False
    assert answer["problems"] == [{
        "where": "row 3", "column": "value",
        "reason": "sbp is outside the plausible range 60-300 mmHg (a unit or typing error?)",
    }]
    # The body says nothing was imported: the good report is withheld with the bad one.
    assert answer["reports"] == {"imported": 0, "replaced": 0, "skipped": 0, "rejected": 1}
    assert answer["rows"] == {"imported": 0, "replaced": 0, "skipped": 0, "rejected": 1}
    assert answer["withheld"] == {"reports": 1, "rows": 1}
    assert "nothing" in answer["message"]["en"]  # type: ignore[index]
    assert "1350" not in json.dumps(answer)
    assert counts(db) == (0, 0)  # the good report was rolled back with the rest
    imports = db.scalars(select(AuditEntry).where(AuditEntry.action == "report.import")).all()
    assert imports == []
    assert refusals(db) == ['{"source":"centre-a","status":422}']


def test_an_unreadable_body_gets_422(client: FlaskClient, db: Session, api_key: str) -> None:
    code, answer = push(client, b"{not json", "application/fhir+json", api_key)
    assert code == 422
    assert answer["problems"][0]["where"] == "body"  # type: ignore[index]
    assert "is not valid JSON" in answer["problems"][0]["reason"]  # type: ignore[index]


def test_the_report_limit_is_the_endpoints_own_not_the_apps(
    app: Flask, client: FlaskClient, db: Session, make_patient: Callable[..., Patient], api_key: str
) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 64  # the panel's and webhooks' limit; a pushed document may be larger
    body, content_type = documents(make_patient().card_no)["csv"]
    assert len(body) > 64
    code, answer = push(client, body, content_type, api_key)
    assert code == 200, answer


def test_the_answer_carries_the_clis_counts_and_the_kept_codes(
    client: FlaskClient, db: Session, make_patient: Callable[..., Patient], api_key: str
) -> None:
    patient = make_patient()
    body = xlsx_bytes(checkup_rows(patient.card_no))
    status, answer = push(client, body, XLSX, api_key)
    assert status == 200, answer
    job = import_document(db, ReportSource.from_bytes("b.xlsx", body), FORMATS["xlsx"], source_name="centre-a",
                          actor=ACTOR)  # the same document again, as the CLI reads it: found unchanged
    assert job.reports.skipped == 1
    unknown = sorted(name for name, _, _, key in CHECKUP_60 if key is None)
    assert answer["rows"] == {"imported": 60, "replaced": 0, "skipped": 0, "rejected": 0}
    assert answer["kept"] == {"unknown_codes": {"rows": 6, "codes": unknown},
                              "values_not_usable": {"rows": 0, "codes": []}}
    assert answer["summary"] == (
        "reports: 1 imported, 0 replaced, 0 skipped, 0 rejected; rows: 60 imported, 0 replaced, 0 skipped, 0 rejected; "
        f"of the 60 rows written, 6 with codes not in the indicator table: {', '.join(unknown)} "
        "(kept as they came, not used in rules or risk)"
    )
    assert counts(db) == (60, 1)


@pytest.mark.parametrize(("name", "card"), [("esr_observation.json", "UC-0003"), ("cbc_searchset.json", "UC-0002"),
                                            ("bmp_transaction.json", "UC-0001")])
def test_fhir_as_real_systems_send_it_is_accepted(
    client: FlaskClient, db: Session, make_patient: Callable[..., Patient], api_key: str, name: str, card: str
) -> None:
    make_patient(card_no=card)
    status, answer = push(client, fixture(name), "application/fhir+json", api_key)
    assert status == 200, answer
    assert answer["reports"] == {"imported": 1, "replaced": 0, "skipped": 0, "rejected": 0}


def test_a_push_uses_the_stored_mappings_of_its_source(
    client: FlaskClient, db: Session, make_patient: Callable[..., Patient], api_key: str
) -> None:
    patient = make_patient()
    store_mappings(db, [MappingRow("LIS-GLU", "fpg", "mg/dL")], source="centre-a", actor=ACTOR)
    db.flush()
    body = hl7_message(card=patient.card_no, report_id="R9", results=[("LIS-GLU", "108", "", "F")]).encode()
    status, answer = push(client, body, "application/hl7-v2", api_key)
    assert status == 200, answer
    assert answer["kept"]["unknown_codes"]["rows"] == 0  # type: ignore[index]
    db.expire_all()
    [row] = db.scalars(select(Observation)).all()
    assert (row.code, round(row.value or 0, 2), row.unit) == ("14771-0", 6.0, "mmol/L")


def test_a_refused_fhir_push_says_what_was_refused_and_that_nothing_was_imported(
    client: FlaskClient, db: Session, make_patient: Callable[..., Patient], api_key: str
) -> None:
    make_patient(card_no="UC-0006")
    bundle = json.loads(fixture("home_readings_collection.json"))
    bundle["entry"][2]["resource"]["valueQuantity"]["value"] = 900  # a heart rate that cannot be
    status, answer = push(client, json.dumps(bundle).encode(), "application/fhir+json", api_key)
    assert status == 422
    assert answer["imported"] is False
    assert answer["reports"] == {"imported": 0, "replaced": 0, "skipped": 0, "rejected": 1}
    assert answer["withheld"] == {"reports": 1, "rows": 1}
    assert answer["problems"] == [{"where": "entry 3 (Observation/hr-1)", "column": "valueQuantity.value",
                                   "reason": "hr is outside the plausible range 20-250 /min"}]
    assert counts(db) == (0, 0)
