"""Kill workers with SIGKILL while they send 1,000 queued messages, restart them, count at the fake providers.

    .venv/bin/python -m bench.bench_worker_faults                         # every scenario, SQLite
    .venv/bin/python -m bench.bench_worker_faults --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python -m bench.bench_worker_faults --scenario sms --count 200 --kills 2   # quick

Scenarios (each on a fresh database, with real ``careloop worker`` processes talking to the local
fake WeChat and Twilio through the real clients; see tests/careloop/faults.py):

- ``sms``: ``--count`` reminders by SMS;  ``voice``: ``--count`` calls, one per patient;
- ``wechat``: ``--count`` WeChat messages, three reminders (at least once) to one reply (at most once);
- ``followups``: ``--count`` PHQ-9 follow-ups over ``[wechat, sms]`` (the workers invite and send);
- ``workers2``, ``workers3`` (PostgreSQL only): ``--count`` / 2 SMS and as many WeChat reminders, two or
  three workers at once.

``--kills`` kills per run: the first while the provider holds its answer to a message at random
in the run's first 30 % (the provider has it, the worker has not written it down), the others at
random moments once the previous dead worker's unattempted rows were sent. Every setting is the
default (lease 120 s, heartbeat 2 s, dead after 6 s) but the sending rate (``--rate``, a second
per channel in all: the providers' 1/s would make a 1,000-message run last a quarter of an hour).

Prints, per scenario, the rows and what the providers received (lost, duplicated), each kill's
"death to the first / last of its unattempted rows sent" and "attempt under way settled", and
checks: SMS and calls 0 lost 0 duplicated; WeChat reminders and invitations 0 lost, a duplicate only
for a row resent after an unconfirmed attempt; replies never twice; no invitation by SMS; the last
unattempted row of every dead worker sent within 15 s. Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import is_postgresql, machine, scratch_database
from careloop import migrate
from careloop.runtime import Runtime, build_runtime
from careloop.settings import Settings
from tests.careloop.faults import FaultRun, Kill, Outcome, enrol, followups, queue, schedule, settings_summary
from tests.careloop.workers import worker_env
from tests.fakes.twilio_server import FakeTwilio
from tests.fakes.wechat_server import FakeWeChat
from tests.webhooks.conftest import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM, WECHAT_APPID, WECHAT_SECRET

TARGET_SECONDS = 15.0
SCENARIOS = ("sms", "voice", "wechat", "followups", "workers2", "workers3")


def prepare(scenario: str, runtime: Runtime, count: int) -> tuple[str, int, int]:
    """Queue the scenario's messages; return (the channel the held kill watches, rows expected, workers)."""
    if scenario == "sms":
        queue(runtime, "sms", count, enrol(runtime, max(10, count // 10), prefix="S"))
        return "sms", count, 1
    if scenario == "voice":
        queue(runtime, "voice", count, enrol(runtime, count, prefix="V"))
        return "voice", count, 1
    if scenario == "wechat":
        queue(runtime, "wechat", count, enrol(runtime, max(10, count // 10), prefix="W", wechat=True),
              purposes=("reminder", "reminder", "reminder", "reply"))
        return "wechat", count, 1
    if scenario == "followups":
        schedule(runtime, enrol(runtime, count, prefix="F", wechat=True), ["wechat", "sms"])
        return "wechat", count, 1
    workers = int(scenario.removeprefix("workers"))
    patients = enrol(runtime, max(10, count // 20), prefix="M", wechat=True)
    queue(runtime, "sms", count // 2, patients)
    queue(runtime, "wechat", count // 2, patients)
    return "sms", count // 2 * 2, workers


def check(scenario: str, outcome: Outcome, kills: int, runtime: Runtime) -> list[str]:
    problems = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    for channel in ("sms", "voice"):
        rows = outcome.of(channel)
        expect(not Outcome.lost(rows), f"{channel}: {len(Outcome.lost(rows))} lost")
        expect(not Outcome.duplicated(rows), f"{channel}: {len(Outcome.duplicated(rows))} duplicated")
    once_at_least = outcome.of("wechat", ["reminder", "followup_invite"])
    expect(not Outcome.lost(once_at_least), f"wechat: {len(Outcome.lost(once_at_least))} lost")
    doubled = Outcome.duplicated(once_at_least)
    expect(all(row.deliveries == 2 and row.resends == 1 for row in doubled),
           "wechat: a duplicate that is not a resend after an unconfirmed attempt")
    expect(len(doubled) <= kills, f"wechat: {len(doubled)} duplicates for {kills} kills")
    replies = outcome.of("wechat", ["reply"])
    expect(all(row.deliveries <= 1 for row in replies), "wechat: a reply sent twice")
    expect(all(row.status == "unconfirmed" for row in Outcome.lost(replies)), "wechat: a reply lost unannounced")
    if scenario == "followups":
        expect(not outcome.of("sms"), "follow-ups: an invitation by SMS")
        expect({(f.status, f.current_channel) for f in followups(runtime)} == {("invited", "wechat")},
               "follow-ups: not all invited on WeChat")
    expect(not outcome.stray, f"{len(outcome.stray)} deliveries that match no row")
    for number, death in enumerate(outcome.deaths, 1):
        if death.unattempted:
            last = death.last_sent_after
            expect(last is not None and last < TARGET_SECONDS,
                   f"kill {number}: the last unattempted row sent {last} s after the death (target {TARGET_SECONDS} s)")
    return problems


def run_scenario(scenario: str, url: str, args: argparse.Namespace, seed: int,
                 report: Callable[[str], None]) -> list[str]:
    folder = Path(tempfile.mkdtemp(prefix=f"careloop-faults-{scenario}-"))
    settings = Settings(database_url=url, key_file=folder / "master.key", blob_dir=folder / "blobs")
    runtime = build_runtime(settings, create_key=True, sealing=True)
    migrate.upgrade(runtime.db.engine)
    rng = random.Random(seed)
    with FakeWeChat(WECHAT_APPID, WECHAT_SECRET) as wechat, \
            FakeTwilio(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM) as twilio:
        channel, expected, workers = prepare(scenario, runtime, args.count)
        env = worker_env(settings, channels="console,wechat,sms,voice", wechat_base=wechat.base_url,
                         twilio_base=twilio.base_url, rate=args.rate / workers)
        kills = [Kill(channel, hold=True, at=rng.randint(max(2, expected // 20), max(3, expected * 3 // 10)))]
        kills += [Kill(channel, hold=False, after=3.0) for _ in range(args.kills - 1)]
        run = FaultRun(runtime, env, folder / "workers.log", wechat=wechat, twilio=twilio, seed=seed)
        started = time.monotonic()
        outcome = run.run(kills, workers=workers, expected_rows=expected, timeout=args.timeout)
        report(f"\n## {scenario}: {expected} rows, {workers} worker(s), {len(kills)} kills, seed {seed} "
               f"({time.monotonic() - started:.0f} s)")
        report(f"settings: {settings_summary(env)} (the rest: defaults)")
        report(outcome.summary())
        problems = check(scenario, outcome, len(kills), runtime)
        report("checks: " + ("all met" if not problems else "; ".join(problems)))
        if problems:
            report(run.output())
    runtime.close()
    shutil.rmtree(folder, ignore_errors=True)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None, help="sqlite (default) or a PostgreSQL URL")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: all that the engine takes")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--rate", type=float, default=50.0, help="sends a second per channel, all workers together")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a run may take to settle")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    postgresql = is_postgresql(args.database_url)
    scenarios = args.scenario or [s for s in SCENARIOS if postgresql or not s.startswith("workers")]
    if not postgresql and any(s.startswith("workers") for s in scenarios):
        parser.error("several workers need PostgreSQL (one worker serves an SQLite file)")
    seed = args.seed if args.seed is not None else time.time_ns() % 1_000_000
    print("\n".join(machine(args.database_url)))
    failed = False
    for index, scenario in enumerate(scenarios):
        with scratch_database(args.database_url, f"faults_{scenario}") as url:
            problems = run_scenario(scenario, url, args, seed + index, lambda line: print(line, flush=True))
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
