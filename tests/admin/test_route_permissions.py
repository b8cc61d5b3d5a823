"""Every route of the panel declares who may call it, and every role meets exactly that (issue 17).

The matrix below is written by hand, apart from the code: each route of the app (``app.url_map``)
with the access it must have. A new route missing from it, or declaring other access than it says,
fails here; a route that declares no access at all is refused to everyone by the panel
(``admin.web.guard``). Then each role signs in and calls every route: where its role holds the
permission the answer is a page or a redirect, elsewhere 403, and the refusal shows nothing of the
patient.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from admin.auth import RouteAccess, declared_access, require
from admin.web import FLASK_ENDPOINTS
from bot.tag_rules import rule_engine
from care import care_teams, tag_rules
from care.models import ExportJob, Patient, StaffTask, TagRule
from care.observations import record_observation
from care.tasks import create_task
from flows.registry import FlowLibrary
from security.roles import DEFAULT_ROLES, Permission
from tests.admin.conftest import page_token
from tests.conftest import TEST_ACTOR

PUBLIC = RouteAccess(signed_in=False)
SIGNED_IN = RouteAccess(signed_in=True)


@dataclass(frozen=True)
class Call:
    """How to call one route of the matrix, and the access it must declare."""

    access: RouteAccess
    path: str
    # Form fields (or a JSON body with ``json=True``); ``{task}``/``{patient}`` fill in the ids.
    data: dict[str, str] = field(default_factory=dict)
    json: bool = False
    # Files posted with the form (field -> (name, content)).
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    # The answers that mean "allowed" (a refused upload is 422, its problems listed).
    allowed: tuple[int, ...] = (200, 302, 303)


def _needs(permission: Permission) -> RouteAccess:
    return RouteAccess(signed_in=True, permission=permission)


W = Permission.WORKLIST_WORK
#: (endpoint, method) -> the call. Outside the panel: the app's other routes, which check callers their own way.
MATRIX: dict[tuple[str, str], Call] = {
    ("admin.login", "GET"): Call(PUBLIC, "/admin/login"),
    ("admin.login", "POST"): Call(PUBLIC, "/admin/login", {"email": "x@y.z", "password": "p", "code": "1"}),
    ("admin.language", "POST"): Call(PUBLIC, "/admin/language", {"language": "zh"}),
    ("admin.account", "GET"): Call(SIGNED_IN, "/admin/account"),
    ("admin.password", "GET"): Call(RouteAccess(True, None, during_password_change=True), "/admin/password"),
    ("admin.password", "POST"): Call(RouteAccess(True, None, during_password_change=True), "/admin/password",
                                     {"current_password": "wrong one", "new_password": "x", "confirm": "x"}),
    ("admin.logout", "POST"): Call(RouteAccess(True, None, during_password_change=True), "/admin/logout"),
    ("admin.dashboard", "GET"): Call(_needs(W), "/admin/"),
    ("admin.acknowledge", "POST"): Call(_needs(W), "/admin/tasks/{task}/acknowledge"),
    ("admin.close_task", "POST"): Call(_needs(W), "/admin/tasks/{task}/close", {"outcome": "resolved", "notes": "ok"}),
    ("admin.reschedule_task", "POST"): Call(_needs(W), "/admin/tasks/{task}/reschedule", {"due": "2030-01-02T09:00"}),
    ("admin.simulator", "GET"): Call(_needs(Permission.FLOWS_MANAGE), "/admin/simulator"),
    ("admin.simulator_message", "POST"): Call(_needs(Permission.FLOWS_MANAGE), "/admin/simulator/messages",
                                              {"text": "你好"}, json=True),
    ("admin.patients", "GET"): Call(_needs(Permission.PATIENT_READ), "/admin/patients"),
    ("admin.patients", "POST"): Call(_needs(Permission.PATIENT_READ), "/admin/patients", {"q": "矩阵测试患者"}),
    ("admin.patient", "GET"): Call(_needs(Permission.PATIENT_READ), "/admin/patients/{patient}"),
    ("admin.break_glass", "POST"): Call(_needs(Permission.BREAK_GLASS), "/admin/patients/{patient}/break-glass",
                                        {"reason": "急诊需要查看既往记录"}),
    ("admin.trend_chart", "GET"): Call(_needs(Permission.RECORD_READ), "/admin/patients/{patient}/trends/sbp.svg"),
    ("admin.flows", "GET"): Call(_needs(Permission.FLOWS_MANAGE), "/admin/flows"),
    # A broken flow: refused with its problems (no folder of the clinic's flows is set here either).
    ("admin.flow_upload", "POST"): Call(_needs(Permission.FLOWS_MANAGE), "/admin/flows",
                                        files={"file": ("broken.yaml", b"id: broken\nversion: 1\n")},
                                        allowed=(422,)),
    ("admin.exports_page", "GET"): Call(_needs(Permission.EXPORT_RUN), "/admin/exports"),
    ("admin.export_request", "POST"): Call(_needs(Permission.EXPORT_RUN), "/admin/exports", {"kind": "patients"}),
    ("admin.export_progress", "GET"): Call(_needs(Permission.EXPORT_RUN), "/admin/exports/{export}"),
    # The file of another's export is not theirs: a redirect to the exports page, with nothing sent.
    ("admin.export_download", "GET"): Call(_needs(Permission.EXPORT_RUN), "/admin/exports/{export}/file",
                                           allowed=(302,)),
    ("admin.audit_trail_page", "GET"): Call(_needs(Permission.AUDIT_READ), "/admin/audit"),
    ("admin.audit_trail_page", "POST"): Call(_needs(Permission.AUDIT_READ), "/admin/audit",
                                             {"action": "patient.read"}),
    ("admin.audit_verify", "POST"): Call(_needs(Permission.AUDIT_READ), "/admin/audit/verify"),
    ("admin.tag_rules_list", "GET"): Call(_needs(Permission.TAGS_MANAGE), "/admin/tag-rules"),
    ("admin.tag_rule_new", "GET"): Call(_needs(Permission.TAGS_MANAGE), "/admin/tag-rules/new"),
    ("admin.tag_rule_new", "POST"): Call(_needs(Permission.TAGS_MANAGE), "/admin/tag-rules/new",
                                         {"name": "矩阵", "tag": "矩阵", "expression": "latest.sbp >= 140",
                                          "preview": "y"}),
    ("admin.tag_rule_edit", "GET"): Call(_needs(Permission.TAGS_MANAGE), "/admin/tag-rules/{rule}"),
    ("admin.tag_rule_edit", "POST"): Call(_needs(Permission.TAGS_MANAGE), "/admin/tag-rules/{rule}",
                                          {"expression": "latest.sbp >= 150", "preview": "y"}),
}
#: (Webhooks check the provider's signature, the report API its bearer key: tests/webhooks, tests/api.)
OUTSIDE_THE_PANEL = {"static", "healthz", "wechat.verify", "wechat.receive", "twilio.sms", "twilio.voice",
                     "twilio.voice_gather", "twilio.recording", "twilio.status", "api.push_reports"}
ROLES = [role.name for role in DEFAULT_ROLES]


def _app_routes(app: Flask) -> set[tuple[str, str]]:
    return {(rule.endpoint, method) for rule in app.url_map.iter_rules()
            for method in rule.methods or () if method not in ("HEAD", "OPTIONS")}


def test_every_route_of_the_app_is_in_the_matrix(app):
    routes = _app_routes(app)
    panel = {route for route in routes if route[0].startswith("admin.") and route[0] not in FLASK_ENDPOINTS}
    assert panel == set(MATRIX), "a panel route is missing from the matrix, or the matrix names a route gone"
    others = {endpoint for endpoint, _method in routes if not endpoint.startswith("admin.")}
    assert others == OUTSIDE_THE_PANEL


@pytest.mark.parametrize(("endpoint", "method"), sorted(MATRIX))
def test_each_route_declares_the_access_of_the_matrix(app, endpoint, method):
    assert declared_access(app.view_functions[endpoint]) == MATRIX[(endpoint, method)].access


def test_a_route_that_declares_nothing_is_refused_even_to_an_administrator(app, client, signed_in):
    def secret() -> str:
        return "secret"

    # A view added to the panel without ``require``: the guard refuses it to everyone.
    app.view_functions["admin.account"], kept = secret, app.view_functions["admin.account"]
    try:
        signed_in("admin")
        response = client.get("/admin/account")
    finally:
        app.view_functions["admin.account"] = kept
    assert response.status_code == 403
    assert "secret" not in response.get_data(as_text=True)


def test_require_declares_its_permission():
    @require(Permission.AUDIT_READ)
    def view() -> str:
        return ""

    assert declared_access(view) == RouteAccess(signed_in=True, permission=Permission.AUDIT_READ)


def _allowed(role: str, access: RouteAccess) -> bool:
    definition = next(r for r in DEFAULT_ROLES if r.name == role)
    return access.permission is None or access.permission in definition.permissions


def _call(browser: FlaskClient, call: Call, method: str, ids: dict[str, str]) -> TestResponse:
    path = call.path.format(**ids)
    if method == "GET":
        return browser.get(path)
    token = page_token(browser, "/admin/login" if not call.access.signed_in else "/admin/account")
    if call.json:
        return browser.post(path, json={key: value.format(**ids) for key, value in call.data.items()},
                            headers={"X-CSRFToken": token, "Accept": "application/json"})
    files = {name: (io.BytesIO(content), filename) for name, (filename, content) in call.files.items()}
    return browser.post(path, data={"csrf_token": token, **{k: v.format(**ids) for k, v in call.data.items()},
                                    **files})


def _a_rule(db: Any) -> TagRule:
    rule, _run = tag_rules.add_rule(db, rule_engine(FlowLibrary.builtin()), "矩阵规则", tag="矩阵",
                                    expression="latest.sbp >= 140", actor=TEST_ACTOR)
    db.flush()
    return rule


def _an_export(db: Any, user: Any) -> ExportJob:
    """An export of the staff member whose file is gone already (downloaded)."""
    now = db.info["clock"].now()
    job = ExportJob(id=uuid.uuid4(), kind="patients", lang="zh", filters={}, requested_by=user.id, status="removed",
                    total=1, done=1, rows=1, created_at=now, updated_at=now)
    db.add(job)
    db.flush()
    return job


@pytest.fixture
def patient_of_the_team(db, make_patient, clock) -> Callable[[Any], tuple[Patient, StaffTask]]:
    """A patient in a care team of the staff member, with an open task, and some of their record."""

    def make(member: Any) -> tuple[Patient, StaffTask]:
        patient = make_patient(name="矩阵测试患者", phone="13912345678")
        team = care_teams.create_team(db, f"team of {member.email}", actor=TEST_ACTOR)
        care_teams.add_member(db, team, member.user, actor=TEST_ACTOR)
        care_teams.add_patient(db, team, patient, actor=TEST_ACTOR)
        task = create_task(db, patient, kind="flow_alert", priority="urgent", reason="phq9_item9", actor=TEST_ACTOR)
        record_observation(db, patient, code="sbp", value=128, unit="mmHg", effective_at=clock.now(),
                           source="report:csv", actor=TEST_ACTOR)
        db.flush()
        return patient, task

    return make


@pytest.mark.parametrize("role", ROLES)
def test_each_role_meets_the_matrix_on_every_route(client, db, signed_in, patient_of_the_team, role):
    member = signed_in(role)
    patient, task = patient_of_the_team(member)
    ids = {"task": str(task.id), "patient": str(patient.id), "rule": str(_a_rule(db).id),
           "export": str(_an_export(db, member.user).id)}
    exports_runner = client.application.extensions["careloop.exports"]
    wrong: list[str] = []
    # Signing out last: it ends the session the other calls need.
    calls = sorted(MATRIX.items(), key=lambda item: item[0][0] == "admin.logout")
    for (endpoint, method), call in calls:
        response = _call(client, call, method, ids)
        exports_runner.wait(timeout=60)  # an export asked for is written before the next call
        body = response.get_data(as_text=True)
        if _allowed(role, call.access):
            if response.status_code not in call.allowed:
                wrong.append(f"{method} {endpoint}: {response.status_code}, expected a page or a redirect")
        else:
            if response.status_code != 403:
                wrong.append(f"{method} {endpoint}: {response.status_code}, expected 403")
            for secret in (patient.name or "", patient.card_no or "", "13912345678", str(task.reason)):
                if secret in body:
                    wrong.append(f"{method} {endpoint}: the refusal shows {secret!r}")
    assert not wrong, "\n".join(wrong)


def test_signed_out_every_guarded_route_sends_to_the_login_page_and_shows_nothing(client, db, make_patient):
    patient = make_patient(name="未登录看不到")
    task = create_task(db, patient, kind="flow_alert", priority="urgent", reason="phq9_item9", actor=TEST_ACTOR)
    db.flush()
    ids = {"task": str(task.id), "patient": str(patient.id), "rule": str(_a_rule(db).id),
           "export": "00000000-0000-0000-0000-000000000001"}
    for (endpoint, method), call in MATRIX.items():
        if not call.access.signed_in:
            continue
        response = _call(client, call, method, ids)
        assert response.status_code in (302, 401), (endpoint, method, response.status_code)
        assert "未登录看不到" not in response.get_data(as_text=True)
