"""The printable A4 report: Chinese text extractable, results and risk lines present, page not blank."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pdfplumber
import pypdfium2
import pytest
from PIL import Image
from reportlab.pdfbase import pdfmetrics

from care.clinical import report_pdf
from care.clinical.advice import AdviceFacts, LifestyleAnswers, advise
from care.clinical.report_pdf import (
    PatientDetails,
    ReportClinic,
    ReportData,
    ResultRow,
    SignedConclusion,
    chart_images,
    layout,
    render_report,
)
from care.clinical.risk import evaluate
from care.clinical.summary import Goal, StageSummaryInput, compute_stage_summary
from care.clinical.trends import analyse_all
from tests.care.clinical.history import history

CHINA_PAR = {
    "sex": "male", "age": 62, "sbp": 146, "bp_treated": False, "tc": 5.6, "hdl": 0.95, "waist": 88, "smoker": True,
    "diabetes": False, "region_north": True, "urban": True, "family_history_ascvd": False,
}  # fmt: skip


def report_data(lang: str = "zh", name: str = "张伟") -> ReportData:
    trends = analyse_all(history(), sex="male", age=62)
    risks = [
        evaluate("china-par", CHINA_PAR),
        evaluate("bp", {"sbp": 146, "dbp": 82}),
        evaluate("bmi", {"bmi": 26.0}),
        evaluate("phq9", {"items": [1, 1, 1, 1, 1, 1, 1, 1, 0]}),
        evaluate("uric-acid", {"uric_acid": 440}),
    ]
    advice = advise(AdviceFacts.from_results(risks, LifestyleAnswers(moderate_minutes_per_week=60, smoker=True)))
    summary = compute_stage_summary(
        StageSummaryInput(
            date(2023, 6, 1), date(2024, 6, 1), series=history(), goals=[Goal("g1", "sbp", "<", 140)],
            followups_sent=10, followups_answered=8,
        )
    )  # fmt: skip
    shown = [trend for trend in trends if trend.code in ("sbp", "fpg", "hdl", "ua")]
    return ReportData(
        clinic=ReportClinic.named("幸福里健康管理中心"),
        patient=PatientDetails(name=name, sex="male", age=62, card_no="C20240001"),
        language=lang,  # type: ignore[arg-type]
        generated_on=date(2024, 6, 2),
        results=[ResultRow.from_trend(trend) for trend in trends],
        charts=chart_images(shown, lang),  # type: ignore[arg-type]
        trend_lines=[trend.text for trend in shown],
        risks=risks,
        advice=advice.lines,
        summary=summary,
        conclusion=SignedConclusion("血压持续上升，请按时复查。", "李医生", date(2024, 6, 2)),
    )


def pdf_text(pdf: bytes) -> str:
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        return "\n".join(page.extract_text() or "" for page in document.pages)


def squeeze(text: str) -> str:
    """Remove whitespace: lines wrap anywhere in Chinese text."""
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def chinese_pdf() -> bytes:
    return render_report(report_data("zh"))


@pytest.fixture(scope="module")
def english_pdf() -> bytes:
    return render_report(report_data("en"))


def test_chinese_report_text(chinese_pdf: bytes) -> None:
    data = report_data("zh")
    text = squeeze(pdf_text(chinese_pdf))
    for expected in ("张伟", "幸福里健康管理中心", "健康报告", "C20240001", "最近检查结果", "疾病风险评估", "健康建议"):
        assert expected in text
    # results against their ranges, with flags and categories
    assert "收缩压146mmHg<140↑偏高1级高血压2024-05-12" in text
    assert "高密度脂蛋白胆固醇0.95mmol/L≥1.00↓偏低降低" in text
    assert "尿酸440µmol/L208-428↑偏高高尿酸血症范围" in text
    # risk lines (a long name wraps inside its cell, so check the row's pieces)
    assert "China-PAR10年动脉粥样硬化性心血" in text
    china_par = data.risks[0]
    assert f"{china_par.value}%{china_par.category_label.zh}" in text
    assert "血压分类146mmHg1级高血压单次测量结果" in text
    assert "抑郁症状筛查(PHQ-9)8分轻度" in text
    # trend, advice, summary, conclusion and disclaimer
    assert "收缩压连续4年上升,由124升至146mmHg" in text
    for line in data.advice:
        assert squeeze(line.text.zh) in text
    assert squeeze("目标 收缩压 < 140 mmHg: 尚未达成(146)") in text
    assert "血压持续上升，请按时复查。" in text
    assert squeeze(data.disclaimer.zh) in text


def test_staff_only_notes_stay_out_of_the_patient_report(chinese_pdf: bytes) -> None:
    text = squeeze(pdf_text(chinese_pdf))
    assert "单次测量结果；高血压需非同日多次测量确认。" in text  # patient-facing band note
    woman = evaluate("china-par", {**CHINA_PAR, "sex": "female"})
    staff_note = woman.notes[0].zh
    assert "[U]" in staff_note
    pdf = render_report(replace(report_data("zh"), risks=[woman]))
    assert squeeze(staff_note) not in squeeze(pdf_text(pdf))


def test_english_report_text(english_pdf: bytes) -> None:
    data = report_data("en")
    text = squeeze(pdf_text(english_pdf))
    for expected in ("张伟", "Healthreport", "Latestresults", "Riskassessment", "Advice", "Stagesummary"):
        assert expected in text
    assert "SystolicBP146mmHg<140↑HighGrade1" in text  # the category wraps in its cell
    china_par = data.risks[0]
    assert f"China-PAR10-yearASCVDrisk{china_par.value}%HighRisk".lower() in text.lower()
    for line in data.advice:
        assert squeeze(line.text.en) in text
    assert squeeze(data.disclaimer.en) in text


@pytest.mark.parametrize("fixture", ["chinese_pdf", "english_pdf"])
def test_every_character_uses_the_embedded_cjk_font(fixture: str, request: pytest.FixtureRequest) -> None:
    pdf: bytes = request.getfixturevalue(fixture)
    assert b"/FontFile2" in pdf
    assert b"STSong" not in pdf  # no reliance on a reader's CJK font pack
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        fonts = {char["fontname"].split("+")[-1] for page in document.pages for char in page.chars}
    assert fonts
    assert all(font.startswith("CareloopCJK-") for font in fonts), fonts


def render_first_page(pdf: bytes, tmp_path: Path) -> Image.Image:
    """Render page 1 with pdftoppm (poppler) when installed, else with pdfium."""
    if shutil.which("pdftoppm"):
        source = tmp_path / "report.pdf"
        source.write_bytes(pdf)
        subprocess.run(
            ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", str(source), str(tmp_path / "page")],
            check=True,
            timeout=60,
        )
        with Image.open(tmp_path / "page.png") as image:
            return image.convert("RGB")
    document = pypdfium2.PdfDocument(pdf)
    try:
        return document[0].render(scale=60 / 72).to_pil().convert("RGB")
    finally:
        document.close()


def test_first_page_renders_and_is_not_blank(chinese_pdf: bytes, tmp_path: Path) -> None:
    image = render_first_page(chinese_pdf, tmp_path)
    assert image.size[0] == pytest.approx(595 * 60 / 72, abs=2)  # A4 width
    pixels = np.asarray(image)
    inked = np.any(pixels < 200, axis=-1).mean()
    assert inked > 0.01  # text, tables and charts
    assert np.any(np.all(np.abs(pixels.astype(int) - (192, 57, 43)) < 40, axis=-1))  # a flagged value in red


def test_report_is_a4_and_several_pages(chinese_pdf: bytes) -> None:
    with pdfplumber.open(io.BytesIO(chinese_pdf)) as document:
        assert len(document.pages) >= 2
        first = document.pages[0]
        assert (round(first.width), round(first.height)) == (595, 842)


def test_text_is_not_markup(tmp_path: Path) -> None:
    data = replace(
        report_data("zh"), clinic=ReportClinic.named("A&B <诊所>"), patient=PatientDetails(name="张<b>伟</b>")
    )
    text = pdf_text(render_report(data))
    assert "A&B <诊所>" in text
    assert "张<b>伟</b>" in text


def test_empty_sections_say_none_yet() -> None:
    data = ReportData(
        clinic=ReportClinic.named("诊所"),
        patient=PatientDetails(name="王芳"),
        language="zh",
        generated_on=date(2024, 1, 1),
    )
    text = squeeze(pdf_text(render_report(data)))
    assert "王芳" in text
    assert text.count("暂无") == 3  # results, risks, advice


def test_layout_keeps_every_string_for_the_font_subset() -> None:
    blocks = layout(report_data("zh"))
    strings = list(report_pdf.block_text(blocks))
    assert "张伟" in strings
    assert any("收缩压连续4年上升" in item for item in strings)


def test_font_registry_stays_bounded() -> None:
    for index in range(12):
        render_report(
            ReportData(
                clinic=ReportClinic.named("诊所"),
                patient=PatientDetails(name=f"患者{chr(0x4E00 + index * 7)}"),
                language="zh",
                generated_on=date(2024, 1, 1),
            )
        )
    ours = [name for name in pdfmetrics.getRegisteredFontNames() if name.startswith("CareloopCJK-")]
    assert len(ours) <= 8
    assert len(report_pdf._REGISTERED) <= 8  # noqa: SLF001 - the bound is the behaviour under test


def test_charts_must_be_png() -> None:
    assert report_pdf.png_size(chart_images([analyse_all(history())[0]], "zh")[0].png) == (700, 320)
    with pytest.raises(ValueError, match="must be a PNG"):
        report_pdf.png_size(b"GIF89a....")
