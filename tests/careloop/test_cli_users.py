"""``careloop users ...``: staff accounts made and managed from the command line, signing in to the real panel."""

from __future__ import annotations

import getpass
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from care.models import User
from careloop.runtime import build_runtime
from careloop.settings import Settings
from security import totp
from security.audit import AuditEntry
from security.clock import FixedClock
from security.roles import ROLE_NAMES
from tests.admin.conftest import page_token
from tests.conftest import flask_app_for

Cli = Callable[..., tuple[int, str, str]]
OPERATOR = f"cli:{getpass.getuser()}@{socket.gethostname()}"
REFUSED = "邮箱、密码或验证码不正确"


@dataclass
class Printed:
    """What a command printed for the new staff member."""

    email: str
    password: str | None
    totp_secret: str | None
    totp_uri: str | None


def printed(out: str) -> Printed:
    def field(name: str) -> str | None:
        found = re.search(rf"^\s+{name}:\s+(\S+)", out, re.MULTILINE)
        return found.group(1) if found else None

    email = field("e-mail")
    assert email is not None, out
    return Printed(email, field("one-time password"), field("TOTP secret"), field("TOTP URI"))


@pytest.fixture
def clinic(run_cli: Cli) -> str:
    code, out, err = run_cli("init", "--admin-email", "boss@clinic.test")
    assert code == 0, err
    return out


class Panel:
    """The real admin panel on the CLI's database, its clock fixed so that TOTP codes are known."""

    def __init__(self, settings: Settings) -> None:
        self.clock = FixedClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
        self.runtime = build_runtime(settings, clock=self.clock)
        self.app = flask_app_for(self.runtime)

    def sign_in(self, email: str, password: str, secret: str) -> tuple[int, str, str]:
        """Post the login form from a new browser; return status, redirect target and page text.

        Each call is a later TOTP step, so a code is never refused as replayed.
        """
        self.clock.advance(seconds=60)
        browser: FlaskClient = self.app.test_client()
        response = browser.post("/admin/login", data={
            "csrf_token": page_token(browser), "email": email, "password": password,
            "code": totp.current_code(secret, self.clock.now())})
        return response.status_code, response.headers.get("Location", ""), response.get_data(as_text=True)

    def audit(self, action: str) -> list[AuditEntry]:
        with self.runtime.db.unit_of_work() as session:
            return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))

    def user(self, email: str) -> User:
        with self.runtime.db.unit_of_work() as session:
            return session.scalars(select(User).options(joinedload(User.role)).where(User.email == email)).one()


@pytest.fixture
def panel(fresh_settings: Settings, clinic: str) -> Iterator[Panel]:
    opened = Panel(fresh_settings)
    yield opened
    opened.runtime.close()


def test_an_added_account_signs_in_to_the_panel_and_must_change_its_password(run_cli, panel):
    code, out, err = run_cli("users", "add", "--email", "Nurse.Li@Clinic.test", "--role", "nurse",
                             "--name", "李护士")
    assert code == 0, err
    account = printed(out)
    assert account.email == "nurse.li@clinic.test"
    assert account.password
    assert account.totp_secret
    assert account.totp_uri == f"otpauth://totp/Careloop:nurse.li%40clinic.test?secret={account.totp_secret}" \
                               "&issuer=Careloop"
    status, target, _ = panel.sign_in(account.email, account.password, account.totp_secret)
    assert (status, target) == (302, "/admin/password")
    user = panel.user(account.email)
    assert (user.role.name, user.display_name, user.must_change_password) == ("nurse", "李护士", True)
    (created,) = [entry for entry in panel.audit("user.create") if entry.resource_id == str(user.id)]
    assert (created.actor_kind, created.actor_id, created.source) == ("system", OPERATOR, OPERATOR)


def test_list_shows_the_accounts_and_never_a_secret(run_cli, panel):
    _, out, _ = run_cli("users", "add", "--email", "dr.wang@clinic.test", "--role", "doctor", "--name", "王医生")
    account = printed(out)
    code, listing, err = run_cli("users", "list")
    assert code == 0, err
    lines = listing.splitlines()
    assert lines[0].split() == ["e-mail", "role", "name", "status", "last", "sign-in"]
    assert any(line.split()[:3] == ["boss@clinic.test", "admin", "Administrator"] for line in lines)
    (wang,) = [line for line in lines if line.startswith("dr.wang@clinic.test")]
    assert "doctor" in wang
    assert "王医生" in wang
    assert "must change password" in wang
    assert wang.endswith("never")
    user = panel.user(account.email)
    for secret in (account.password, account.totp_secret, user.password_hash, *user.recovery_code_hashes):
        assert secret
        assert secret not in listing


def test_an_unknown_role_is_bad_usage_naming_the_roles(run_cli, panel):
    code, out, err = run_cli("users", "add", "--email", "x@clinic.test", "--role", "janitor")
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert "'janitor' is not one of" in err
    for role in ROLE_NAMES:
        assert f"'{role}'" in err
    assert "x@clinic.test" not in run_cli("users", "list")[1]


def test_a_bad_email_is_bad_usage(run_cli, panel):
    code, _, err = run_cli("users", "add", "--email", "not-an-address", "--role", "nurse")
    assert code == 2
    assert err.startswith("error: ")
    assert "is not an e-mail address" in err
    assert len(err.splitlines()) == 1


def test_a_second_account_with_the_same_email_is_refused_in_one_line(run_cli, panel):
    assert run_cli("users", "add", "--email", "desk@clinic.test", "--role", "front_desk")[0] == 0
    code, out, err = run_cli("users", "add", "--email", "DESK@clinic.test", "--role", "auditor")
    assert code == 1
    assert out == ""
    assert err == "error: a staff account for desk@clinic.test already exists\n"
    assert panel.user("desk@clinic.test").role.name == "front_desk"


def test_a_disabled_account_cannot_sign_in(run_cli, panel):
    account = printed(run_cli("users", "add", "--email", "hm@clinic.test", "--role", "health_manager")[1])
    assert account.password
    assert account.totp_secret
    code, out, err = run_cli("users", "disable", "hm@clinic.test")
    assert code == 0, err
    assert "disabled" in out
    status, _, page = panel.sign_in(account.email, account.password, account.totp_secret)
    assert status == 200
    assert REFUSED in page
    assert panel.user(account.email).is_active is False
    (disabled,) = panel.audit("user.disable")
    assert (disabled.actor_id, disabled.resource_id) == (OPERATOR, str(panel.user(account.email).id))
    code, out, _ = run_cli("users", "disable", "hm@clinic.test")
    assert code == 0
    assert "already disabled" in out
    assert len(panel.audit("user.disable")) == 1  # nothing changed, nothing audited


def test_the_last_active_administrator_cannot_be_disabled(run_cli, panel):
    code, _, err = run_cli("users", "disable", "boss@clinic.test")
    assert code == 1
    assert err == ("error: boss@clinic.test is the last active administrator; add another one before "
                   "disabling it\n")
    assert panel.user("boss@clinic.test").is_active is True
    assert run_cli("users", "add", "--email", "boss2@clinic.test", "--role", "admin")[0] == 0
    assert run_cli("users", "disable", "boss@clinic.test")[0] == 0


def test_reset_password_replaces_the_password_and_forces_a_change(run_cli, panel):
    account = printed(run_cli("users", "add", "--email", "aud@clinic.test", "--role", "auditor")[1])
    assert account.password
    assert account.totp_secret
    code, out, err = run_cli("users", "reset-password", "aud@clinic.test")
    assert code == 0, err
    reset = printed(out)
    assert reset.password
    assert reset.password != account.password
    assert reset.totp_secret is None  # the second factor is unchanged
    assert panel.sign_in(account.email, account.password, account.totp_secret)[0] == 200
    status, target, _ = panel.sign_in(account.email, reset.password, account.totp_secret)
    assert (status, target) == (302, "/admin/password")
    assert panel.user(account.email).must_change_password is True
    assert [entry.actor_id for entry in panel.audit("user.password_reset")] == [OPERATOR]


def test_reset_mfa_replaces_the_totp_secret(run_cli, panel):
    account = printed(run_cli("users", "add", "--email", "n2@clinic.test", "--role", "nurse")[1])
    assert account.password
    assert account.totp_secret
    code, out, err = run_cli("users", "reset-mfa", "n2@clinic.test")
    assert code == 0, err
    reset = printed(out)
    assert reset.password is None  # the password is unchanged
    assert reset.totp_secret
    assert reset.totp_secret != account.totp_secret
    assert reset.totp_uri
    assert reset.totp_uri.startswith("otpauth://totp/Careloop:n2%40clinic.test?secret=")
    assert "recovery codes:" in out
    assert panel.sign_in(account.email, account.password, account.totp_secret)[0] == 200
    assert panel.sign_in(account.email, account.password, reset.totp_secret)[0] == 302
    assert [entry.actor_id for entry in panel.audit("user.mfa_reset")] == [OPERATOR]


@pytest.mark.parametrize("command", [["reset-password"], ["reset-mfa"], ["disable"]])
def test_an_unknown_account_is_one_line(run_cli, panel, command):
    code, out, err = run_cli("users", *command, "nobody@clinic.test")
    assert (code, out, err) == (1, "", "error: no staff account for nobody@clinic.test\n")


def test_as_names_the_staff_account_in_the_audit_trail(run_cli, panel):
    boss = panel.user("boss@clinic.test")
    code, _, err = run_cli("--as", "BOSS@clinic.test", "users", "add", "--email", "n3@clinic.test", "--role", "nurse")
    assert code == 0, err
    created = panel.user("n3@clinic.test")
    (entry,) = [entry for entry in panel.audit("user.create") if entry.resource_id == str(created.id)]
    assert (entry.actor_kind, entry.actor_id, entry.source) == ("user", str(boss.id), OPERATOR)
    assert run_cli("--as", "boss@clinic.test", "users", "disable", "n3@clinic.test")[0] == 0
    assert [(e.actor_kind, e.actor_id) for e in panel.audit("user.disable")] == [("user", str(boss.id))]


@pytest.mark.parametrize("who", ["nobody@clinic.test", "a disabled account"])
def test_as_must_name_an_active_account(run_cli, panel, who):
    if who == "a disabled account":
        assert run_cli("users", "add", "--email", "gone@clinic.test", "--role", "nurse")[0] == 0
        assert run_cli("users", "disable", "gone@clinic.test")[0] == 0
        who = "gone@clinic.test"
    before = len(panel.audit("user.create"))
    code, out, err = run_cli("--as", who, "users", "add", "--email", "n4@clinic.test", "--role", "nurse")
    assert (code, out) == (1, "")
    assert err == f"error: --as {who}: there is no active staff account with this e-mail\n"
    assert len(panel.audit("user.create")) == before
    assert "n4@clinic.test" not in run_cli("users", "list")[1]


def test_as_on_a_database_never_initialised_is_refused_by_init(run_cli, fresh_settings):
    code, _, err = run_cli("--as", "boss@clinic.test", "init")
    assert code == 1
    assert err == ("error: --as boss@clinic.test: the database has no staff accounts yet "
                   "(init creates the first administrator)\n")
    assert run_cli("users", "list")[0] == 1  # still not initialised
