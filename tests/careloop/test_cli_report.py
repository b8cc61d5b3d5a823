"""``careloop report PATIENT_REF --out FILE.pdf``: the printed report holds the record, in Chinese or English."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pdfplumber
from matplotlib.image import imread
from sqlalchemy import text

from care import staff
from care.patients import get_patient
from care.profiles import set_profile_field
from care.stage_summaries import create_stage_summary, sign_stage_summary
from careloop.runtime import build_runtime
from careloop.settings import Settings
from security.audit import Actor
from tests.care.imports.samples import csv_bytes

Cli = Callable[..., tuple[int, str, str]]
ACTOR = Actor("system", "pytest", "tests")
PATIENTS = "card_no,name,gender,birth_date,phone,language\nC0001,王秀英,M,1964-05-01,13812345678,zh\n"
YEARS = (2020, 2021, 2022, 2023, 2024)
HISTORY = {
    "sbp": ("128", "133", "138", "142", "146"), "dbp": ("80", "84", "79", "86", "82"),
    "tc": ("5.1", "5.2", "5.4", "5.5", "5.6"), "hdl": ("1.40", "1.30", "1.20", "1.08", "0.95"),
    "waist": ("96", "94", "92", "90", "88"), "weight": ("75", "75", "74", "75", "75"),
    "height": ("170", "170", "170", "170", "170"), "fpg": ("5.2", "5.5", "5.8", "6.1", "6.4"),
}
UNITS = {"sbp": "mmHg", "dbp": "mmHg", "tc": "mmol/L", "hdl": "mmol/L", "waist": "cm", "weight": "kg",
         "height": "cm", "fpg": "mmol/L"}


def prepare(run_cli: Cli, tmp_path: Path, settings: Settings) -> None:
    assert run_cli("init")[0] == 0
    (tmp_path / "patients.csv").write_text(PATIENTS, encoding="utf-8")
    assert run_cli("import", "patients", str(tmp_path / "patients.csv"))[0] == 0
    rows = [["C0001", f"Y{year}", f"{year}-05-12", code, value, UNITS[code]]
            for code, values in HISTORY.items() for year, value in zip(YEARS, values, strict=True)]
    (tmp_path / "history.csv").write_bytes(csv_bytes(rows))
    assert run_cli("import", "reports", str(tmp_path / "history.csv"))[0] == 0
    runtime = build_runtime(settings)
    try:
        with runtime.db.unit_of_work() as session:
            patient = get_patient(session, "C0001")
            for name, value in (("bp_treated", False), ("smoker", True), ("diabetes", False),
                                ("region_north", True), ("urban", True), ("family_history_ascvd", False)):
                set_profile_field(session, patient, name, value, actor=ACTOR)
            doctor = staff.create_user(session, email="doctor@clinic.test", display_name="李医生",
                                       role_name="doctor", actor=ACTOR).user
            summary = create_stage_summary(session, patient, period_start=date(2023, 1, 1),
                                           period_end=date(2024, 12, 31), actor=ACTOR,
                                           conclusion="血压持续上升，建议低盐饮食并一个月后复查。")
            session.flush()
            sign_stage_summary(session, summary, signer=doctor, actor=ACTOR)
    finally:
        runtime.close()


def pdf_text(path: Path) -> str:
    with pdfplumber.open(path) as pdf:
        return "\n".join(page.extract_text() or "" for page in pdf.pages)


def test_the_report_prints_the_record_in_chinese(
    run_cli: Cli, tmp_path: Path, fresh_settings: Settings
) -> None:
    assert shutil.which("pdftoppm"), "this test needs pdftoppm: apt-get install -y poppler-utils (.ci/run does)"
    prepare(run_cli, tmp_path, fresh_settings)
    out = tmp_path / "report.pdf"
    code, stdout, err = run_cli("report", "C0001", "--out", str(out))
    assert code == 0, err
    assert "report.pdf" in stdout
    content = pdf_text(out)
    compact = content.replace(" ", "")
    assert "王秀英" in compact
    assert "健康报告" in compact
    assert "收缩压" in compact
    assert "146" in content
    assert "↑偏高" in compact
    assert "1级高血压" in compact
    assert "收缩压连续4年上升,由128升至146mmHg" in compact
    assert "疾病风险评估" in compact
    assert "10年心血管病风险" in compact or "China-PAR" in content
    assert "体重指数(BMI)" in compact
    assert "血压持续上升，建议低盐饮食并一个月后复查。" in compact
    assert "李医生" in compact

    subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(out), str(tmp_path / "page")],
                   check=True, capture_output=True)
    [png] = list(tmp_path.glob("page*.png"))
    pixels = imread(png)
    dark = (pixels[..., :3].mean(axis=2) < 0.6).mean()
    assert dark > 0.01  # text, tables and charts, not a blank page

    engine_url = fresh_settings.database_url
    from careloop.db import make_engine

    engine = make_engine(engine_url)
    try:
        with engine.connect() as connection:
            printed = connection.execute(text("SELECT count(*) FROM audit_log WHERE action = 'report.print'"))
            assert printed.scalar_one() == 1
    finally:
        engine.dispose()


def test_the_report_in_english(run_cli: Cli, tmp_path: Path, fresh_settings: Settings) -> None:
    prepare(run_cli, tmp_path, fresh_settings)
    out = tmp_path / "report-en.pdf"
    assert run_cli("report", "C0001", "--out", str(out), "--lang", "en")[0] == 0
    content = pdf_text(out)
    assert "Health report" in content
    assert "Systolic BP" in content
    assert "Risk assessment" in content
    assert "王秀英" in content.replace(" ", "")


def test_an_unknown_patient_is_one_line_and_exit_1(run_cli: Cli, tmp_path: Path) -> None:
    assert run_cli("init")[0] == 0
    code, _, err = run_cli("report", "NOSUCH", "--out", str(tmp_path / "x.pdf"))
    assert code == 1
    assert err.strip() == "error: no patient has this card number or id"
    assert not (tmp_path / "x.pdf").exists()
