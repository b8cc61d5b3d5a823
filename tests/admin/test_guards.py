"""CSRF on every state-changing request, and every page refused to the roles that lack its permission."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from care.models import TaskStatus
from care.tasks import create_task
from security.audit import AuditEntry
from security.roles import DEFAULT_ROLES, Permission
from tests.admin.conftest import page_token
from tests.conftest import TEST_ACTOR


def test_csrf_is_really_on_in_the_test_app(app):
    assert app.config["TESTING"] is True
    assert app.config["WTF_CSRF_ENABLED"] is True


def test_a_login_post_without_a_csrf_token_is_refused(client, make_staff, clock, db):
    member = make_staff("nurse")
    from security import totp

    response = client.post("/admin/login", data={
        "email": member.email, "password": member.password,
        "code": totp.current_code(member.totp_secret, clock.now()),
    })
    assert response.status_code == 400
    assert "页面已过期" in response.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "auth.signed_in")) == 0


def test_a_token_from_another_session_is_refused(app, client, signed_in):
    signed_in("nurse")
    stranger = app.test_client()
    foreign_token = page_token(stranger)
    response = client.post("/admin/logout", data={"csrf_token": foreign_token})
    assert response.status_code == 400
    assert client.get("/admin/").status_code == 200  # still signed in


def test_acknowledge_without_a_token_changes_nothing(client, signed_in, make_patient, db):
    signed_in("nurse")
    task = create_task(db, make_patient(), kind="flow_alert", priority="high", reason="gad7_positive",
                       actor=TEST_ACTOR)
    db.flush()
    response = client.post(f"/admin/tasks/{task.id}/acknowledge")
    assert response.status_code == 400
    db.refresh(task)
    assert task.status == TaskStatus.OPEN.value


def test_the_language_switch_needs_a_token(client):
    assert client.post("/admin/language", data={"language": "en"}).status_code == 400


def test_the_simulator_endpoint_needs_the_token_in_its_header(client, signed_in, make_patient):
    signed_in("admin")
    patient = make_patient()
    response = client.post("/admin/simulator/messages", json={"card_no": patient.card_no, "text": "焦虑"})
    assert response.status_code == 400
    assert response.get_json()["error"] == "csrf"
    wrong = client.post("/admin/simulator/messages", json={"card_no": patient.card_no, "text": "焦虑"},
                        headers={"X-CSRFToken": "forged"})
    assert wrong.status_code == 400


def test_webhooks_are_not_subject_to_the_panels_csrf(app):
    assert app.config["WTF_CSRF_CHECK_DEFAULT"] is False


# Each guarded page, the permission it needs, and how to call it.
PAGES = [
    ("GET", "/admin/", Permission.WORKLIST_WORK),
    ("POST", "/admin/tasks/{task}/acknowledge", Permission.WORKLIST_WORK),
    ("GET", "/admin/simulator", Permission.FLOWS_MANAGE),
    ("POST", "/admin/simulator/messages", Permission.FLOWS_MANAGE),
    ("GET", "/admin/patients", Permission.PATIENT_READ),
    ("GET", "/admin/patients/{patient}", Permission.PATIENT_READ),
]
REFUSALS = [
    (role.name, method, path)
    for method, path, permission in PAGES
    for role in DEFAULT_ROLES
    if permission not in role.permissions
]


def test_the_refusal_table_covers_every_role_that_lacks_a_permission():
    refused_roles = {role for role, _method, _path in REFUSALS}
    assert refused_roles == {"doctor", "nurse", "front_desk", "auditor"}
    assert ("nurse", "GET", "/admin/simulator") in REFUSALS
    assert ("front_desk", "GET", "/admin/") in REFUSALS
    assert ("auditor", "GET", "/admin/patients") in REFUSALS


@pytest.mark.parametrize(("role", "method", "path"), REFUSALS)
def test_a_role_without_the_permission_gets_403(client, signed_in, make_patient, db, role, method, path):
    signed_in(role)
    patient = make_patient()
    task = create_task(db, patient, kind="flow_alert", priority="high", reason="r", actor=TEST_ACTOR)
    db.flush()
    url = path.format(task=task.id, patient=patient.id)
    if method == "GET":
        response = client.get(url)
        assert response.status_code == 403
        assert "无权" in response.get_data(as_text=True)
    elif url.endswith("/messages"):
        response = client.post(url, json={"card_no": "T1", "text": "hi"},
                               headers={"X-CSRFToken": page_token(client, "/admin/account")})
        assert response.status_code == 403
        assert response.get_json()["error"] == "forbidden"
    else:
        response = client.post(url, data={"csrf_token": page_token(client, "/admin/account")})
        assert response.status_code == 403
        db.refresh(task)
        assert task.status == TaskStatus.OPEN.value


@pytest.mark.parametrize("role", [role.name for role in DEFAULT_ROLES])
def test_the_menu_shows_only_what_the_role_may_open(client, signed_in, role):
    signed_in(role)
    page = client.get("/admin/account").get_data(as_text=True)
    definition = next(r for r in DEFAULT_ROLES if r.name == role)
    assert ('href="/admin/simulator"' in page) == (Permission.FLOWS_MANAGE in definition.permissions)
    assert ('href="/admin/"' in page) == (Permission.WORKLIST_WORK in definition.permissions)
    assert ('href="/admin/patients"' in page) == (Permission.PATIENT_READ in definition.permissions)


def test_an_unknown_admin_page_is_404_with_headers(client, signed_in):
    signed_in("admin")
    response = client.get("/admin/nowhere")
    assert response.status_code == 404
    assert response.headers["X-Frame-Options"] == "DENY"


def test_static_files_are_served_without_a_session_and_may_be_cached(client):
    response = client.get("/admin/static/admin.css")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")
    response.close()


def test_a_refused_page_is_audited_although_the_request_changes_nothing(client, signed_in, db):
    signed_in("nurse")
    assert client.get("/admin/simulator").status_code == 403
    denied = db.scalars(select(AuditEntry).where(AuditEntry.action == "access.denied")).one()
    assert denied.actor_kind == "user"
    assert "flows.manage" in denied.details


def test_a_csrf_refusal_is_audited(client, db):
    assert client.post("/admin/language", data={"language": "en"}).status_code == 400
    refused = db.scalars(select(AuditEntry).where(AuditEntry.action == "csrf.refused")).one()
    assert refused.actor_id == "anonymous"
    assert "/admin/language" in refused.details
