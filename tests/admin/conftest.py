"""Fixtures for the staff panel: staff accounts of each role, signing in, CSRF tokens from pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from care import staff
from care.models import User
from security import passwords, totp
from security.clock import FixedClock
from tests.conftest import TEST_ACTOR

PASSWORD = "a calm river at dawn 42"
TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@dataclass
class Staff:
    """A staff member the tests can sign in as."""

    user: User
    email: str
    password: str
    totp_secret: str
    recovery_codes: list[str]


def csrf_token(response: TestResponse) -> str:
    """Return the CSRF token a page carries (every admin page has it in a meta tag)."""
    found = TOKEN.search(response.get_data(as_text=True))
    assert found, "the page carries no CSRF token"
    return found.group(1)


def page_token(client: FlaskClient, path: str = "/admin/login") -> str:
    """Open ``path`` (following redirects) and return its CSRF token."""
    return csrf_token(client.get(path, follow_redirects=True))


@pytest.fixture
def make_staff(db: Session) -> Callable[..., Staff]:
    """Create a staff account; ``ready=True`` (default) gives it a chosen password already."""
    staff.ensure_roles(db)
    counter = iter(range(1, 1000))

    def factory(role: str = "admin", *, ready: bool = True, email: str | None = None) -> Staff:
        address = email or f"{role}{next(counter)}@clinic.test"
        account = staff.create_user(db, email=address, display_name=f"Test {role}", role_name=role,
                                    actor=TEST_ACTOR)
        password = account.one_time_password
        if ready:
            password = PASSWORD
            account.user.password_hash = passwords.hash_password(PASSWORD)
            account.user.must_change_password = False
        db.flush()
        return Staff(account.user, address, password, account.totp_secret, account.recovery_codes)

    return factory


@pytest.fixture
def sign_in(client: FlaskClient, clock: FixedClock) -> Callable[..., TestResponse]:
    """Sign in through the login form; the TOTP code comes from the test clock."""

    def login(member: Staff, *, password: str | None = None, code: str | None = None,
              next_url: str | None = None, on: FlaskClient | None = None) -> TestResponse:
        browser = on or client
        token = page_token(browser)
        form = {"csrf_token": token, "email": member.email, "password": password or member.password,
                "code": code if code is not None else totp.current_code(member.totp_secret, clock.now())}
        if next_url is not None:
            form["next"] = next_url
        return browser.post("/admin/login", data=form)

    return login


@pytest.fixture
def signed_in(make_staff: Callable[..., Staff], sign_in: Callable[..., TestResponse]) -> Callable[..., Staff]:
    """Create a ready account of ``role`` and sign the test client in as it."""

    def factory(role: str = "admin") -> Staff:
        member = make_staff(role)
        response = sign_in(member)
        assert response.status_code == 302, response.get_data(as_text=True)
        return member

    return factory
