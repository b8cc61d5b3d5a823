"""Import of patients from .xlsx through the real command line: wall time and peak memory.

Writes ``--count`` synthetic patients (Chinese headers, openpyxl write-only mode) to a workbook
in a temporary folder, runs ``careloop init`` and then ``careloop import patients FILE`` as
subprocesses of ``.venv/bin/careloop`` against a scratch database, and reports the import's wall
time and the peak resident memory (``ru_maxrss``) of the importing process alone. Targets for
100,000 patients: under 60 s and under 300 MB.

    .venv/bin/python -m bench.bench_import --count 100000
    .venv/bin/python -m bench.bench_import --count 100000 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

from openpyxl import Workbook
from sqlalchemy import func, select, text

from bench.common import machine, scratch_database, synthetic_patients
from care.imports.patients import PATIENT_TEMPLATE
from careloop.db import make_engine

TARGET_SECONDS = 60.0
TARGET_MB = 300.0
CARELOOP = Path(sys.executable).with_name("careloop")


def write_workbook(path: Path, count: int) -> None:
    """Write the patients template, Chinese headers, ``count`` rows, streamed (write-only mode)."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("患者")
    sheet.append([column.chinese for column in PATIENT_TEMPLATE.columns])
    for patient in synthetic_patients(count):
        sheet.append([
            patient.card_no, patient.name, "男" if patient.gender == "M" else "女", patient.birth_date.isoformat(),
            patient.phone, patient.id_number, patient.package, patient.language, patient.wechat_openid,
        ])
    workbook.save(path)


@dataclass
class Measured:
    code: int
    wall_s: float
    cpu_s: float
    peak_mb: float
    out: str
    err: str


def run_measured(command: list[str], env: dict[str, str]) -> Measured:
    """Run ``command``; return its exit code, wall and CPU seconds, its own peak RSS in MB, its output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        # ru_maxrss is in kilobytes on Linux.
        return Measured(process.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                        out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000, help="patients in the workbook (default 100000)")
    parser.add_argument("--database-url", default=None,
                        help="sqlite (default: a temporary file) or a PostgreSQL URL (a scratch schema is made there)")
    parser.add_argument("--reimport", action="store_true",
                        help="import the same file a second time and time that too (everything unchanged)")
    parser.add_argument("--careloop", type=Path, default=CARELOOP, help=f"the careloop executable ({CARELOOP})")
    args = parser.parse_args(argv)

    print(f"bench_import: {args.count} patients from .xlsx, database {args.database_url or 'sqlite (temporary file)'}")
    for fact in machine(args.database_url):
        print(f"  {fact}")
    folder = Path(tempfile.mkdtemp(prefix="careloop-bench-import-"))
    failed = False
    try:
        workbook = folder / "patients.xlsx"
        started = perf_counter()
        write_workbook(workbook, args.count)
        print(f"  workbook: {workbook.stat().st_size / 1e6:.1f} MB written in {perf_counter() - started:.1f} s")
        with scratch_database(args.database_url, "import") as url:
            env = {key: value for key, value in os.environ.items() if not key.startswith("CARELOOP_")}
            env.update(CARELOOP_DATABASE_URL=url, CARELOOP_KEY_FILE=str(folder / "master.key"),
                       CARELOOP_BLOB_DIR=str(folder / "blobs"))
            init = run_measured([str(args.careloop), "init"], env)
            if init.code != 0:
                raise SystemExit(f"careloop init failed ({init.code}): {init.err.strip()}")
            passes = ["first import"] + (["re-import"] if args.reimport else [])
            for label in passes:
                load = os.getloadavg()[0]
                run = run_measured([str(args.careloop), "import", "patients", str(workbook)], env)
                print(f"  {label}: exit {run.code}, {run.out.strip()}")
                if run.err.strip():
                    print("    stderr: " + run.err.strip()[:2000])
                time_ok, memory_ok = run.wall_s < TARGET_SECONDS, run.peak_mb < TARGET_MB
                print(f"  {label}: wall {run.wall_s:.1f} s ({args.count / run.wall_s:,.0f} rows/s), "
                      f"CPU {run.cpu_s:.1f} s, peak RSS {run.peak_mb:.0f} MB, load average before {load:.2f} "
                      f"(targets < {TARGET_SECONDS:.0f} s: {'met' if time_ok else 'NOT met'}, "
                      f"< {TARGET_MB:.0f} MB: {'met' if memory_ok else 'NOT met'})")
                failed = failed or run.code != 0 or (label == "first import" and not (time_ok and memory_ok))
            engine = make_engine(url)
            try:
                with engine.connect() as connection:
                    patients = connection.execute(select(func.count()).select_from(text("patients"))).scalar_one()
                    enrolled = connection.execute(
                        text("SELECT count(*) FROM audit_log WHERE action = 'patient.enroll'")
                    ).scalar_one()
                    keys = connection.execute(select(func.count()).select_from(text("data_keys"))).scalar_one()
            finally:
                engine.dispose()
            print(f"  database: {patients} patients, {keys} data keys, {enrolled} patient.enroll audit entries")
            # init adds the system owner's key (the admin's TOTP secret) to the patients' keys.
            if not (patients == enrolled == args.count and keys >= args.count):
                print("  MISMATCH: every row should have made one patient, one data key and one audit entry")
                failed = True
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
