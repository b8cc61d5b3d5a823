"""``POST /api/v1/reports``: a source system pushes results with its API key; all or nothing."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import careloop.api
from care.api_keys import create_api_key, revoke_api_key
from care.models import AuditEntry, CheckupReport, Observation, Patient, SourceApiKey
from security.audit import Actor
from tests.care.imports.samples import csv_bytes, fhir_bundle, hl7_message, quantity, xlsx_bytes

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
    monkeypatch.setattr(careloop.api, "REPORT_MAX_BYTES", 64)
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
    assert answer["problems"] == [{
        "where": "row 3", "column": "value",
        "reason": "sbp is outside the plausible range 60-300 mmHg (a unit or typing error?)",
    }]
    assert answer["reports"] == {"imported": 1, "replaced": 0, "skipped": 0, "rejected": 1}
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
