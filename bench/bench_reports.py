"""Import of checkup results through the real command line: rows/s and peak memory, .xlsx and HL7.

Enrols ``--patients`` synthetic patients (``careloop import patients``), writes ``--rows`` synthetic
results (17 indicators per report, one report per patient and year, lipids and glucose in mg/dL in
every third report) as the results template (.xlsx, Chinese headers, openpyxl write-only) and as
HL7 v2 ORU^R01 messages, then runs ``careloop import reports FILE`` as a subprocess of
``.venv/bin/careloop`` against a scratch database, once per size in ``--sizes``, and reports for
each: wall time, CPU time of the importing process (user + system; the machine may be shared),
rows/s on both, and that process's peak resident memory (``ru_maxrss``). Then it checks the
database: one observation per row, one checkup report and one ``report.import`` audit entry per
report. Target: over 5,000 rows/s, and memory flat (the peak at the largest size close to the
peak at the smallest).

    .venv/bin/python -m bench.bench_reports                       # 100k and 1M rows, .xlsx and HL7
    .venv/bin/python -m bench.bench_reports --sizes 20000 --formats hl7
    .venv/bin/python -m bench.bench_reports --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

from openpyxl import Workbook
from sqlalchemy import text

from bench.common import machine, scratch_database, synthetic_patients
from care.imports.report_formats.tabular import RESULT_TEMPLATE
from careloop.db import make_engine

TARGET_ROWS_PER_SECOND = 5_000
CARELOOP = Path(sys.executable).with_name("careloop")

#: (short code, canonical LOINC, mass-unit LOINC or None, canonical unit, mean, spread, mg/dL factor or None)
INDICATORS = (
    ("sbp", "8480-6", None, "mmHg", 130.0, 15.0, None),
    ("dbp", "8462-4", None, "mmHg", 82.0, 9.0, None),
    ("height", "8302-2", None, "cm", 165.0, 8.0, None),
    ("weight", "29463-7", None, "kg", 66.0, 10.0, None),
    ("bmi", "39156-5", None, "kg/m2", 24.0, 3.0, None),
    ("waist", "8280-0", None, "cm", 84.0, 9.0, None),
    ("fpg", "14771-0", "1558-6", "mmol/L", 5.6, 0.7, 18.0),
    ("hba1c", "4548-4", None, "%", 5.8, 0.6, None),
    ("tc", "14647-2", "2093-3", "mmol/L", 5.0, 0.7, 38.67),
    ("ldl", "22748-8", "13457-7", "mmol/L", 3.0, 0.6, 38.67),
    ("hdl", "14646-4", "2085-9", "mmol/L", 1.3, 0.25, 38.67),
    ("tg", "14927-8", "2571-8", "mmol/L", 1.6, 0.5, 88.57),
    ("ua", "14933-6", "3084-1", "µmol/L", 360.0, 60.0, None),
    ("alt", "1742-6", None, "U/L", 28.0, 8.0, None),
    ("ast", "1920-8", None, "U/L", 25.0, 6.0, None),
    ("cr", "14682-9", None, "µmol/L", 75.0, 12.0, None),
    ("egfr", "98979-8", None, "mL/min/1.73m2", 92.0, 10.0, None),
)
PER_REPORT = len(INDICATORS)


@dataclass(frozen=True)
class Result:
    card: str
    report_id: str
    day: str
    code: str
    loinc: str
    value: float
    unit: str


def results(rows: int, patients: Sequence[str], seed: int = 5) -> Iterator[Result]:
    """``rows`` synthetic results, report by report (17 each; the last one may be shorter)."""
    rng = random.Random(seed)
    report = 0
    produced = 0
    while produced < rows:
        card = patients[report % len(patients)]
        year = 2015 + (report // len(patients)) % 11
        day = f"{year}-{1 + report % 12:02d}-{1 + report % 28:02d}"
        mass = report % 3 == 0
        drawn: dict[str, float] = {}
        for code, loinc, mass_loinc, unit, mean, spread, factor in INDICATORS:
            if produced >= rows:
                break
            value = max(mean + rng.gauss(0, spread), mean * 0.5)
            # One person's report: diastolic below systolic, HDL-C and LDL-C below total cholesterol.
            if code == "dbp" and "sbp" in drawn:
                value = min(value, drawn["sbp"] - 20)
            elif code in ("ldl", "hdl") and "tc" in drawn:
                value = min(value, drawn["tc"] * (0.8 if code == "ldl" else 0.5))
            drawn[code] = value
            if mass and factor is not None and mass_loinc is not None:
                yield Result(card, f"BR{report:08d}", day, code, mass_loinc, round(value * factor, 1), "mg/dL")
            else:
                yield Result(card, f"BR{report:08d}", day, code, loinc, round(value, 2), unit)
            produced += 1
        report += 1


def reports_in(rows: int) -> int:
    return -(-rows // PER_REPORT)


def write_xlsx(path: Path, rows: int, patients: Sequence[str]) -> None:
    """The results template with Chinese headers, streamed (write-only mode)."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("结果")
    sheet.append([column.chinese for column in RESULT_TEMPLATE.columns])
    for result in results(rows, patients):
        sheet.append([result.card, result.report_id, result.day, result.code, result.value, result.unit])
    workbook.save(path)


def write_hl7(path: Path, rows: int, patients: Sequence[str]) -> None:
    """One ORU^R01 message per report, one segment a line."""
    with path.open("w", encoding="utf-8", newline="") as out:
        current = None
        number = 0
        for result in results(rows, patients):
            if result.report_id != current:
                current = result.report_id
                stamp = result.day.replace("-", "") + "0830"
                out.write(f"MSH|^~\\&|LIS|CENTRE|CARELOOP|CLINIC|{stamp}+0800||ORU^R01|M{result.report_id}|P|2.5.1\r\n")
                out.write(f"PID|1||{result.card}^^^CLINIC^MR||测试^患者\r\n")
                out.write(f"OBR|1|P{result.report_id}|{result.report_id}^LIS|CHECKUP|||{stamp}\r\n")
                number = 0
            number += 1
            out.write(f"OBX|{number}|NM|{result.loinc}^^LN||{result.value}|{result.unit}|||||F\r\n")


WRITERS = {"xlsx": write_xlsx, "hl7": write_hl7}


def write_patients(path: Path, count: int) -> list[str]:
    cards = []
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["card_no", "name", "gender", "birth_date", "phone"])
        for patient in synthetic_patients(count):
            writer.writerow([patient.card_no, patient.name, patient.gender, patient.birth_date.isoformat(),
                             patient.phone])
            cards.append(patient.card_no)
    return cards


def check_database(url: str, rows: int) -> tuple[int, int, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            observations = connection.execute(text("SELECT count(*) FROM observations")).scalar_one()
            reports = connection.execute(text("SELECT count(*) FROM checkup_reports")).scalar_one()
            audited = connection.execute(
                text("SELECT count(*) FROM audit_log WHERE action = 'report.import'")
            ).scalar_one()
    finally:
        engine.dispose()
    return int(observations), int(reports), int(audited)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="result rows per run")
    parser.add_argument("--formats", nargs="+", choices=sorted(WRITERS), default=["xlsx", "hl7"])
    parser.add_argument("--patients", type=int, default=10_000, help="enrolled patients the reports belong to")
    parser.add_argument("--database-url", default=None,
                        help="sqlite (default: a temporary file) or a PostgreSQL URL (a scratch schema is made there)")
    parser.add_argument("--careloop", type=Path, default=CARELOOP, help=f"the careloop executable ({CARELOOP})")
    args = parser.parse_args(argv)

    print(f"bench_reports: sizes {args.sizes}, formats {args.formats}, {args.patients} patients, "
          f"database {args.database_url or 'sqlite (temporary file)'}")
    for fact in machine(args.database_url):
        print(f"  {fact}")
    print(f"  load average at start: {', '.join(f'{load:.1f}' for load in os.getloadavg())}")
    folder = Path(tempfile.mkdtemp(prefix="careloop-bench-reports-"))
    failed = False
    peaks: dict[str, list[tuple[int, float]]] = {}
    try:
        for fmt in args.formats:
            for size in args.sizes:
                with scratch_database(args.database_url, "reports") as url:
                    env = {key: value for key, value in os.environ.items() if not key.startswith("CARELOOP_")}
                    env.update(CARELOOP_DATABASE_URL=url, CARELOOP_KEY_FILE=str(folder / "master.key"),
                               CARELOOP_BLOB_DIR=str(folder / "blobs"))
                    code, _, _, _, err, _ = run_timed([str(args.careloop), "init"], env)
                    if code != 0:
                        raise SystemExit(f"careloop init failed ({code}): {err.strip()}")
                    cards = write_patients(folder / "patients.csv", args.patients)
                    code, _, _, _, err, _ = run_timed(
                        [str(args.careloop), "import", "patients", str(folder / "patients.csv")], env
                    )
                    if code != 0:
                        raise SystemExit(f"careloop import patients failed ({code}): {err.strip()[:500]}")
                    path = folder / f"results-{size}.{fmt}"
                    started = perf_counter()
                    WRITERS[fmt](path, size, cards)
                    print(f"  {fmt} {size:,} rows: file {path.stat().st_size / 1e6:.1f} MB written in "
                          f"{perf_counter() - started:.1f} s")
                    code, wall, cpu, peak_mb, err, out = run_timed(
                        [str(args.careloop), "import", "reports", str(path)], env
                    )
                    print(f"    exit {code}: {out.strip()}")
                    if err.strip():
                        print("    stderr: " + err.strip()[:1000])
                    by_wall, by_cpu = size / wall, size / cpu
                    met = by_wall > TARGET_ROWS_PER_SECOND
                    print(f"    wall {wall:.1f} s = {by_wall:,.0f} rows/s; CPU {cpu:.1f} s = {by_cpu:,.0f} rows/s "
                          f"per CPU-second; peak RSS {peak_mb:.0f} MB "
                          f"(target > {TARGET_ROWS_PER_SECOND:,} rows/s: {'met' if met else 'NOT met'} on wall time)")
                    peaks.setdefault(fmt, []).append((size, peak_mb))
                    observations, reports, audited = check_database(url, size)
                    expected_reports = reports_in(size)
                    print(f"    database: {observations:,} observations, {reports:,} checkup reports, "
                          f"{audited:,} report.import audit entries")
                    if (observations, reports, audited) != (size, expected_reports, expected_reports):
                        print(f"    MISMATCH: expected {size:,} observations and {expected_reports:,} reports")
                        failed = True
                    failed = failed or code != 0 or not met
                    path.unlink()
        for fmt, points in peaks.items():
            if len(points) > 1:
                (small, small_mb), (large, large_mb) = points[0], points[-1]
                print(f"  {fmt} memory: {small_mb:.0f} MB at {small:,} rows, {large_mb:.0f} MB at {large:,} rows "
                      f"({large / small:.0f}x the rows, {large_mb / small_mb:.2f}x the memory)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


def run_timed(command: list[str], env: dict[str, str]) -> tuple[int, float, float, float, str, str]:
    """Run ``command``; return exit code, wall s, CPU s (user + system), peak RSS MB, stderr, stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = perf_counter() - started
        out.seek(0)
        err.seek(0)
        return (os.waitstatus_to_exitcode(status), wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                err.read().decode(errors="replace"), out.read().decode(errors="replace"))


if __name__ == "__main__":
    raise SystemExit(main())
