"""What an attacker at the login form cannot learn or do: which factor failed, whether an account
exists, a second use of one TOTP code, unlimited guesses in parallel, unlimited audit writes."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from care import staff
from careloop.runtime import Runtime
from security import passwords, totp
from security.audit import AuditEntry
from tests.admin.conftest import PASSWORD, csrf_token, page_token
from tests.conftest import TEST_ACTOR

GENERIC_REFUSAL_ZH = "邮箱、密码或验证码不正确"


def _normalised(response: Any) -> str:
    """The page without what differs between any two answers: its CSRF token and the e-mail typed."""
    page = response.get_data(as_text=True).replace(csrf_token(response), "TOKEN")
    return re.sub(r'value="[^"]*@clinic\.test"', 'value="EMAIL"', page)


@pytest.mark.parametrize("code", ["１２３４５６", "١٢٣٤٥٦", "۱۲۳۴۵۶", "12３456", "12 34 56\u00b2", "½⅓¼⅕⅙⅐"])
def test_a_code_in_non_ascii_digits_is_a_plain_refusal(client, make_staff, sign_in, code):
    member = make_staff("nurse")
    response = sign_in(member, code=code)  # the right password
    assert response.status_code == 200
    assert GENERIC_REFUSAL_ZH in response.get_data(as_text=True)
    assert totp.verify_code(member.totp_secret, code, at=totp_now(), last_used_step=None) is None


def totp_now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


def test_a_refusal_answers_the_same_page_whichever_factor_failed(client, make_staff, sign_in, clock):
    member = make_staff("nurse")
    locked = make_staff("nurse")
    for _ in range(staff.LOCKOUT_THRESHOLD):
        sign_in(locked, password="not the password")
    answers: dict[str, tuple[int, str]] = {}

    def record(name: str, response: Any) -> None:
        answers[name] = (response.status_code, _normalised(response))

    record("wrong password", sign_in(member, password="not the password"))
    record("wrong code", sign_in(member, code="000000"))
    record("full-width code", sign_in(member, code="１２３４５６"))
    record("locked account", sign_in(locked))
    member.email = "nobody@clinic.test"
    record("unknown e-mail", sign_in(member))
    first = answers["wrong password"]
    assert first[0] == 200
    for name, answer in answers.items():
        assert answer == first, name


class _Counting:
    """Count the argon2 work the real hasher does (the library's own methods, wrapped)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[str] = []
        self.calls = calls

        class CountingHasher(PasswordHasher):
            def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
                calls.append("hash")
                return super().hash(password, salt=salt)

            def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002 - argon2's name
                calls.append("verify")
                return super().verify(hash, password)

        real = passwords.HASHER
        monkeypatch.setattr(passwords, "HASHER", CountingHasher(
            time_cost=real.time_cost, memory_cost=real.memory_cost, parallelism=real.parallelism,
            hash_len=real.hash_len, salt_len=real.salt_len, type=real.type))


def test_an_unknown_e_mail_costs_the_same_argon2_work_as_a_wrong_password(db, make_staff, monkeypatch):
    member = make_staff("nurse")
    disabled = make_staff("nurse")
    disabled.user.is_active = False
    db.flush()

    def attempt(email: str) -> None:
        with pytest.raises(staff.SignInError):
            staff.authenticate(db, email=email, password="not the password", code="000000", source="test")

    attempt("warm-up@clinic.test")  # a dummy hash may be made once per process
    counter = _Counting(monkeypatch)
    work: dict[str, list[str]] = {}
    for name, email in (("known", member.email), ("unknown", "nobody@clinic.test"), ("disabled", disabled.email)):
        counter.calls.clear()
        attempt(email)
        work[name] = list(counter.calls)
    assert work["known"] == ["verify"]
    assert work["unknown"] == work["known"]
    assert work["disabled"] == work["known"]


# -- races, on a database of their own with committed rows --------------------------------------------
def _committed_account(runtime: Runtime, email: str) -> str:
    with runtime.db.unit_of_work() as session:
        staff.ensure_roles(session)
        account = staff.create_user(session, email=email, display_name="Race", role_name="nurse", actor=TEST_ACTOR)
        account.user.password_hash = passwords.hash_password(PASSWORD)
        account.user.must_change_password = False
    return account.totp_secret


def _in_parallel(count: int, attempt: Callable[[], bool]) -> list[bool]:
    barrier = threading.Barrier(count)
    results: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            outcome = attempt()
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            with lock:
                errors.append(error)
            return
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(results) == count
    return results


def _attempt(runtime: Runtime, email: str, password: str, code: str) -> bool:
    """One sign-in in its own unit of work; a refusal is committed too (as the login view does)."""
    with runtime.db.unit_of_work() as session:
        try:
            staff.authenticate(session, email=email, password=password, code=code, source="race")
        except staff.SignInError:
            return False
        return True


def test_parallel_wrong_passwords_lock_the_account(live_runtime):
    email = "race-lock@clinic.test"
    secret = _committed_account(live_runtime, email)
    attempts = 4 * staff.LOCKOUT_THRESHOLD
    results = _in_parallel(attempts, lambda: _attempt(live_runtime, email, "not the password", "000000"))
    assert not any(results)
    with live_runtime.db.unit_of_work() as session:
        refusals = dict(session.execute(
            select(AuditEntry.action, func.count()).where(AuditEntry.action.in_(["auth.failed", "auth.locked"]))
            .group_by(AuditEntry.action)).all())
        assert sum(refusals.values()) == attempts
        assert refusals["auth.failed"] >= staff.LOCKOUT_THRESHOLD
        assert staff.is_locked(session, staff.get_user(session, email))
    code = totp.current_code(secret, live_runtime.clock.now())
    assert _attempt(live_runtime, email, PASSWORD, code) is False  # locked: the right factors are refused


def test_one_totp_code_signs_in_once_however_many_use_it_at_once(live_runtime):
    email = "race-code@clinic.test"
    secret = _committed_account(live_runtime, email)
    code = totp.current_code(secret, live_runtime.clock.now())
    results = _in_parallel(6, lambda: _attempt(live_runtime, email, PASSWORD, code))
    assert sorted(results) == [False] * 5 + [True]


def test_one_recovery_code_signs_in_once_however_many_use_it_at_once(live_runtime):
    email = "race-recovery@clinic.test"
    with live_runtime.db.unit_of_work() as session:
        staff.ensure_roles(session)
        account = staff.create_user(session, email=email, display_name="Race", role_name="nurse", actor=TEST_ACTOR)
        account.user.password_hash = passwords.hash_password(PASSWORD)
        account.user.must_change_password = False
    code = account.recovery_codes[0]
    results = _in_parallel(6, lambda: _attempt(live_runtime, email, PASSWORD, code))
    assert sorted(results) == [False] * 5 + [True]
    with live_runtime.db.unit_of_work() as session:
        assert len(staff.get_user(session, email).recovery_code_hashes) == totp.RECOVERY_CODE_COUNT - 1


# -- a rate limit per client address, before anything is written --------------------------------------
@pytest.fixture
def limited_client(settings, runtime):
    from tests.conftest import flask_app_for

    runtime.settings = settings.with_overrides(sign_in_rate_limit="3 per minute")
    return flask_app_for(runtime).test_client()


def _count(db, action: str) -> int:
    return int(db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)) or 0)


def test_sign_in_posts_are_limited_per_address_before_anything_is_written(limited_client, make_staff, db):
    member = make_staff("nurse")
    token = page_token(limited_client)
    form = {"csrf_token": token, "email": member.email, "password": "not the password", "code": "000000"}
    for _ in range(3):
        assert limited_client.post("/admin/login", data=form).status_code == 200
    refused = limited_client.post("/admin/login", data=form)
    assert refused.status_code == 429
    assert "尝试次数过多" in refused.get_data(as_text=True)
    assert _count(db, "auth.failed") == 3
    other = limited_client.post("/admin/login", data=form, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 200  # another address has its own allowance
    assert _count(db, "auth.failed") == 4


def test_anonymous_posts_refused_for_csrf_are_limited_before_the_refusal_is_written(limited_client, db):
    for _ in range(3):
        assert limited_client.post("/admin/language", data={"language": "en"}).status_code == 400
    assert _count(db, "csrf.refused") == 3
    assert limited_client.post("/admin/simulator/messages", data={}).status_code == 429
    assert _count(db, "csrf.refused") == 3


def test_the_sign_in_rate_limit_is_a_setting():
    from careloop.settings import Settings, SettingsError

    assert Settings.from_mapping({"CARELOOP_SIGN_IN_RATE_LIMIT": "5/minute"}).sign_in_rate_limit == "5/minute"
    with pytest.raises(SettingsError, match="CARELOOP_SIGN_IN_RATE_LIMIT"):
        Settings.from_mapping({"CARELOOP_SIGN_IN_RATE_LIMIT": "lots"})


def test_refused_api_pushes_are_limited_per_address_before_the_refusal_is_written(limited_client, db):
    def refusals() -> int:
        return _count(db, "report.push_refused")

    for _ in range(3):
        answer = limited_client.post("/api/v1/reports", data=b"x", headers={"Authorization": "Bearer clk_nope"})
        assert answer.status_code == 401
    assert refusals() == 3
    answer = limited_client.post("/api/v1/reports", data=b"x", headers={"Authorization": "Bearer clk_nope"})
    assert answer.status_code == 429
    assert answer.get_json()["error"] == "rate_limited"
    assert refusals() == 3
