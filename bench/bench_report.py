"""Health-report generation per patient with 5 years of history (target: under 1 s per report).

For each synthetic patient (5 yearly check-ups of the 17 indicators plus quarterly blood pressure,
so 20 BP readings): the trends of every indicator, 12 risk models, advice, the stage summary of the
last year, the PDF-sized trend charts and the A4 PDF, in the patient's language (1 in 10 English).
Every patient has a different name, so the embedded font subset is rebuilt for each report as in
production. The first report (cold caches: fonts, matplotlib) is reported on its own.

    .venv/bin/python bench/bench_report.py --patients 30
    .venv/bin/python bench/bench_report.py --patients 30 --write    # also updates bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from time import perf_counter, process_time

from care.clinical.advice import AdviceFacts, LifestyleAnswers, advise
from care.clinical.common import Lang
from care.clinical.report_pdf import (
    PatientDetails,
    ReportClinic,
    ReportData,
    ResultRow,
    SignedConclusion,
    chart_images,
    render_report,
)
from care.clinical.risk import RiskResult, evaluate
from care.clinical.summary import Goal, StageSummaryInput, compute_stage_summary
from care.clinical.trends import analyse_all

TARGET_SECONDS = 1.0
RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Clinical report"
CHART_CODES = ("sbp", "dbp", "bmi", "fpg", "ldl", "ua")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = "伟芳娜英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉志海燕国庆淑珍文博晓红建"
YEARS = range(2020, 2025)

#: code -> (starting value, yearly drift, noise): a plausible random walk for each indicator.
WALKS: dict[str, tuple[float, float, float]] = {
    "height": (168.0, 0.0, 0.3),
    "weight": (72.0, 0.8, 1.2),
    "waist": (86.0, 0.8, 1.5),
    "fpg": (5.4, 0.15, 0.2),
    "hba1c": (5.6, 0.08, 0.1),
    "tc": (5.0, 0.1, 0.25),
    "ldl": (3.0, 0.1, 0.2),
    "hdl": (1.3, -0.03, 0.06),
    "tg": (1.6, 0.08, 0.25),
    "ua": (380.0, 8.0, 20.0),
    "alt": (28.0, 0.5, 5.0),
    "ast": (24.0, 0.3, 4.0),
    "cr": (78.0, 1.5, 5.0),
}


@dataclass(frozen=True)
class Patient:
    """A synthetic patient: details and 5 years of results (canonical units)."""

    name: str
    sex: str
    age: int
    language: Lang
    series: dict[str, list[tuple[date, float]]]


def synthetic_patient(index: int, rng: random.Random) -> Patient:
    """Return patient ``index`` with yearly check-ups and quarterly blood pressure."""
    sex = "male" if index % 2 == 0 else "female"
    series: dict[str, list[tuple[date, float]]] = {}
    for code, (start, drift, noise) in WALKS.items():
        value = start * rng.uniform(0.9, 1.1)
        points = []
        for year in YEARS:
            points.append((date(year, 5, 10), round(value + rng.gauss(0, noise), 2)))
            value += drift
        series[code] = points
    sbp, dbp = rng.uniform(118, 132), rng.uniform(74, 84)
    series["sbp"], series["dbp"] = [], []
    for year in YEARS:
        for month in (2, 5, 8, 11):
            series["sbp"].append((date(year, month, 15), round(sbp + rng.gauss(0, 4))))
            series["dbp"].append((date(year, month, 15), round(dbp + rng.gauss(0, 3))))
            sbp += 0.8
            dbp += 0.3
    heights = dict(series["height"])
    series["bmi"] = [(when, round(weight / (heights[when] / 100) ** 2, 1)) for when, weight in series["weight"]]
    series["egfr"] = [(when, round(max(15.0, 95 - (cr - 70) * 0.6), 1)) for when, cr in series["cr"]]
    name = SURNAMES[index % len(SURNAMES)] + GIVEN[(index * 7) % len(GIVEN)] + GIVEN[(index * 13 + 5) % len(GIVEN)]
    return Patient(name, sex, 45 + index % 30, "en" if index % 10 == 9 else "zh", series)


def latest(patient: Patient, code: str) -> float:
    return patient.series[code][-1][1]


def risks(patient: Patient) -> list[RiskResult]:
    """The 12 models a check-up gives inputs for."""
    sex, age = patient.sex, patient.age
    shared = {
        "sex": sex, "age": age, "sbp": latest(patient, "sbp"), "tc": latest(patient, "tc"),
        "hdl": latest(patient, "hdl"), "bp_treated": False, "smoker": age % 3 == 0, "diabetes": False,
    }  # fmt: skip
    return [
        evaluate("china-par", {**shared, "waist": latest(patient, "waist"), "region_north": True, "urban": True,
                               "family_history_ascvd": False}),  # fmt: skip
        evaluate("framingham", shared),
        evaluate("bp", {"sbp": latest(patient, "sbp"), "dbp": latest(patient, "dbp")}),
        evaluate("bmi", {"bmi": latest(patient, "bmi")}),
        evaluate("waist", {"sex": sex, "waist": latest(patient, "waist")}),
        evaluate("fpg", {"fpg": latest(patient, "fpg"), "hba1c": latest(patient, "hba1c")}),
        evaluate("lipids", {code: latest(patient, code) for code in ("tc", "ldl", "hdl", "tg")}),
        evaluate("uric-acid", {"uric_acid": latest(patient, "ua")}),
        evaluate("egfr", {"sex": sex, "age": age, "creatinine": latest(patient, "cr")}),
        evaluate("cdrs", {"sex": sex, "age": age, "bmi": latest(patient, "bmi"), "waist": latest(patient, "waist"),
                          "sbp": latest(patient, "sbp"), "family_history_diabetes": "none"}),  # fmt: skip
        evaluate("phq9", {"items": [1, 0, 1, 1, 0, 0, 1, 0, 0]}),
        evaluate("gad7", {"items": [1, 1, 0, 0, 1, 0, 0]}),
    ]


def report(patient: Patient, stages: dict[str, list[float]]) -> bytes:
    """Build and render one report, adding each stage's time to ``stages``."""
    clock = perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = perf_counter()
        stages.setdefault(stage, []).append(now - clock)
        clock = now

    trends = analyse_all(patient.series, sex=patient.sex, age=patient.age)
    lap("trends")
    results = risks(patient)
    answers = LifestyleAnswers(moderate_minutes_per_week=90, vigorous_minutes_per_week=10, salt_g_per_day=8,
                               age=patient.age, smoker=patient.age % 3 == 0)  # fmt: skip
    advice = advise(AdviceFacts.from_results(results, answers))
    summary = compute_stage_summary(
        StageSummaryInput(date(2023, 5, 10), date(2024, 5, 10), series=patient.series,
                          goals=[Goal("g1", "sbp", "<", 140), Goal("g2", "bmi", "between", 18.5, 23.9)],
                          risks=[(date(2024, 5, 10), result) for result in results], followups_sent=12,
                          followups_answered=9, sex=patient.sex, age=patient.age)
    )  # fmt: skip
    lap("risks, advice, summary")
    charts = chart_images([trend for trend in trends if trend.code in CHART_CODES], patient.language)
    lap("charts")
    data = ReportData(
        clinic=ReportClinic.named("幸福里健康管理中心"),
        patient=PatientDetails(patient.name, patient.sex, patient.age, "BENCH0001"),  # type: ignore[arg-type]
        language=patient.language,
        generated_on=date(2024, 5, 20),
        results=[ResultRow.from_trend(trend) for trend in trends],
        charts=charts,
        trend_lines=[trend.text for trend in trends if trend.code in CHART_CODES],
        risks=results,
        advice=advice.lines,
        summary=summary,
        conclusion=SignedConclusion("血压逐年上升，请坚持低盐饮食并按时复查。", "李医生", date(2024, 5, 20)),
    )
    pdf = render_report(data)
    lap("pdf")
    return pdf


def machine() -> list[str]:
    """Facts about this machine worth writing beside a figure."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return [
        f"nproc: {os.cpu_count()}",
        f"CPU: {cpu}",
        f"Python: {platform.python_version()} ({platform.python_implementation()})",
        f"load average at start (1, 5, 15 min): {load}",
    ]


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank quantile."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))]


def write_section(lines: list[str]) -> None:
    """Replace (or add) this benchmark's section of bench/RESULTS.md, keeping the others'."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    start = text.find(SECTION)
    if start != -1:
        following = text.find("\n## ", start + len(SECTION))
        text = text[:start].rstrip("\n") + ("\n" + text[following:] if following != -1 else "")
    RESULTS.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=30, help="reports to generate (default 30)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--write", action="store_true", help="update the section in bench/RESULTS.md")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    patients = [synthetic_patient(index, rng) for index in range(args.patients + 1)]

    facts = machine()  # before the run: the load average is the other processes'
    stages: dict[str, list[float]] = {}
    started = perf_counter()
    first_pdf = report(patients[0], {})
    cold = perf_counter() - started
    totals: list[float] = []
    cpu: list[float] = []
    sizes: list[int] = [len(first_pdf)]
    for patient in patients[1:]:
        started, cpu_started = perf_counter(), process_time()
        sizes.append(len(report(patient, stages)))
        totals.append(perf_counter() - started)
        cpu.append(process_time() - cpu_started)

    points = sum(len(series) for series in patients[1].series.values())
    command = "python bench/bench_report.py --patients " + str(args.patients)
    wall_ok = percentile(totals, 0.95) < TARGET_SECONDS
    cpu_ok = percentile(cpu, 0.95) < TARGET_SECONDS

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = [
        SECTION,
        "",
        f"Command: `.venv/bin/{command}`",
        "",
        *(f"- {fact}" for fact in facts),
        "",
        f"Per report ({len(totals)} patients, each with 5 years of history: {points} results over 17 indicators, "
        f"{len(CHART_CODES)} charts, 12 risk models, advice, stage summary; different names, so a new font subset "
        f"each time). Target < {TARGET_SECONDS * 1000:.0f} ms per report:",
        "",
        f"- CPU time of this process (what one core does, whatever else runs on the machine): median "
        f"{statistics.median(cpu) * 1000:.0f} ms, p95 {percentile(cpu, 0.95) * 1000:.0f} ms - {verdict(cpu_ok)}",
        f"- wall time: median {statistics.median(totals) * 1000:.0f} ms, p95 {percentile(totals, 0.95) * 1000:.0f} "
        f"ms, max {max(totals) * 1000:.0f} ms - {verdict(wall_ok)} at the load average above",
        f"- first report in a fresh process (cold caches: 16 MB font read, glyph conversion): {cold * 1000:.0f} ms",
        *(f"- {stage}: median {statistics.median(times) * 1000:.0f} ms (wall)" for stage, times in stages.items()),
        f"- PDF size: median {statistics.median(sizes) / 1024:.0f} KiB",
    ]
    print("\n".join(lines))
    if args.write:
        write_section(lines)
    return 0 if cpu_ok else 1


if __name__ == "__main__":
    sys.exit(main())
