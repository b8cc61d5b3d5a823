"""Backups at scale: time and memory of ``backup create``, ``verify`` and ``restore`` (SQLite -> SQLite or
PostgreSQL -> SQLite).

Seeds the demo clinic, then ``--rows`` synthetic rows in one table (erasure records: a uuid, a timestamp
and text, as most of the record's rows are), then times the three steps once each and reads the peak
Python heap of create and verify (tracemalloc): it stays the size of one part, whatever ``--rows``.

    .venv/bin/python -m bench.bench_backup --rows 20000
    .venv/bin/python -m bench.bench_backup --rows 200000 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import tracemalloc
import uuid
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

from sqlalchemy import Table, insert

from bench.common import machine, scratch_database
from care.models import Erasure
from careloop.backups import create_backup, verify_backup
from careloop.cli import run
from careloop.db import make_engine
from careloop.settings import Settings
from security.keys import KeyRing

ERASURES: Table = Erasure.__table__  # type: ignore[assignment]


def synthetic_rows(count: int, now: datetime) -> list[dict[str, Any]]:
    return [{"id": uuid.uuid4(), "patient_id": uuid.uuid4(), "reason": "synthetic row of the backup benchmark",
             "erased_at": now, "erased_by": "bench"} for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--database-url", default=None, help="the source engine (default: SQLite)")
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="careloop-bench-backup-"))
    try:
        measure(arguments.rows, arguments.database_url, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(rows: int, database_url: str | None, folder: Path) -> None:
    with scratch_database(database_url, "backup") as url:
        settings = Settings(database_url=url, key_file=folder / "keys" / "master.key", blob_dir=folder / "blobs")
        if run(["demo", "--no-serve"], settings=settings) != 0:
            raise SystemExit("demo clinic not seeded")
        engine = make_engine(url)
        now = datetime.now(UTC)
        with engine.begin() as connection:
            for start in range(0, rows, 5000):
                connection.execute(insert(ERASURES), synthetic_rows(min(5000, rows - start), now))
        key_ring = KeyRing.load(settings.key_file)
        out = folder / "bench.backup"
        tracemalloc.start()
        started = perf_counter()
        summary = create_backup(engine, key_ring, settings.blob_dir, out, now=now)
        created = perf_counter() - started
        peak_create = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        started = perf_counter()
        verify_backup(out, key_ring)
        verified = perf_counter() - started
        peak_verify = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        engine.dispose()
        target = settings.with_overrides(database_url=f"sqlite:///{folder / 'restored.db'}",
                                         blob_dir=folder / "restored-blobs")
        started = perf_counter()
        if run(["backup", "restore", str(out)], settings=target) != 0:
            raise SystemExit("restore failed")
        restored = perf_counter() - started
    for line in machine(database_url):
        print(f"- {line}")
    print(f"- {summary.rows:,} rows in {summary.tables} tables -> backup of {summary.size / 1e6:.1f} MB")
    print(f"- create {created:.1f} s ({summary.rows / created:,.0f} rows/s), "
          f"peak Python heap {peak_create / 1e6:.1f} MB")
    print(f"- verify {verified:.1f} s ({summary.rows / verified:,.0f} rows/s), "
          f"peak Python heap {peak_verify / 1e6:.1f} MB")
    print(f"- restore into SQLite (verify + insert + ledger) {restored:.1f} s")


if __name__ == "__main__":
    main()
