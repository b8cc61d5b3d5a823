"""Plans at scale: patients enrolled in a monthly plan, the month scheduled, the due follow-ups handled.

Enrols ``--patients`` synthetic patients (bulk, as the import does) in a scratch database, adds a
monthly plan (console channel: the invitation is queued in the outbox, which the dispatcher sends;
its delivery to the fake providers is measured by ``bench_worker_faults``), then reports:

* the time to schedule the month: ``care.plans.enrol_many`` over every patient (one row each);
* the rate of the worker's ``due_followups`` on the due rows (claimed in batches with
  ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, their patients locked and what they need read per
  batch, an invitation queued each): one worker process on the first half of the rows, then two
  worker processes on the second half; each row is checked to have been handled once (one
  invitation each). The machine's load average is printed beside the figures (a shared machine).

Targets (issue 16): over 500 follow-ups/s with one worker; two workers at least 1.6 times one.
Two workers need PostgreSQL (SQLite has one writer).

    .venv/bin/python -m bench.bench_plans --patients 200                     # smoke, SQLite
    .venv/bin/python -m bench.bench_plans --patients 100000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import resource
import shutil
import tempfile
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from time import monotonic, perf_counter, process_time
from typing import Any

from sqlalchemy import func, select

from bench.common import is_postgresql, machine, scratch_database, synthetic_patients
from bot.followups import due_followups
from bot.models import OutboxMessage
from care import plans
from care.models import FollowUp
from care.patients import enroll_many
from careloop import migrate
from careloop.bot_runtime import build_bot
from careloop.runtime import build_runtime
from careloop.settings import Settings
from security.audit import Actor
from security.clock import FixedClock

ACTOR = Actor("system", "bench", "bench")
TARGET_PER_SECOND = 500
TARGET_SPEED_UP = 1.6
PLAN = """id: bench_monthly
version: 1
title: {zh: 每月随访, en: Monthly follow-up}
steps:
  - flow: home_monitoring
    when: {every: {months: 1}, at: "10:00"}
    channels: [console]
    on_silence: [staff_call]
"""


def _worker(settings: Settings, at: datetime, budget: Any, handled: Any, cpu: Any, finished: Any, ready: Any,
            batch: int, slot: int, failures: Any) -> None:
    """One worker process: its own runtime (as ``careloop worker`` has), ``due_followups`` until the budget is spent."""
    try:
        runtime = build_runtime(settings, clock=FixedClock(at))
        services = build_bot(runtime).services
        with runtime.db.unit_of_work() as session:  # connect and warm up before the clock starts
            session.scalar(select(func.count()).select_from(FollowUp).where(FollowUp.id.is_(None)))
    except BaseException as failure:  # noqa: BLE001 - reported by the parent
        failures.put(f"worker {slot}: {failure!r}")
        ready.abort()
        return
    ready.wait()
    cpu_before = process_time()
    try:
        while True:
            with budget.get_lock():
                take = min(batch, budget.value)
                budget.value -= take
            if take <= 0:
                break
            with runtime.db.unit_of_work() as session:
                done = due_followups(session, services, limit=take)
            handled[slot] += done
            if done < take:
                with budget.get_lock():
                    budget.value += take - done
                if done == 0:
                    break
    except BaseException as failure:  # noqa: BLE001 - reported by the parent
        failures.put(f"worker {slot}: {failure!r}")
    finally:
        # The monotonic clock is the machine's: the parent compares it with its own start.
        finished[slot] = monotonic()
        cpu[slot] = process_time() - cpu_before
        runtime.close()


def drain(settings: Settings, at: datetime, workers: int, budget: int, batch: int) -> tuple[int, float, list[float]]:
    """Run ``workers`` worker processes of ``due_followups`` until ``budget`` rows are handled.

    Processes, as deployed (``careloop worker`` is a process; threads of one process would share one GIL).
    The clock starts once every worker is connected and stops at the last one's last commit. Returns the
    rows handled, the seconds, and each worker's CPU seconds (well under the seconds: the worker waited for
    the database or for a core).
    """
    context = multiprocessing.get_context("spawn")
    left = context.Value("i", budget)
    handled = context.Array("i", workers)
    cpu = context.Array("d", workers)
    finished = context.Array("d", workers)
    ready = context.Barrier(workers + 1)
    failures = context.SimpleQueue()
    processes = [context.Process(target=_worker,
                                 args=(settings, at, left, handled, cpu, finished, ready, batch, slot, failures))
                 for slot in range(workers)]
    for process in processes:
        process.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a worker that failed to start says why below
        ready.wait(timeout=120)
    started = monotonic()
    for process in processes:
        process.join()
    # Until the last worker's last commit: a process's exit (the interpreter's teardown) is not dispatch.
    seconds = max(finished) - started
    if not failures.empty():
        raise SystemExit(failures.get())
    return sum(handled), seconds, list(cpu)


def cpu_share(cpu: list[float], seconds: float) -> str:
    return ", ".join(f"{used:.1f} s ({used / seconds:.0%})" for used in cpu) if seconds else "-"


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=200, help="rows claimed per worker transaction")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print("\n".join(machine(args.database_url)))
    with scratch_database(args.database_url, "plans") as url:
        folder = Path(tempfile.mkdtemp(prefix="careloop-bench-plans-"))
        settings = Settings(database_url=url, key_file=folder / "master.key", blob_dir=folder / "blobs")
        clock = FixedClock(datetime(2026, 12, 1, 1, 0, tzinfo=UTC))
        runtime = build_runtime(settings, clock=clock, create_key=True)
        migrate.upgrade(runtime.db.engine)
        services = build_bot(runtime).services
        ids = []
        started = perf_counter()
        people = list(synthetic_patients(args.patients))
        for start in range(0, len(people), 1000):
            with runtime.db.unit_of_work() as session:
                batch = enroll_many(session, [person.request() for person in people[start:start + 1000]],
                                    actor=ACTOR)
                ids += [row.patient_id for row in batch if row.patient_id]
        print(f"patients: {len(ids)} enrolled in the clinic in {perf_counter() - started:.1f} s")
        with runtime.db.unit_of_work() as session:
            plans.add_plan(session, PLAN, flow_ids=set(services.library.ids()), actor=ACTOR)
        started = perf_counter()
        for start in range(0, len(ids), 10_000):
            with runtime.db.unit_of_work() as session:
                plans.enrol_many(session, ids[start:start + 10_000], "bench_monthly", actor=ACTOR)
        seconds = perf_counter() - started
        print(f"schedule the month: {len(ids)} patients enrolled, one follow-up each, in {seconds:.2f} s "
              f"({len(ids) / seconds:,.0f} patients/s)")
        clock.advance(days=31, hours=2)  # every row due (10:00 on 1 January, Shanghai), none past the grace
        at = clock.now()
        half = len(ids) // 2
        print(f"load average before dispatch: {load_average()}")
        one, one_s, one_cpu = drain(settings, at, 1, half, args.batch)
        one_rate = one / one_s if one_s else 0.0
        print(f"due follow-ups, 1 worker: {one} in {one_s:.2f} s = {one_rate:,.0f}/s "
              f"(target > {TARGET_PER_SECOND}/s: {'met' if one_rate > TARGET_PER_SECOND else 'NOT met'}); "
              f"worker CPU {cpu_share(one_cpu, one_s)}")
        if is_postgresql(args.database_url):
            two, two_s, two_cpu = drain(settings, at, 2, len(ids) - one, args.batch)
            two_rate = two / two_s if two_s else 0.0
            ratio = two_rate / one_rate if one_rate else 0.0
            print(f"due follow-ups, 2 workers: {two} in {two_s:.2f} s = {two_rate:,.0f}/s, {ratio:.2f}x one "
                  f"(target >= {TARGET_SPEED_UP}x: {'met' if ratio >= TARGET_SPEED_UP else 'NOT met'}); "
                  f"worker CPU {cpu_share(two_cpu, two_s)}; load average after: {load_average()}")
        else:
            print("2 workers: PostgreSQL only (SQLite has one writer)")
        with runtime.db.unit_of_work() as session:
            per_row = Counter(session.scalars(select(OutboxMessage.followup_id)))
            statuses = Counter(session.scalars(select(FollowUp.status).where(FollowUp.occurrence == 1)))
            upcoming = session.scalar(select(func.count()).select_from(FollowUp).where(FollowUp.occurrence == 2))
        twice = sum(1 for count in per_row.values() if count > 1)
        print(f"check: {len(per_row)} invitations, {twice} rows invited twice, statuses {dict(statuses)}, "
              f"{upcoming} next occurrences scheduled")
        print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        runtime.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
