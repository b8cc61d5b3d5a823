"""Lookup by phone among many patients: ``care.patients.find_by_phone`` through its blind index.

Enrols ``--count`` synthetic patients into a scratch database (the import's bulk path, committed
per batch), then, from a new ``Database`` (cold key cache, as a fresh web worker would have),
looks up ``--lookups`` random enrolled phones, each in its own session as a request would, typed
the ways people type them ("139 1234 5678", "+86 139...", "13912345678"), plus some numbers that
are not enrolled. Prints median, p95 and p99 of ``find_by_phone`` alone and of lookup + decrypting
the name found. Target for 100,000 patients: median under 5 ms, on SQLite and on PostgreSQL.

    .venv/bin/python -m bench.bench_lookup --count 100000
    .venv/bin/python -m bench.bench_lookup --count 100000 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Sequence
from time import perf_counter

from sqlalchemy import text

from bench.common import is_postgresql, machine, percentile, scratch_database, summary_ms, synthetic_patients
from care.patients import enroll_many, find_by_phone
from careloop import migrate
from careloop.db import Database, make_engine
from security.audit import Actor
from security.clock import SystemClock
from security.keys import KeyRing

ACTOR = Actor("system", "bench", "bench")
TARGET_MS = 5.0
WARM_UP = 50


def typed(phone: str, rng: random.Random) -> str:
    """An 11-digit mainland mobile number as someone might type it."""
    return rng.choice([phone, f"{phone[:3]} {phone[3:7]} {phone[7:]}", f"+86 {phone}", f"+86-{phone[:3]}-{phone[3:]}"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000, help="patients enrolled (default 100000)")
    parser.add_argument("--database-url", default=None,
                        help="sqlite (default: a temporary file) or a PostgreSQL URL (a scratch schema is made there)")
    parser.add_argument("--lookups", type=int, default=2000, help="timed lookups (default 2000)")
    parser.add_argument("--batch", type=int, default=1000, help="patients per committed batch when enrolling")
    args = parser.parse_args(argv)

    print(f"bench_lookup: {args.count} patients, {args.lookups} lookups, "
          f"database {args.database_url or 'sqlite (temporary file)'}")
    for fact in machine(args.database_url):
        print(f"  {fact}")
    patients = list(synthetic_patients(args.count))
    with scratch_database(args.database_url, "lookup") as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            key_ring = KeyRing.generate()
            writer = Database(engine, key_ring=key_ring, clock=SystemClock())
            started = perf_counter()
            for start in range(0, len(patients), args.batch):
                with writer.unit_of_work() as session:
                    results = enroll_many(session, [p.request() for p in patients[start : start + args.batch]],
                                          actor=ACTOR)
                    refused = [r for r in results if r.outcome is None]
                    if refused:
                        raise SystemExit(f"enrolment refused a synthetic patient: {refused[0].problems}")
            print(f"  enrolled {args.count} patients in {perf_counter() - started:.1f} s")
            if is_postgresql(url):
                with engine.begin() as connection:
                    connection.execute(text("ANALYZE"))

            reader = Database(engine, key_ring=key_ring, clock=SystemClock())  # cold key cache
            rng = random.Random(5)
            find_s: list[float] = []
            read_s: list[float] = []
            miss_s: list[float] = []
            for index in range(WARM_UP + args.lookups):
                patient = rng.choice(patients)
                phone = typed(patient.phone, rng)
                with reader.sessions() as session:
                    started = perf_counter()
                    found = find_by_phone(session, phone)
                    middle = perf_counter()
                    name = found[0].name if found else None
                    ended = perf_counter()
                if name != patient.name or len(found) != 1:
                    raise SystemExit(f"lookup {index}: found {len(found)} patients, not the one enrolled")
                if index >= WARM_UP:
                    find_s.append(middle - started)
                    read_s.append(ended - started)
                if index % 10 == 0:
                    # A number that is not enrolled (a mobile prefix no synthetic patient has).
                    with reader.sessions() as session:
                        started = perf_counter()
                        missing = find_by_phone(session, f"166{rng.randrange(10**8):08d}")
                        if index >= WARM_UP:
                            miss_s.append(perf_counter() - started)
                    if missing:
                        raise SystemExit("a number that was never enrolled was found")
        finally:
            engine.dispose()

    median_ms = statistics.median(find_s) * 1000
    print(f"find_by_phone (hit):          {summary_ms(find_s)}")
    print(f"find_by_phone + decrypt name: {summary_ms(read_s)}")
    print(f"find_by_phone (not enrolled): {summary_ms(miss_s)}")
    verdict = "met" if median_ms < TARGET_MS else "NOT met"
    print(f"median {median_ms:.3f} ms, p95 {percentile(find_s, 0.95) * 1000:.3f} ms "
          f"(target: median < {TARGET_MS:.0f} ms: {verdict})")
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    raise SystemExit(main())
