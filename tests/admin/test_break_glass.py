"""Break-glass (issue 17): a doctor opens another team's patient with a written reason, for two hours, audited;
a nurse cannot; the reason is kept encrypted for review and never written to the audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from care import care_teams
from care.care_teams import BREAK_GLASS_LIFETIME, break_glass_for_review
from care.errors import ConflictError, ValidationFailedError
from care.models import AuditEntry, BreakGlassGrant
from tests.admin.conftest import page_token
from tests.conftest import TEST_ACTOR

REASON = "患者在急诊室，需要查看既往血压和用药"


@pytest.fixture
def elsewhere(db, make_patient):
    """A patient of a team the signed-in staff member is not in."""
    patient = make_patient(name="外队患者")
    team = care_teams.create_team(db, "Other team", actor=TEST_ACTOR)
    care_teams.add_patient(db, team, patient, actor=TEST_ACTOR)
    db.flush()
    return patient


def open_by_break_glass(client, patient, reason=REASON):
    token = page_token(client, "/admin/account")
    return client.post(f"/admin/patients/{patient.id}/break-glass", data={"csrf_token": token, "reason": reason})


def test_a_doctor_is_offered_break_glass_and_opens_the_page_with_a_reason(client, signed_in, elsewhere, db, clock):
    member = signed_in("doctor")
    refused = client.get(f"/admin/patients/{elsewhere.id}")
    assert refused.status_code == 403
    assert 'id="break-glass"' in refused.get_data(as_text=True)
    assert "外队患者" not in refused.get_data(as_text=True)
    response = open_by_break_glass(client, elsewhere)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/patients/{elsewhere.id}"
    page = client.get(f"/admin/patients/{elsewhere.id}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "外队患者" in body
    assert 'id="break-glass-banner"' in body
    [grant] = db.scalars(select(BreakGlassGrant)).all()
    assert (grant.user_id, grant.patient_id) == (member.user.id, elsewhere.id)
    assert grant.expires_at == clock.now() + BREAK_GLASS_LIFETIME
    [opened] = db.scalars(select(AuditEntry).where(AuditEntry.action == "break_glass.open")).all()
    assert opened.patient_id == elsewhere.id
    assert "急诊" not in opened.details
    view = db.scalars(select(AuditEntry).where(AuditEntry.action == "patient.view")).all()[-1]
    assert "break_glass" in view.details
    # The reason is stored encrypted, and read back for review.
    stored = db.execute(text("SELECT reason FROM break_glass_grants")).scalar_one()
    assert REASON.encode() not in bytes(stored)
    [entry] = break_glass_for_review(db, since=clock.now() - timedelta(days=1))
    assert (entry.reason, entry.user_email) == (REASON, member.email)


def test_the_opening_ends_after_two_hours(client, signed_in, elsewhere, clock):
    signed_in("doctor")
    open_by_break_glass(client, elsewhere)
    for _ in range(11):  # busy on other pages meanwhile (the session ends after 15 idle minutes)
        clock.advance(minutes=10)
        client.get("/admin/account")
    clock.advance(minutes=9)
    assert client.get(f"/admin/patients/{elsewhere.id}").status_code == 200
    clock.advance(minutes=1)
    assert client.get(f"/admin/patients/{elsewhere.id}").status_code == 403


def test_the_opening_never_puts_the_patient_on_ones_lists(client, signed_in, elsewhere):
    signed_in("doctor")
    open_by_break_glass(client, elsewhere)
    assert f'data-patient="{elsewhere.id}"' not in client.get("/admin/patients").get_data(as_text=True)


@pytest.mark.parametrize("reason", ["", "太短", "x" * 1001])
def test_without_a_proper_reason_nothing_is_opened(client, signed_in, elsewhere, db, reason):
    signed_in("doctor")
    response = open_by_break_glass(client, elsewhere, reason)
    assert response.status_code == 400
    assert "写明原因" in response.get_data(as_text=True)
    assert db.scalars(select(BreakGlassGrant)).all() == []
    assert client.get(f"/admin/patients/{elsewhere.id}").status_code == 403


def test_a_nurse_is_neither_offered_nor_allowed_break_glass(client, signed_in, elsewhere, db):
    signed_in("nurse")
    refused = client.get(f"/admin/patients/{elsewhere.id}").get_data(as_text=True)
    assert 'id="break-glass"' not in refused
    assert open_by_break_glass(client, elsewhere).status_code == 403
    assert db.scalars(select(BreakGlassGrant)).all() == []


def test_the_service_refuses_what_needs_no_break_glass_and_bad_reasons(db, make_staff, make_patient):
    doctor = make_staff("doctor")
    mine = make_patient()
    team = care_teams.create_team(db, "Mine", actor=TEST_ACTOR)
    care_teams.add_member(db, team, doctor.user, actor=TEST_ACTOR)
    care_teams.add_patient(db, team, mine, actor=TEST_ACTOR)
    db.flush()
    with pytest.raises(ConflictError):
        care_teams.break_glass(db, doctor.user, mine, reason=REASON, actor=TEST_ACTOR)
    with pytest.raises(ValidationFailedError):
        care_teams.break_glass(db, doctor.user, make_patient(), reason="   short   ", actor=TEST_ACTOR)
    with pytest.raises(PermissionError):
        care_teams.break_glass(db, make_staff("nurse").user, make_patient(), reason=REASON, actor=TEST_ACTOR)
