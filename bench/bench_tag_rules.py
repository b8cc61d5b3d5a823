"""A tag rule's bulk evaluation at scale: patients with blood pressure readings, a rule created, its run to the end.

Enrols ``--patients`` synthetic patients (bulk, as the import does) in a scratch database, gives each
``--readings`` blood-pressure readings (systolic and diastolic, encrypted as the record keeps them,
about a third of the patients at or above 140/90 in their newest one), creates the rule
``latest.sbp >= 140 or latest.dbp >= 90`` (``care.tag_rules.add_rule``, which starts its run over every
patient) and runs the worker's ``tag_rule_runs`` job (``care.tag_rules.run_chunk``, one chunk of
patients per transaction, as the worker commits it) until the run is done. Reports the seconds,
patients per second, the resident memory as the run goes (it must stay flat) and its peak, and
checks that exactly the patients the rule holds for were tagged.

Target (issue 16): 100,000 patients in under 60 s, memory flat.

    .venv/bin/python -m bench.bench_tag_rules --patients 2000                 # smoke, SQLite
    .venv/bin/python -m bench.bench_tag_rules --patients 100000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter, process_time

from sqlalchemy import func, select

from bench.common import machine, scratch_database, synthetic_patients
from bot.tag_rules import rule_engine
from care.models import Observation, PatientTag, RunStatus, TagRuleRun
from care.patients import enroll_many
from care.tag_rules import add_rule, run_chunk
from careloop import migrate
from careloop.flow_library import load_flow_library
from careloop.runtime import build_runtime
from careloop.settings import Settings
from security.audit import Actor
from security.clock import FixedClock
from security.fields import insert_new

ACTOR = Actor("system", "bench", "bench")
TARGET_SECONDS = 60.0
#: The target as a rate: 100,000 patients in 60 s.
TARGET_PER_SECOND = 100_000 / TARGET_SECONDS
EXPRESSION = "latest.sbp >= 140 or latest.dbp >= 90"
TAG = "高血压"
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def rss_mb() -> float:
    """The resident memory of this process now (``/proc/self/statm``), in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def readings_of(patient_id: uuid.UUID, rng: random.Random, count: int) -> tuple[list[dict[str, object]], bool]:
    """``count`` systolic/diastolic pairs a month apart, newest last; and whether the newest is 140/90 or more."""
    rows: list[dict[str, object]] = []
    high = False
    for index in range(count):
        sbp, dbp = rng.randrange(100, 155), rng.randrange(60, 95)
        taken = NOW - timedelta(days=30 * (count - index))
        for code, value in (("sbp", sbp), ("dbp", dbp)):
            rows.append({"id": uuid.uuid4(), "patient_id": patient_id, "code": code, "value": float(value),
                         "value_text": None, "unit": "mmHg", "effective_at": taken, "source": "bench",
                         "source_ref": None, "recorded_at": taken, "recognised": True})
        high = sbp >= 140 or dbp >= 90
    return rows, high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--readings", type=int, default=2, help="blood-pressure readings per patient")
    parser.add_argument("--chunk", type=int, default=None, help="patients per transaction (default: the job's)")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print("\n".join(machine(args.database_url)))
    with scratch_database(args.database_url, "tagrules") as url:
        folder = Path(tempfile.mkdtemp(prefix="careloop-bench-tagrules-"))
        settings = Settings(database_url=url, key_file=folder / "master.key", blob_dir=folder / "blobs")
        runtime = build_runtime(settings, clock=FixedClock(NOW), create_key=True)
        migrate.upgrade(runtime.db.engine)
        engine = rule_engine(load_flow_library(settings))
        rng = random.Random(140)
        expected = 0
        started = perf_counter()
        people = list(synthetic_patients(args.patients))
        for start in range(0, len(people), 1000):
            with runtime.db.unit_of_work() as session:
                batch = enroll_many(session, [person.request() for person in people[start:start + 1000]],
                                    actor=ACTOR)
                records: list[dict[str, object]] = []
                for row in batch:
                    if row.patient_id is None:
                        continue
                    readings, high = readings_of(row.patient_id, rng, args.readings)
                    records += readings
                    expected += high
                insert_new(session, Observation, records, [record["patient_id"] for record in records])
        del people
        print(f"patients: {args.patients} enrolled with {args.readings * 2} readings each in "
              f"{perf_counter() - started:.1f} s; the rule holds for {expected}")
        with runtime.db.unit_of_work() as session:
            add_rule(session, engine, "高血压筛查", tag=TAG, expression=EXPRESSION, actor=ACTOR)
        print(f"load average before the run: {load_average()}")
        chunk = {"chunk": args.chunk} if args.chunk else {}
        memory = [rss_mb()]
        chunks = 0
        started, cpu_started = perf_counter(), process_time()
        while True:
            with runtime.db.unit_of_work() as session:
                evaluated = run_chunk(session, engine, **chunk)
            if not evaluated:
                break
            chunks += 1
            if chunks % 50 == 0:
                memory.append(rss_mb())
        seconds, cpu = perf_counter() - started, process_time() - cpu_started
        memory.append(rss_mb())
        with runtime.db.unit_of_work() as session:
            run = session.scalars(select(TagRuleRun)).one()
            tagged = session.scalar(select(func.count()).select_from(PatientTag))
        rate = run.done / seconds if seconds else 0.0
        print(f"bulk evaluation: {run.done} patients in {seconds:.1f} s = {rate:,.0f} patients/s "
              f"(target 100,000 in < {TARGET_SECONDS:.0f} s, {TARGET_PER_SECOND:,.0f}/s: "
              f"{'met' if rate > TARGET_PER_SECOND else 'NOT met'}); "
              f"CPU {cpu:.1f} s ({cpu / seconds:.0%} of the wall time; the rest: the database, or waiting for a core); "
              f"load average after: {load_average()}")
        print(f"check: run {run.status}, {run.tagged} tagged ({tagged} tag rows), {run.failed} failed; "
              f"expected {expected}: {'ok' if run.status == RunStatus.DONE.value and tagged == expected else 'WRONG'}")
        step = max(1, len(memory) // 8)
        print("memory during the run (MB, every 50 chunks): "
              + ", ".join(f"{value:.0f}" for value in memory[::step]) + f" ... {memory[-1]:.0f}")
        print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        runtime.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
