"""Kill the dispatcher (SIGKILL) in the middle of sending 1,000 queued SMS, start it again: every message
reaches the provider exactly once, counted at the fake Twilio, and every row ends ``sent``.

The worker is the real ``careloop worker`` in its own process, on a database of its own, talking to
the fake through the real Twilio client. The fake holds its answer to the 400th message, so the
worker is killed at the worst moment: Twilio has the message, the worker has not written it down.
The restarted worker must find it by reconciling (after the short lease), not send it again. On
SQLite the killed worker's lock file is released by the kernel and the new worker takes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.models import OutboxMessage
from bot.outbox import enqueue
from care.patients import EnrolmentRequest, enroll
from careloop.runtime import Runtime, build_runtime
from careloop.settings import Settings, SettingsError
from tests.conftest import TEST_ACTOR
from tests.fakes.twilio_server import FakeTwilio
from tests.webhooks.conftest import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM

MESSAGES = 1000
PATIENTS = 10
KILL_AT = 400
LEASE_SECONDS = 2
DEADLINE_SECONDS = 240

@pytest.fixture
def provider() -> Iterator[FakeTwilio]:
    with FakeTwilio(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM) as fake:
        yield fake


@pytest.fixture
def worker_env(fresh_settings: Settings, provider: FakeTwilio, tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CARELOOP_", "TWILIO_"))}
    env.update({
        "CARELOOP_DATABASE_URL": fresh_settings.database_url,
        "CARELOOP_KEY_FILE": str(fresh_settings.key_file),
        "CARELOOP_BLOB_DIR": str(fresh_settings.blob_dir),
        "CARELOOP_PUBLIC_URL": "https://clinic.example.test",
        "CARELOOP_CHANNELS": "sms",
        "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": TWILIO_FROM,
        "TWILIO_API_BASE": provider.base_url,
        "CARELOOP_OUTBOX_LEASE_SECONDS": str(LEASE_SECONDS),
        "CARELOOP_RATE_LIMITS": "sms=100000",
    })
    return env


@pytest.fixture
def queued(run_cli, fresh_settings: Settings) -> Iterator[Runtime]:
    """A fresh database with 1,000 SMS queued for 10 patients (each body unique, so the fake can count)."""
    code, _out, err = run_cli("init")
    assert code == 0, err
    runtime = build_runtime(fresh_settings)
    with runtime.db.unit_of_work() as session:
        for p in range(PATIENTS):
            patient = enroll(session, EnrolmentRequest(
                card_no=f"C{p:07d}", name=f"测试{p}", gender="F", birth_date=date(1950, 1, 1),
                phone=f"+861380013{p:04d}"), actor=TEST_ACTOR).patient
            session.flush()
            for n in range(MESSAGES // PATIENTS):
                number = p * (MESSAGES // PATIENTS) + n
                enqueue(session, idempotency_key=f"crash-test:{number}", channel="sms", kind="text",
                        purpose="reminder", address=patient.phone, payload={"text": f"提醒 #{number:04d}"},
                        patient=patient)
    yield runtime
    runtime.close()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    careloop = Path(sys.executable).with_name("careloop")
    with log.open("ab") as output:
        return subprocess.Popen([str(careloop), "worker"], env=env, cwd=log.parent, stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=True)


def statuses(runtime: Runtime) -> Counter[str]:
    with runtime.db.unit_of_work() as session:
        rows = session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
        return Counter({status: count for status, count in rows})


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_lease_and_the_sending_rates_come_from_the_environment():
    settings = Settings.from_mapping({"CARELOOP_OUTBOX_LEASE_SECONDS": "2", "CARELOOP_RATE_LIMITS": "sms=50, voice=2"})
    assert settings.extra["outbox_lease_seconds"] == 2.0
    assert settings.extra["rate_limits"]["sms"] == 50.0
    assert settings.extra["rate_limits"]["voice"] == 2.0
    assert settings.extra["rate_limits"]["wechat"] == 20.0  # not named: the provider's documented limit
    with pytest.raises(SettingsError, match="CARELOOP_RATE_LIMITS"):
        Settings.from_mapping({"CARELOOP_RATE_LIMITS": "fax=1"})
    with pytest.raises(SettingsError, match="CARELOOP_OUTBOX_LEASE_SECONDS"):
        Settings.from_mapping({"CARELOOP_OUTBOX_LEASE_SECONDS": "soon"})


@pytest.mark.slow
def test_a_killed_dispatcher_loses_nothing_and_sends_nothing_twice(queued, provider, worker_env, tmp_path):
    log = tmp_path / "worker.log"
    hold = provider.hold_at(KILL_AT)
    first = start_worker(worker_env, log)
    try:
        assert hold.reached.wait(timeout=DEADLINE_SECONDS), log.read_text(errors="replace")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        stop(first)
        provider.release()
    assert first.returncode == -signal.SIGKILL
    assert len(provider.sent_messages()) == KILL_AT
    before = statuses(queued)
    assert before["sent"] == KILL_AT - 1  # the 400th is at Twilio, but the worker died before writing it down
    assert before["sending"] >= 1

    started = time.monotonic()
    second = start_worker(worker_env, log)
    try:
        while time.monotonic() - started < DEADLINE_SECONDS:
            assert second.poll() is None, log.read_text(errors="replace")  # it got the SQLite lock, and runs
            if statuses(queued)["sent"] == MESSAGES:
                break
            time.sleep(0.25)
        elapsed = time.monotonic() - started
    finally:
        stop(second)

    assert statuses(queued) == Counter({"sent": MESSAGES}), log.read_text(errors="replace")
    bodies = Counter(message["body"] for message in provider.sent_messages())
    assert len(bodies) == MESSAGES
    assert set(bodies.values()) == {1}  # every message reached Twilio exactly once
    assert len(provider.requests_for("messages.create")) == MESSAGES
    assert provider.requests_for("messages.list")  # the 400th was found by asking Twilio, not resent
    sid_of = {message["body"]: message["sid"] for message in provider.sent_messages()}
    with queued.db.unit_of_work() as session:
        for row in session.scalars(select(OutboxMessage)):
            assert row.provider_id == sid_of[row.payload["text"]]
    print(f"\nrestarted worker: {MESSAGES - KILL_AT + 1} messages sent or reconciled in {elapsed:.1f} s "
          f"(including start-up and the {LEASE_SECONDS} s lease)")
