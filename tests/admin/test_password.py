"""Changing the password: the policy, the current password, audit, and other sessions signed out."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from care import staff
from care.errors import ValidationFailedError
from security import passwords
from security.audit import AuditEntry
from tests.admin.conftest import page_token
from tests.conftest import TEST_ACTOR

NEW_PASSWORD = "morning tea with jasmine 7"


def change(client, member, new, *, current=None, confirm=None):
    return client.post("/admin/password", data={
        "csrf_token": page_token(client, "/admin/password"),
        "current_password": current or member.password,
        "new_password": new,
        "confirm": new if confirm is None else confirm,
    })


def test_the_first_password_change_frees_the_panel(client, make_staff, sign_in, db):
    member = make_staff("health_manager", ready=False)
    sign_in(member)
    response = change(client, member, NEW_PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    db.refresh(member.user)
    assert member.user.must_change_password is False
    assert passwords.verify_password(member.user.password_hash, NEW_PASSWORD)
    page = client.get("/admin/")  # this session lives on
    assert page.status_code == 200
    assert "密码已修改" in page.get_data(as_text=True)
    actions = [e.action for e in db.scalars(select(AuditEntry).where(AuditEntry.resource_id == str(member.user.id)))]
    assert "user.password_change" in actions


@pytest.mark.parametrize(("new", "confirm", "message"), [
    ("short pw 1", None, "密码至少需要12个字符"),
    ("healthmanager1 is me", None, "不能包含您的姓名或邮箱"),
    ("aaaaaaaaaaaabbbb", None, "更多不同的字符"),
    ("a fine long password 9", "a different long one 9", "两次输入的新密码不一致"),
])
def test_a_new_password_that_breaks_the_policy_is_refused_with_the_reason(client, make_staff, sign_in, db, new,
                                                                            confirm, message):
    member = make_staff("health_manager", ready=False, email="healthmanager1@clinic.test")
    sign_in(member)
    response = change(client, member, new, confirm=confirm)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    db.refresh(member.user)
    assert member.user.must_change_password is True


def test_the_current_password_must_be_right_and_wrong_guesses_lock_the_account(client, make_staff, sign_in, db):
    member = make_staff("nurse")
    sign_in(member)
    for _ in range(staff.LOCKOUT_THRESHOLD - 1):
        response = change(client, member, NEW_PASSWORD, current="a wrong guess 123")
        assert "当前密码不正确" in response.get_data(as_text=True)
    failures = db.scalars(select(AuditEntry).where(AuditEntry.action == "user.password_change_failed")).all()
    assert len(failures) == staff.LOCKOUT_THRESHOLD - 1
    change(client, member, NEW_PASSWORD, current="a wrong guess 123")
    # Locked: the session ends, so a session left open cannot be used to guess the password.
    assert client.get("/admin/").headers["Location"].startswith("/admin/login")


def test_reusing_the_current_password_is_refused(client, make_staff, sign_in):
    member = make_staff("nurse")
    sign_in(member)
    response = change(client, member, member.password)
    assert "新密码不能与当前密码相同" in response.get_data(as_text=True)


def test_a_password_change_signs_out_the_accounts_other_sessions(app, client, make_staff, sign_in, clock):
    member = make_staff("nurse")
    other = app.test_client()
    sign_in(member, on=other)
    clock.advance(seconds=31)  # a fresh TOTP step for the second sign-in
    sign_in(member)
    assert other.get("/admin/").status_code == 200
    assert change(client, member, NEW_PASSWORD).status_code == 302
    assert client.get("/admin/").status_code == 200
    assert other.get("/admin/").headers["Location"].startswith("/admin/login")


def test_change_password_service_names_the_problem(db, make_staff):
    member = make_staff("nurse")
    with pytest.raises(ValidationFailedError) as refused:
        staff.change_password(db, member.user, current_password=member.password, new_password="short",
                              actor=TEST_ACTOR)
    assert refused.value.problems[0].field == "new_password"
    with pytest.raises(ValidationFailedError) as wrong:
        staff.change_password(db, member.user, current_password="nope", new_password=NEW_PASSWORD, actor=TEST_ACTOR)
    assert wrong.value.problems[0].field == "current_password"
    assert member.user.failed_logins == 1
