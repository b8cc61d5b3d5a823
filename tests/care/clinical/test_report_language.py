"""The printed report in one language: flags agree with categories, citations and inputs are translated,
and the last page is never an orphan (issue 13.8)."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import date

import pdfplumber

from care.clinical.advice import advice_rules
from care.clinical.citations import citation_label
from care.clinical.common import Label
from care.clinical.report_pdf import ResultRow, input_label, render_report
from care.clinical.trends import analyse
from tests.care.clinical.test_report_pdf import report_data


def row(code: str, value: float, sex: str) -> ResultRow:
    return ResultRow.from_trend(analyse(code, [(date(2024, 5, 12), value)], sex=sex))


def test_a_flag_never_contradicts_its_category() -> None:
    # A man's uric acid of 421-428: inside the lab range 208-428, past the guideline's 420.
    man = row("ua", 425, "male")
    assert man.flag == "high"
    assert man.category is not None
    assert man.category.en == "In the hyperuricaemia range"
    # A woman's 400: above her range 155-357, below the guideline's 420: never "Normal" next to ↑.
    woman = row("ua", 400, "female")
    assert woman.flag == "high"
    assert woman.category is not None
    assert "normal" not in woman.category.en.lower()
    assert woman.category.zh == "未达诊断切点"
    # Agreeing flags and categories stay as they are.
    assert (row("ua", 300, "male").flag, row("ua", 300, "male").category) == ("normal", Label("尿酸正常", "Normal"))
    high = row("ua", 440, "male")
    assert high.flag == "high"
    assert high.category is not None
    assert high.category.zh == "高尿酸血症范围"


def test_citations_name_the_documents_in_the_report_language() -> None:
    cited = citation_label("中国高血压防治指南2018年修订版: diagnosis needs readings on separate days; home BP high")
    assert cited.zh == "中国高血压防治指南(2018年修订版)"
    assert cited.en == "Chinese guidelines for the management of hypertension (2018 revision)"
    both = citation_label("WHO 2020: 150-300 min/week moderate activity; 中国居民膳食指南(2022) 准则二")
    assert both.zh == "世界卫生组织身体活动和久坐行为指南(2020)；中国居民膳食指南(2022)"
    assert both.en == "WHO guidelines on physical activity and sedentary behaviour (2020); Dietary guidelines for Chinese residents (2022)"  # noqa: E501
    assert citation_label("a clinic's own leaflet") == Label("a clinic's own leaflet", "a clinic's own leaflet")


def test_every_advice_source_is_cited_in_both_languages() -> None:
    for rule in advice_rules().rules:
        cited = citation_label(rule.source)
        assert cited.zh != rule.source or cited.en != rule.source, rule.id
        assert not any("\u4e00" <= char <= "\u9fff" for char in cited.en), (rule.id, cited.en)


def test_missing_inputs_are_named_in_the_report_language() -> None:
    assert input_label("family_history_diabetes") == Label("糖尿病家族史", "family history of diabetes")
    assert input_label("hdl").zh == "高密度脂蛋白胆固醇"
    assert input_label("items[3]") == Label("第3题", "question 3")


def pages_of(pdf: bytes) -> list[list[str]]:
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        return [(page.extract_text() or "").splitlines() for page in document.pages]


def test_no_report_length_ends_on_an_orphan_page() -> None:
    """Lengthen the stage summary line by line across a page break: the last page never holds a lone line."""
    base = report_data("zh")
    assert base.summary is not None

    def pages_with(extra: int) -> list[list[str]]:
        assert base.summary is not None
        lines = tuple(Label(f"补充说明第{i + 1}条: 请按时复查。", f"Note {i + 1}.") for i in range(extra))
        data = replace(base, summary=replace(base.summary, lines=(*base.summary.lines, *lines)))
        return pages_of(render_report(data))

    # The smallest number of extra lines that adds a page (binary search), then the lines after it.
    start = len(pages_with(0))
    low, high = 0, 80
    assert len(pages_with(high)) > start
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if len(pages_with(middle)) > start else (middle, high)
    for extra in range(high, high + 4):
        pages = pages_with(extra)
        body = pages[-1][1:-1]  # without header and footer
        assert len(body) >= 4, (extra, body)
        for number, page in enumerate(pages, start=1):
            assert page[-1].endswith(f"第 {number} 页 共 {len(pages)} 页"), page[-1]
            assert "张伟" in page[0]
            assert "C20240001" in page[0]
