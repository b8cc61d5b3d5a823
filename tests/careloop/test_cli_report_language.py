"""The printed report reads as a clinician's document in one language (issue 13.8, 13.9).

Made through ``careloop report`` from an imported checkup history plus home blood-pressure readings a
flow recorded, read back with pdfplumber and rendered with pdftoppm.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pdfplumber
import pytest
from matplotlib.image import imread

from care.observations import record_observation
from care.patients import get_patient
from careloop.cli.reports import report_clinic
from careloop.runtime import build_runtime
from careloop.settings import Settings
from security.audit import Actor
from tests.care.imports.samples import csv_bytes
from tests.careloop.test_cli_report import prepare

Cli = Callable[..., tuple[int, str, str]]
ACTOR = Actor("system", "pytest", "tests")
NAME, CARD = "王秀英", "C0001"
CONCLUSION, SIGNER = "血压持续上升，建议低盐饮食并一个月后复查。", "李医生"


@dataclass(frozen=True)
class ClinicSettings(Settings):
    """Settings with the clinic's details in both languages (CONTRACT.md clinic settings)."""

    clinic_name: str = "幸福里健康管理中心"
    clinic_name_en: str = "Xingfuli Health Management Centre"
    clinic_address: str = "上海市徐汇区幸福路1号"
    clinic_address_en: str = "1 Xingfu Road, Xuhui District, Shanghai"
    clinic_phone: str = "021-5555-0100"


def with_clinic(settings: Settings) -> ClinicSettings:
    return ClinicSettings(database_url=settings.database_url, key_file=settings.key_file,
                          blob_dir=settings.blob_dir)


def prepare_mixed(run_cli: Cli, tmp_path: Path, settings: Settings) -> None:
    """The checkup history of test_cli_report, lipids and uric acid just above 420, and home BP readings."""
    prepare(run_cli, tmp_path, settings)
    rows = [[CARD, "L2024", "2024-05-12", code, value, unit]
            for code, value, unit in (("ua", "425", "µmol/L"), ("ldl", "3.4", "mmol/L"), ("tg", "1.7", "mmol/L"))]
    (tmp_path / "lab.csv").write_bytes(csv_bytes(rows))
    assert run_cli("import", "reports", str(tmp_path / "lab.csv"))[0] == 0
    runtime = build_runtime(settings)
    try:
        with runtime.db.unit_of_work() as session:
            patient = get_patient(session, CARD)
            for day in range(1, 15):
                record_observation(session, patient, code="sbp", value=112.0 + day % 3, unit="mmHg",
                                   effective_at=datetime(2024, 9, day, 1, 0, tzinfo=UTC),
                                   source="flow:bp_daily", source_ref=f"conversation-{day}", actor=ACTOR)
    finally:
        runtime.close()


def pages_text(path: Path) -> list[str]:
    with pdfplumber.open(path) as pdf:
        return [page.extract_text() or "" for page in pdf.pages]


def make_report(run_cli: Cli, tmp_path: Path, fresh_settings: Settings, lang: str) -> tuple[Path, list[str]]:
    settings = with_clinic(fresh_settings)
    prepare_mixed(run_cli, tmp_path, settings)
    out = tmp_path / f"report-{lang}.pdf"
    code, _, err = run_cli("report", CARD, "--out", str(out), "--lang", lang, settings=settings)
    assert code == 0, err
    return out, pages_text(out)


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def section(text: str, start: str, end: str) -> list[str]:
    """Return the lines between the line ``start`` and the line ``end``."""
    lines = text.splitlines()
    first = lines.index(start)
    return lines[first + 1 : lines.index(end, first)]


def check_every_page(pages: list[str], *, clinic: str, date_label: str, page: str, contact: tuple[str, ...]) -> None:
    """Every page carries the clinic, patient name, card number, report date, contact lines and page n of m."""
    assert len(pages) >= 2
    dates = set()
    for number, text in enumerate(pages, start=1):
        header = text.splitlines()[0]
        assert header.startswith(clinic), header
        assert NAME in header, header
        assert CARD in header, header
        found = re.search(date_label + r": (\d{4}-\d{2}-\d{2})", header)
        assert found is not None, header
        dates.add(found.group(1))
        footer = text.splitlines()[-1]
        assert footer.endswith(page.format(n=number, total=len(pages))), footer
        for line in contact:
            assert line in footer, footer
    assert len(dates) == 1


def check_no_orphan_last_page(pdf: Path, pages: list[str], tmp_path: Path) -> None:
    """The last page holds more than a footer or a lone line, in text and in ink."""
    body = pages[-1].splitlines()[1:-1]  # without the header and footer lines
    assert len(body) >= 6, body
    subprocess.run(["pdftoppm", "-png", "-r", "30", str(pdf), str(tmp_path / "page")], check=True,
                   capture_output=True)
    rendered = sorted(tmp_path.glob("page*.png"))
    assert len(rendered) == len(pages)
    ink = []
    for png in rendered:
        pixels = imread(png)[..., :3].mean(axis=2)
        height = pixels.shape[0]
        ink.append(float((pixels[int(height * 0.06) : int(height * 0.94)] < 0.6).mean()))
    assert ink[-1] > 0.2 * max(ink[:-1]), ink


@pytest.fixture
def needs_pdftoppm() -> None:
    assert shutil.which("pdftoppm"), "this test needs pdftoppm: apt-get install -y poppler-utils (.ci/run does)"


#: Latin words a Chinese report may print: units, model and scale names, guideline codes.
ZH_LATIN = {"mmHg", "mmol", "mol", "cm", "kg", "China", "PAR", "Framingham", "FINDRISC", "PCE", "BMI", "HDL",
            "LDL", "OGTT", "WS", "PHQ", "GAD", "KDIGO", "CKD", "EPI", "WHO", "eGFR", "HbA", "Bull", "FC", "Br",
            "Sports", "Med"}


@pytest.mark.usefixtures("needs_pdftoppm")
def test_the_chinese_report_is_all_chinese(run_cli: Cli, tmp_path: Path, fresh_settings: Settings) -> None:
    pdf, pages = make_report(run_cli, tmp_path, fresh_settings, "zh")
    text = "\n".join(pages)
    words = set(re.findall(r"[A-Za-z]{2,}", text))
    assert words <= ZH_LATIN, sorted(words - ZH_LATIN)
    for english in ("Source", "Missing", "missing", "Normal", "Page", "Home", "Checkup", "Xingfu"):
        assert english not in text
    check_every_page(pages, clinic="幸福里健康管理中心", date_label="报告日期", page="第 {n} 页 共 {total} 页",
                     contact=("地址: 上海市徐汇区幸福路1号", "电话: 021-5555-0100"))
    assert "地址: 上海市徐汇区幸福路1号" in pages[0].splitlines()[2]

    results = section(pages[0], "最近检查结果", "历年趋势")
    # Uric acid 425: inside the lab's 208-428 but past the guideline's 420 -> flagged like its category.
    [uric] = [line for line in results if line.startswith("尿酸 ")]
    for part in ("425", "↑ 偏高", "高尿酸血症范围"):
        assert part in uric, uric
    assert "正常" not in uric
    for line in results[1:]:
        assert not (("↑" in line or "↓" in line) and re.search(r"偏[高低] 正常", line)), line
    # The latest systolic value is a home reading, said so; the trend line is the checkups'.
    [systolic] = [line for line in results if line.startswith("收缩压 ")]
    assert systolic.endswith("家庭自测")
    assert all(line.endswith("体检") for line in results[1:] if not line.startswith("收缩压 "))
    assert "收缩压连续4年上升,由128升至146mmHg(趋势依据:体检数据)" in squeeze(text)

    compact = squeeze(text)
    assert "血脂(非HDL胆固醇)4.65mmol/L" in compact
    assert "依据:中国2型糖尿病防治指南(2020年版)" in compact
    assert "缺少:日常运动、每日蔬果" in compact
    check_no_orphan_last_page(pdf, pages, tmp_path)


@pytest.mark.usefixtures("needs_pdftoppm")
def test_the_english_report_is_all_english(run_cli: Cli, tmp_path: Path, fresh_settings: Settings) -> None:
    pdf, pages = make_report(run_cli, tmp_path, fresh_settings, "en")
    text = "\n".join(pages)
    chinese = {char for char in text if "\u3000" <= char <= "\u9fff" or "\uff00" <= char <= "\uffef"}
    # Only the patient's own name and what the clinician wrote and signed stay in Chinese.
    assert chinese <= set(NAME + CONCLUSION + SIGNER), sorted(chinese - set(NAME + CONCLUSION + SIGNER))
    assert chinese & set(NAME)
    check_every_page(pages, clinic="Xingfuli Health Management Centre", date_label="Report date",
                     page="Page {n} of {total}",
                     contact=("Address: 1 Xingfu Road, Xuhui District, Shanghai", "Tel.: 021-5555-0100"))

    results = section(pages[0], "Latest results", "Trends over the years")
    [uric] = [line for line in results if line.startswith("Uric acid ")]
    for part in ("425", "↑ High"):
        assert part in uric, uric
    assert "Normal" not in uric
    [systolic] = [line for line in results if line.startswith("Systolic BP ")]
    assert "Home" in systolic
    assert "Systolic BP rose 4 years in a row, from 128 to 146 mmHg (trend from checkup values)" in text
    assert "Blood lipids (non-HDL cholesterol) 4.65" in text
    assert "Source: Guideline for the prevention and treatment of type 2 diabetes in China (2020)" in text
    assert "Missing: daily physical activity, daily" in text
    check_no_orphan_last_page(pdf, pages, tmp_path)


class _Bare:
    """Settings of a deployment that has set only the Chinese clinic name."""

    clinic_name = "幸福里健康管理中心"


def test_the_clinic_lines_come_from_the_settings_in_each_language(fresh_settings: Settings) -> None:
    clinic = report_clinic(with_clinic(fresh_settings))
    assert clinic.name.zh == "幸福里健康管理中心"
    assert clinic.name.en == "Xingfuli Health Management Centre"
    assert clinic.lines("zh") == ["地址: 上海市徐汇区幸福路1号", "电话: 021-5555-0100"]
    assert clinic.lines("en") == ["Address: 1 Xingfu Road, Xuhui District, Shanghai", "Tel.: 021-5555-0100"]
    # Without English settings the English report never prints the Chinese name or address.
    bare = report_clinic(_Bare())  # type: ignore[arg-type]
    assert bare.name.zh == "幸福里健康管理中心"
    assert bare.name.en == Settings().clinic_name_en
    assert bare.lines("en") == []
    default = report_clinic(fresh_settings)
    assert default.name.en == Settings().clinic_name_en
