"""A killed worker loses no message and sends none twice where the purpose's guarantee forbids it.

Real ``careloop worker`` processes on a database of their own (SQLite or PostgreSQL), talking to the
local fake WeChat and Twilio through the real clients, are killed with SIGKILL at random points
(one of them while the provider holds its answer: the provider has the message, the worker has not
written it down), and replaced at once. Counted at the fakes:

- SMS and calls: every message exactly once (a started attempt is looked up at Twilio, never resent
  blindly), and a dead worker's unattempted rows sent again within seconds, not after the lease;
- WeChat: reminders at least once (a duplicate only for a row resent after an unconfirmed attempt,
  at most one per kill), replies at most once (a loss only where the row says ``unconfirmed``);
- follow-ups over ``[wechat, sms]``: one invitation row per follow-up, on WeChat; not one SMS
  because of a crash.

200 messages a run (``CARELOOP_FAULT_SEED`` replays a run's random points); bench/bench_worker_faults.py
runs the same with 1,000.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from careloop import migrate
from careloop.runtime import Runtime, build_runtime
from careloop.settings import Settings, SettingsError
from tests.careloop.faults import FaultRun, Kill, Outcome, enrol, followups, queue, schedule
from tests.careloop.workers import worker_env
from tests.fakes.twilio_server import FakeTwilio
from tests.fakes.wechat_server import FakeWeChat
from tests.webhooks.conftest import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM, WECHAT_APPID, WECHAT_SECRET

pytestmark = pytest.mark.slow

MESSAGES = 200
RATE = 15.0  # a second per channel and worker: slow enough that a run lasts long enough for two kills
# WeChat rows whose attempt was under way at a kill are resent after the lease: short here, so the test is quick.
WECHAT_LEASE = 12.0
# Death to the first of its unattempted rows sent again: heartbeat silence (6 s), the replacement's
# start and a tick; far below the 120 s lease these rows used to wait out. The target for the last of
# them is 15 s (bench/bench_worker_faults.py measures it); this bound leaves room for a loaded machine.
RELEASED_WITHIN = 20.0


@pytest.fixture
def seed() -> int:
    value = int(os.environ.get("CARELOOP_FAULT_SEED") or time.time_ns() % 1_000_000)
    print(f"CARELOOP_FAULT_SEED={value}")
    return value


@pytest.fixture
def wechat() -> Iterator[FakeWeChat]:
    with FakeWeChat(WECHAT_APPID, WECHAT_SECRET) as fake:
        yield fake


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM) as fake:
        yield fake


@pytest.fixture
def clinic(fresh_settings: Settings) -> Iterator[Runtime]:
    runtime = build_runtime(fresh_settings, create_key=True, sealing=True)  # the worker seals: it needs the audit key
    migrate.upgrade(runtime.db.engine)
    yield runtime
    runtime.close()


def fault_run(clinic: Runtime, settings: Settings, tmp_path: Path, seed: int, *, wechat: FakeWeChat | None = None,
              twilio: FakeTwilio | None = None, lease: float | None = None, rate: float = RATE) -> FaultRun:
    env = worker_env(settings, channels="console,wechat,sms,voice",
                     wechat_base=wechat.base_url if wechat else None, twilio_base=twilio.base_url if twilio else None,
                     lease_seconds=lease, rate=rate)
    return FaultRun(clinic, env, tmp_path / "workers.log", wechat=wechat, twilio=twilio, seed=seed)


def two_kills(channel: str, seed: int, *, first_between: tuple[int, int] = (20, 60)) -> list[Kill]:
    """One kill while the provider holds message N (N at random), one at a random moment after."""
    return [Kill(channel, hold=True, at=random.Random(seed).randint(*first_between)), Kill(channel, hold=False,
                                                                                          after=2.0)]


def assert_released_quickly(outcome: Outcome) -> None:
    for death in outcome.deaths:
        if death.unattempted:
            assert death.released_after is not None, outcome.summary()
            assert death.released_after < RELEASED_WITHIN, outcome.summary()


def assert_exactly_once(outcome: Outcome, channel: str) -> None:
    rows = outcome.of(channel)
    assert rows, outcome.summary()
    assert Outcome.lost(rows) == [], outcome.summary()
    assert Outcome.duplicated(rows) == [], outcome.summary()
    assert {row.status for row in rows} == {"sent"}, outcome.summary()


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


def test_sms_killed_twice_loses_nothing_and_sends_nothing_twice(clinic, fresh_settings, twilio, tmp_path, seed):
    queue(clinic, "sms", MESSAGES, enrol(clinic, 20, prefix="S"))
    run = fault_run(clinic, fresh_settings, tmp_path, seed, twilio=twilio)  # the default lease: 120 s
    outcome = run.run(two_kills("sms", seed), expected_rows=MESSAGES)
    print(outcome.summary())
    assert_exactly_once(outcome, "sms")
    assert outcome.stray == []
    assert twilio.requests_for("messages.list")  # the held message was found at Twilio, not sent again
    assert_released_quickly(outcome)


def test_calls_killed_twice_are_placed_exactly_once(clinic, fresh_settings, twilio, tmp_path, seed):
    calls = 150  # one per patient: a call is known at Twilio by its number
    queue(clinic, "voice", calls, enrol(clinic, calls, prefix="V"))
    run = fault_run(clinic, fresh_settings, tmp_path, seed, twilio=twilio)
    outcome = run.run(two_kills("voice", seed), expected_rows=calls)
    print(outcome.summary())
    assert_exactly_once(outcome, "voice")
    assert outcome.stray == []
    assert twilio.requests_for("calls.list")
    assert_released_quickly(outcome)


def test_wechat_killed_twice_loses_no_reminder_and_repeats_no_reply(clinic, fresh_settings, wechat, tmp_path, seed):
    # Three reminders (at least once) to every reply (at most once).
    queue(clinic, "wechat", MESSAGES, enrol(clinic, 20, prefix="W", wechat=True),
          purposes=("reminder", "reminder", "reminder", "reply"))
    run = fault_run(clinic, fresh_settings, tmp_path, seed, wechat=wechat, lease=WECHAT_LEASE)
    kills = two_kills("wechat", seed)
    outcome = run.run(kills, expected_rows=MESSAGES)
    print(outcome.summary())
    reminders, replies = outcome.of("wechat", ["reminder"]), outcome.of("wechat", ["reply"])
    assert Outcome.lost(reminders) == [], outcome.summary()
    doubled = Outcome.duplicated(reminders)
    assert all(row.deliveries == 2 and row.resends == 1 for row in doubled), outcome.summary()
    assert len(doubled) <= len(kills), outcome.summary()  # only a row under way at a kill
    assert all(row.deliveries <= 1 for row in replies), outcome.summary()
    lost_replies = Outcome.lost(replies)
    assert all(row.status == "unconfirmed" for row in lost_replies), outcome.summary()
    assert len(lost_replies) <= len(kills), outcome.summary()
    statuses = {row.status for row in outcome.rows.values()}
    assert statuses <= {"sent", "unconfirmed"}, outcome.summary()  # an unknown outcome is never "failed"
    assert outcome.stray == []
    # The message WeChat held at the first kill: delivered, and then resent (a reminder) or left (a reply).
    held = [row for row in outcome.rows.values() if row.resends or row.status == "unconfirmed"]
    assert held, outcome.summary()
    assert_released_quickly(outcome)


def test_followup_invitations_go_once_per_channel_attempt_and_never_to_sms_because_of_a_crash(
        clinic, fresh_settings, wechat, twilio, tmp_path, seed):
    patients = enrol(clinic, 150, prefix="F", wechat=True)
    schedule(clinic, patients, ["wechat", "sms"])
    run = fault_run(clinic, fresh_settings, tmp_path, seed, wechat=wechat, twilio=twilio, lease=WECHAT_LEASE)
    kills = two_kills("wechat", seed, first_between=(5, 20))
    outcome = run.run(kills, expected_rows=len(patients))
    print(outcome.summary())
    invitations = outcome.of("wechat", ["followup_invite"])
    assert len(invitations) == len(patients) == len(outcome.rows), outcome.summary()  # one row per follow-up
    assert outcome.of("sms") == []
    assert twilio.sent_messages() == []  # no invitation by SMS because of a crash
    assert Outcome.lost(invitations) == [], outcome.summary()
    doubled = Outcome.duplicated(invitations)
    assert all(row.deliveries == 2 and row.resends == 1 for row in doubled), outcome.summary()
    assert len(doubled) <= len(kills), outcome.summary()
    assert {(f.status, f.current_channel) for f in followups(clinic)} == {("invited", "wechat")}
    assert_released_quickly(outcome)


@pytest.mark.parametrize("workers", [2, 3])
def test_several_workers_on_postgresql_one_killed(clinic, fresh_settings, wechat, twilio, tmp_path, seed, workers,
                                                  dialect_name):
    if dialect_name != "postgresql":
        pytest.skip("one worker serves an SQLite file")
    patients = enrol(clinic, 20, prefix="M", wechat=True)
    queue(clinic, "sms", MESSAGES // 2, patients)
    queue(clinic, "wechat", MESSAGES // 2, patients)
    # 8 a second per channel in all: the run lasts long enough for a kill on each channel.
    run = fault_run(clinic, fresh_settings, tmp_path, seed, wechat=wechat, twilio=twilio, lease=WECHAT_LEASE,
                    rate=8.0 / workers)
    rng = random.Random(seed)
    kills = [Kill("wechat", at=rng.randint(8, 20)), Kill("sms", at=rng.randint(60, 80))]
    outcome = run.run(kills, workers=workers, expected_rows=MESSAGES)
    print(outcome.summary())
    assert_exactly_once(outcome, "sms")
    reminders = outcome.of("wechat")
    assert Outcome.lost(reminders) == [], outcome.summary()
    doubled = Outcome.duplicated(reminders)
    assert all(row.deliveries == 2 and row.resends == 1 for row in doubled), outcome.summary()
    assert len(doubled) <= 1, outcome.summary()  # one WeChat kill
    assert outcome.stray == []
    assert_released_quickly(outcome)
