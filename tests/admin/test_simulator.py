"""The simulator: a page, and a JSON endpoint that talks to the bot as a test patient over the console channel.

(That it never speaks for a real patient, and never sends over a real channel, is shown in
``tests/security/test_simulator_and_care_teams.py``.)"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from care.models import FlowResult, Patient, PatientStatus, StaffTask
from care.test_patients import own_test_patient
from security.audit import AuditEntry
from tests.admin.conftest import page_token
from tests.conftest import TEST_ACTOR


@pytest.fixture
def send(client):
    """Post one simulator message with the page's CSRF token; returns the response."""
    tokens: list[str] = []

    def post(body, **options):
        if not tokens:
            tokens.append(page_token(client, "/admin/simulator"))
        options.setdefault("json", body)
        return client.post("/admin/simulator/messages", headers={"X-CSRFToken": tokens[0]}, **options)

    return post


def test_the_page_loads_its_script_from_our_origin_only(client, signed_in):
    signed_in("health_manager")
    response = client.get("/admin/simulator")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<script src="/admin/static/simulator.js"></script>' in page
    assert "<script>" not in page  # nothing inline for the CSP to block
    assert 'data-endpoint="/admin/simulator/messages"' in page


def test_the_page_names_the_test_patient_once_there_is_one(client, signed_in, send):
    signed_in("health_manager")
    assert "发送第一条消息时" in client.get("/admin/simulator").get_data(as_text=True)
    card = send({"text": "你好"}).get_json()["patient"]["card_no"]
    page = client.get("/admin/simulator").get_data(as_text=True)
    assert f'<span class="card-no">{card}</span>' in page


def test_a_whole_gad7_through_the_endpoint_lands_in_the_test_patients_record(client, signed_in, send, db):
    member = signed_in("health_manager")
    first = send({"text": "焦虑"})
    assert first.status_code == 200
    assert "感觉紧张" in "\n".join(first.get_json()["replies"])
    patient = db.scalars(select(Patient).where(Patient.test_owner_id == member.user.id)).one()
    assert first.get_json()["patient"] == {"card_no": patient.card_no, "name": patient.name}
    replies: list[str] = []
    for _ in range(7):
        response = send({"card_no": patient.card_no, "text": "4"})
        assert response.status_code == 200
        replies.extend(response.get_json()["replies"])
    text = "\n".join(replies)
    assert "21 分" in text
    assert "重度" in text
    total = db.scalars(select(FlowResult).where(FlowResult.patient_id == patient.id,
                                                FlowResult.name == "gad7_total")).one()
    assert total.value == 21
    assert db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)).one().priority == "high"
    entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "simulator.message")).all()
    assert len(entries) == 8
    assert {(e.actor_kind, e.actor_id, e.patient_id) for e in entries} == {("user", str(member.user.id), patient.id)}


def test_card_numbers_are_matched_as_the_bot_matches_them(client, signed_in, send, db):
    member = signed_in("admin")
    patient = own_test_patient(db, member.user, actor=TEST_ACTOR)
    db.flush()
    response = send({"card_no": " " + patient.card_no.lower() + " ", "text": "你好"})
    assert response.status_code == 200
    assert "血压" in response.get_json()["replies"][0]  # the menu
    assert response.get_json()["patient"]["card_no"] == patient.card_no


@pytest.mark.parametrize("body", [{"text": "你好"}, {"card_no": "", "text": "你好"}, {"card_no": "  ", "text": "你好"}])
def test_no_card_number_means_my_own_test_patient(client, signed_in, send, db, body):
    member = signed_in("admin")
    response = send(body)
    assert response.status_code == 200
    mine = db.scalars(select(Patient).where(Patient.test_owner_id == member.user.id)).one()
    assert response.get_json()["patient"]["card_no"] == mine.card_no


@pytest.mark.parametrize(("body", "reason"), [
    ({"card_no": 42, "text": "hi"}, "卡号"),
    ({"card_no": ["T1"], "text": "hi"}, "卡号"),
    ({"patient_id": "not-a-uuid", "text": "hi"}, "UUID"),
    ({"card_no": "T1"}, "消息"),
    ({"card_no": "T1", "text": "   "}, "消息"),
    ({"card_no": "T1", "text": ["hi"]}, "消息"),
    ({"card_no": "T1", "text": "x" * 1001}, "1000"),
    ({"card_no": "T1; DROP TABLE", "text": "hi"}, "字母、数字"),
    (["T1", "hi"], "JSON"),
    ("hello", "JSON"),
])
def test_bad_input_is_a_400_with_a_reason(client, signed_in, send, body, reason):
    signed_in("admin")
    response = send(body)
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_request"
    assert reason in response.get_json()["reason"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe"])
def test_a_body_that_is_not_json_is_a_400(client, signed_in, send, raw):
    signed_in("admin")
    response = send(None, json=None, data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_request"


def test_a_form_encoded_body_is_a_400(client, signed_in, send):
    signed_in("admin")
    response = send(None, json=None, data={"card_no": "T1", "text": "hi"})
    assert response.status_code == 400


def test_an_unknown_or_inactive_card_is_a_404(client, signed_in, send, make_staff, db):
    signed_in("admin")
    response = send({"card_no": "NOSUCHCARD", "text": "hi"})
    assert response.status_code == 404
    assert "卡号" in response.get_json()["reason"]
    patient = own_test_patient(db, make_staff("health_manager").user, actor=TEST_ACTOR)
    patient.status = PatientStatus.INACTIVE.value
    db.flush()
    assert send({"card_no": patient.card_no, "text": "hi"}).status_code == 404


def test_errors_speak_the_users_language(client, signed_in, send):
    signed_in("admin")
    client.post("/admin/language", data={"csrf_token": page_token(client, "/admin/simulator"), "language": "en"})
    response = send({"card_no": "NOSUCHCARD", "text": "hi"})
    assert response.get_json()["reason"] == "No active patient has this card number."
