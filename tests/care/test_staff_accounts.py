"""Staff accounts: roles as data, sign-in with password and TOTP, lockout, recovery codes."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.types import Uuid

from care import staff
from care.errors import ConflictError, ValidationFailedError
from care.models import Role
from security import totp
from security.audit import AuditEntry
from security.roles import Permission
from tests.conftest import TEST_ACTOR


@pytest.fixture
def account(db):
    staff.ensure_roles(db)
    return staff.create_user(db, email="Nurse.Li@Clinic.test", display_name="李护士", role_name="nurse",
                             actor=TEST_ACTOR)


def test_default_roles_are_seeded_once_with_their_permissions(db):
    staff.ensure_roles(db)
    staff.ensure_roles(db)
    roles = {role.name: role for role in db.scalars(select(Role))}
    assert set(roles) == {"admin", "clinic_lead", "doctor", "health_manager", "nurse", "front_desk", "auditor"}
    assert roles["auditor"].permissions == {Permission.AUDIT_READ}
    assert Permission.PATIENT_ENROLL in roles["front_desk"].permissions
    assert Permission.AUDIT_READ not in roles["nurse"].permissions
    # Only these see patients outside their care teams.
    assert {name for name, role in roles.items() if Permission.ALL_PATIENTS in role.permissions} == {
        "admin", "clinic_lead"}


def test_sign_in_needs_password_and_code(db, account, clock):
    code = totp.current_code(account.totp_secret, clock.now())
    user = staff.authenticate(db, email="nurse.li@clinic.test", password=account.one_time_password, code=code,
                              source="127.0.0.1")
    assert user.id == account.user.id
    assert user.can(Permission.RECORD_READ)
    assert not user.can(Permission.USERS_MANAGE)
    with pytest.raises(staff.SignInError):  # the same code cannot be used twice
        staff.authenticate(db, email="nurse.li@clinic.test", password=account.one_time_password, code=code,
                           source=None)


def test_wrong_factors_are_refused_without_saying_which(db, account, clock):
    good = totp.current_code(account.totp_secret, clock.now())
    for password, code in ((account.one_time_password, "000000"), ("wrong password!", good)):
        with pytest.raises(staff.SignInError, match="e-mail, password or code is not correct"):
            staff.authenticate(db, email="nurse.li@clinic.test", password=password, code=code, source=None)
    actions = list(db.scalars(select(AuditEntry.action).where(AuditEntry.action == "auth.failed")))
    assert len(actions) == 2


def test_repeated_failures_lock_the_account(db, account, clock):
    for _ in range(staff.LOCKOUT_THRESHOLD):
        with pytest.raises(staff.SignInError):
            staff.authenticate(db, email="nurse.li@clinic.test", password="nope nope nope", code="1", source=None)
    good = totp.current_code(account.totp_secret, clock.now())
    assert staff.is_locked(db, account.user)
    # The same refusal as any other: saying "locked" would tell that the e-mail is an account's.
    with pytest.raises(staff.SignInError, match="e-mail, password or code is not correct"):
        staff.authenticate(db, email="nurse.li@clinic.test", password=account.one_time_password, code=good,
                           source=None)
    clock.advance(minutes=staff.LOCKOUT_MINUTES + 1)
    good = totp.current_code(account.totp_secret, clock.now())
    assert staff.authenticate(db, email="nurse.li@clinic.test", password=account.one_time_password, code=good,
                              source=None)


def test_a_recovery_code_stands_in_for_the_totp_code_once(db, account):
    code = account.recovery_codes[0]
    staff.authenticate(db, email="nurse.li@clinic.test", password=account.one_time_password, code=code, source=None)
    assert len(account.user.recovery_code_hashes) == 9
    with pytest.raises(staff.SignInError):
        staff.authenticate(db, email="nurse.li@clinic.test", password=account.one_time_password, code=code,
                           source=None)


def test_duplicate_and_bad_accounts_are_refused(db, account):
    with pytest.raises(ConflictError):
        staff.create_user(db, email="nurse.li@clinic.test", display_name="x", role_name="nurse", actor=TEST_ACTOR)
    with pytest.raises(ValidationFailedError, match="role"):
        staff.create_user(db, email="a@b.test", display_name="x", role_name="janitor", actor=TEST_ACTOR)
    with pytest.raises(ValidationFailedError, match="email"):
        staff.create_user(db, email="not-an-email", display_name="x", role_name="nurse", actor=TEST_ACTOR)


def test_totp_secret_is_stored_encrypted(db, account):
    query = text("SELECT totp_secret FROM users WHERE id = :id").bindparams(bindparam("id", type_=Uuid()))
    stored = bytes(db.execute(query, {"id": account.user.id}).scalar_one())
    assert account.totp_secret.encode() not in stored
