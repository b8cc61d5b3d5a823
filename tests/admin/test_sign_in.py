"""Signing in and out: both factors, one generic refusal, lockout, the session cookie and its lifetimes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from admin.auth import safe_next
from care import staff
from security import totp
from security.audit import AuditEntry
from tests.admin.conftest import page_token

GENERIC_REFUSAL_ZH = "邮箱、密码或验证码不正确"


def audit_actions(db, action):
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_the_login_page_is_chinese_by_default_and_carries_security_headers(client):
    response = client.get("/admin/login")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<html lang="zh-CN">' in page
    assert "登录" in page
    assert 'name="csrf_token"' in page
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"


def test_password_and_totp_code_sign_in_with_a_hardened_session_cookie(client, make_staff, sign_in, db):
    member = make_staff("nurse")
    response = sign_in(member)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie  # the fixture's CARELOOP_PUBLIC_URL is https
    assert client.get("/admin/").status_code == 200
    assert [entry.actor_id for entry in audit_actions(db, "auth.signed_in")] == [str(member.user.id)]


def test_the_session_cookie_is_not_secure_on_plain_http(settings, runtime):
    from careloop.app import create_app

    runtime.settings = settings.with_overrides(public_url="http://127.0.0.1:5000")
    assert create_app(runtime=runtime).config["SESSION_COOKIE_SECURE"] is False


def test_a_recovery_code_signs_in_once(client, make_staff, sign_in, clock):
    member = make_staff("doctor")
    assert sign_in(member, code=member.recovery_codes[0]).status_code == 302
    client.post("/admin/logout", data={"csrf_token": page_token(client, "/admin/account")})
    response = sign_in(member, code=member.recovery_codes[0])
    assert response.status_code == 200
    assert GENERIC_REFUSAL_ZH in response.get_data(as_text=True)


@pytest.mark.parametrize("wrong", ["password", "code", "email", "reused code"])
def test_every_refusal_says_the_same_thing(client, make_staff, sign_in, clock, wrong):
    member = make_staff("nurse")
    code = totp.current_code(member.totp_secret, clock.now())
    if wrong == "reused code":
        assert sign_in(member, code=code).status_code == 302
        client.post("/admin/logout", data={"csrf_token": page_token(client, "/admin/account")})
    if wrong == "email":
        member.email = "nobody@clinic.test"
    response = sign_in(member, password="not the password" if wrong == "password" else None,
                       code="123456" if wrong == "code" else code)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert GENERIC_REFUSAL_ZH in page
    for revealing in ("密码不正确", "验证码错误", "不存在"):
        assert revealing not in page.replace(GENERIC_REFUSAL_ZH, "")
    assert client.get("/admin/").status_code == 302


def test_repeated_failures_lock_the_account_and_the_failures_are_kept(client, make_staff, sign_in, clock, db):
    member = make_staff("nurse")
    for _ in range(staff.LOCKOUT_THRESHOLD):
        assert sign_in(member, password="not the password").status_code == 200
    refused = sign_in(member)  # the right password and code, but locked
    assert refused.status_code == 200
    assert GENERIC_REFUSAL_ZH in refused.get_data(as_text=True)
    assert len(audit_actions(db, "auth.failed")) == staff.LOCKOUT_THRESHOLD
    assert len(audit_actions(db, "auth.locked")) == 1
    clock.advance(minutes=staff.LOCKOUT_MINUTES + 1)
    assert sign_in(member).status_code == 302


def test_the_first_sign_in_with_the_one_time_password_forces_a_new_password(client, make_staff, sign_in):
    member = make_staff("health_manager", ready=False)
    response = sign_in(member)
    assert response.headers["Location"] == "/admin/password"
    for path in ("/admin/", "/admin/simulator", "/admin/account"):
        assert client.get(path).headers["Location"] == "/admin/password"
    reply = client.post("/admin/simulator/messages", json={"card_no": "X1", "text": "hi"},
                        headers={"X-CSRFToken": page_token(client, "/admin/password")})
    assert reply.status_code == 403
    assert reply.get_json()["error"] == "password_change"


def test_signed_out_visitors_are_sent_to_the_login_page_with_where_they_were_going(client):
    response = client.get("/admin/simulator?x=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/login?next=/admin/simulator?x%3D1"
    json_reply = client.post("/admin/simulator/messages", json={"card_no": "X1", "text": "hi"},
                             headers={"X-CSRFToken": page_token(client)})
    assert json_reply.status_code == 401
    assert json_reply.get_json()["error"] == "signed_out"


def test_a_safe_next_is_followed_after_sign_in(client, make_staff, sign_in):
    member = make_staff("admin")
    response = sign_in(member, next_url="/admin/simulator")
    assert response.headers["Location"] == "/admin/simulator"


@pytest.mark.parametrize("target", [
    "https://evil.example/admin/", "//evil.example/admin/", "/\\evil.example", "\\\\evil.example",
    "javascript:alert(1)", "http:/admin/", "/admin\n/", "/healthz", "admin/", "/administrator", "",
    "/admin/..//evil.example", "/admin/%2E%2E/healthz", "/admin/./../healthz",
])
def test_an_outside_next_is_ignored(client, make_staff, sign_in, target):
    assert safe_next(target) is None
    member = make_staff("auditor")
    response = sign_in(member, next_url=target)
    assert response.headers["Location"] == "/admin/account"


@pytest.mark.parametrize("target", ["/admin", "/admin/", "/admin/simulator", "/admin/?page=2"])
def test_panel_paths_are_safe_next_targets(target):
    assert safe_next(target) == target


def test_each_role_lands_on_its_first_page(client, make_staff, sign_in):
    landings = {"admin": "/admin/", "nurse": "/admin/", "front_desk": "/admin/account", "auditor": "/admin/account"}
    for role, landing in landings.items():
        with client.session_transaction() as session:
            session.clear()
        assert sign_in(make_staff(role)).headers["Location"] == landing, role


def test_fifteen_idle_minutes_sign_the_user_out(client, signed_in, clock, db):
    member = signed_in("nurse")
    clock.advance(minutes=14)
    assert client.get("/admin/").status_code == 200  # activity restarts the idle timer
    clock.advance(minutes=14)
    assert client.get("/admin/").status_code == 200
    clock.advance(minutes=15, seconds=1)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "15分钟没有操作" in page
    assert client.get("/admin/").status_code == 302
    [entry] = audit_actions(db, "auth.signed_out")
    assert entry.actor_id == str(member.user.id)
    assert '"reason":"idle"' in entry.details


def test_a_session_ends_twelve_hours_after_sign_in_however_busy(client, signed_in, clock):
    signed_in("nurse")
    for _ in range(71):  # every 10 minutes for 11 h 50 min
        clock.advance(minutes=10)
        assert client.get("/admin/").status_code == 200
    clock.advance(minutes=10)
    response = client.get("/admin/")
    assert response.headers["Location"].startswith("/admin/login")
    assert "超过12小时" in client.get("/admin/login").get_data(as_text=True)


def test_sign_out_is_a_post_that_ends_the_session(client, signed_in, db):
    signed_in("nurse")
    assert client.get("/admin/logout").status_code == 405
    response = client.post("/admin/logout", data={"csrf_token": page_token(client, "/admin/")})
    assert response.headers["Location"] == "/admin/login"
    assert client.get("/admin/").status_code == 302
    assert '"reason":"logout"' in audit_actions(db, "auth.signed_out")[0].details


def test_a_deactivated_account_is_signed_out_at_its_next_request(client, signed_in, db):
    member = signed_in("nurse")
    member.user.is_active = False
    db.flush()
    assert client.get("/admin/").headers["Location"].startswith("/admin/login")
