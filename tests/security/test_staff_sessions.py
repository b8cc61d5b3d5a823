"""A staff session lives on the server: a stolen or kept cookie is worth nothing once the session ended.

The cookie carries only a random id; the database keeps only its digest. Signing out, disabling the
account, changing or resetting its password and resetting its second factor end the session at once
(also through the CLI); 15 idle minutes and 12 hours end it too.
"""

from __future__ import annotations

import hashlib

import pytest
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import select

from care import staff
from care.models import StaffSession
from tests.admin.conftest import PASSWORD, page_token
from tests.conftest import TEST_ACTOR


def _cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _decoded(app, value: str) -> dict:
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    return dict(serializer.loads(value))


def _replay(app, value: str):
    """A second browser that presents a copy of the cookie taken earlier."""
    thief = app.test_client()
    thief.set_cookie("session", value, domain="localhost")
    return thief.get("/admin/")


def test_the_cookie_holds_only_a_random_id_and_the_table_only_its_digest(app, client, signed_in, db):
    member = signed_in("nurse")
    contents = _decoded(app, _cookie(client))
    assert set(contents) <= {"sid", "csrf_token", "lang"}
    assert str(member.user.id) not in str(contents)
    token = contents["sid"]
    [row] = db.scalars(select(StaffSession).where(StaffSession.user_id == member.user.id))
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in row.token_hash


def test_sign_out_ends_the_session_for_a_copy_of_the_cookie_too(app, client, signed_in):
    signed_in("nurse")
    kept = _cookie(client)
    assert _replay(app, kept).status_code == 200
    client.post("/admin/logout", data={"csrf_token": page_token(client, "/admin/")})
    assert _replay(app, kept).status_code == 302


@pytest.mark.parametrize("change", ["disable", "reset-password", "reset-mfa"])
def test_an_operator_change_to_the_account_ends_its_sessions_at_once(app, client, signed_in, make_staff, db, change):
    make_staff("admin")  # so that the nurse is not the last administrator (it is not one anyway)
    member = signed_in("nurse")
    kept = _cookie(client)
    {"disable": staff.disable_user, "reset-password": staff.reset_password, "reset-mfa": staff.reset_mfa}[change](
        db, member.email, actor=TEST_ACTOR)
    db.flush()
    assert db.scalars(select(StaffSession).where(StaffSession.user_id == member.user.id)).all() == []
    assert _replay(app, kept).status_code == 302


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(app, client, signed_in, sign_in, clock):
    member = signed_in("nurse")
    other = app.test_client()
    clock.advance(seconds=30)  # the next TOTP code (each code signs in once)
    assert sign_in(member, on=other).status_code == 302
    other_cookie = _cookie(other)
    response = client.post("/admin/password", data={
        "csrf_token": page_token(client, "/admin/password"), "current_password": PASSWORD,
        "new_password": "a different calm lake 77", "confirm": "a different calm lake 77"})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert _replay(app, other_cookie).status_code == 302


def test_an_idle_session_cannot_be_revived_by_a_copy_of_the_cookie(app, client, signed_in, clock):
    signed_in("nurse")
    kept = _cookie(client)
    clock.advance(minutes=15)
    assert _replay(app, kept).status_code == 302
    assert client.get("/admin/").status_code == 302


def test_a_session_ends_twelve_hours_after_sign_in(app, client, signed_in, clock):
    signed_in("nurse")
    for _ in range(71):
        clock.advance(minutes=10)
        assert client.get("/admin/").status_code == 200
    clock.advance(minutes=10)
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("command", ["disable", "reset-password", "reset-mfa"])
def test_the_cli_ends_the_sessions_of_the_account(run_cli, fresh_settings, command):
    from careloop.runtime import build_runtime

    assert run_cli("init")[0] == 0
    assert run_cli("users", "add", "--email", "nurse@clinic.test", "--role", "nurse")[0] == 0
    runtime = build_runtime(fresh_settings)
    try:
        with runtime.db.unit_of_work() as session:
            token = staff.start_session(session, staff.get_user(session, "nurse@clinic.test"))
        code, _out, err = run_cli("users", command, "nurse@clinic.test")
        assert code == 0, err
        with runtime.db.unit_of_work() as session:
            assert staff.resume_session(session, token).user is None
    finally:
        runtime.close()
