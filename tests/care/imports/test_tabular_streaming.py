"""The streaming .xlsx/.csv reader gives the same rows as the openpyxl reader, faster."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook

from care.imports.report_formats.tabular import RESULT_TEMPLATE
from care.imports.tabular import TemplateError, read_rows, read_rows_from

HEADER = ["卡号", "报告编号", "检查日期", "指标代码", "结果", "单位"]


def _workbook(path: Path, *, write_only: bool) -> None:
    workbook = Workbook(write_only=write_only)
    sheet = workbook.create_sheet("结果") if write_only else workbook.active
    assert sheet is not None
    sheet.append(HEADER)
    sheet.append(["T0000001", 20240001, datetime(2024, 3, 5), "sbp", 146, "mmHg"])
    sheet.append(["T0000001", "R-2", date(2024, 3, 6), "tc", 5.17, "mmol/L"])
    sheet.append([None, None, None, None, None, None])  # an empty row is skipped, numbering kept
    sheet.append(["  T0000002 ", "R-3", "2024-03-07", "ua", True, "µmol/L"])
    sheet.append(["T0000003", None, None, "fpg", 6.1])  # a short row: missing cells are None
    workbook.save(path)


@pytest.mark.parametrize("write_only", [True, False])
def test_xlsx_streaming_matches_openpyxl(tmp_path: Path, write_only: bool) -> None:
    path = tmp_path / "results.xlsx"
    _workbook(path, write_only=write_only)
    expected = list(read_rows(path, RESULT_TEMPLATE))
    with path.open("rb") as handle:
        streamed = list(read_rows_from(handle, "xlsx", RESULT_TEMPLATE, name=path.name))
    assert streamed == expected
    assert [row.number for row in streamed] == [2, 3, 5, 6]
    assert streamed[0].values["date"] == datetime(2024, 3, 5)
    assert streamed[0].values["report_id"] == 20240001


def test_csv_streaming_reads_a_bom_and_chinese_headers() -> None:
    data = "\ufeff卡号,报告编号,检查日期,指标代码,结果,单位\nT1,R1,2024-03-05,sbp,146,mmHg\n".encode()
    [row] = read_rows_from(io.BytesIO(data), "csv", RESULT_TEMPLATE)
    assert row.number == 2
    assert row.values["card_no"] == "T1"
    assert row.values["value"] == "146"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a zip at all", "is not a readable .xlsx workbook"),
        (b"\xff\xfe\x00bad,header\n", "is not UTF-8 text"),
    ],
)
def test_unreadable_content_is_a_template_error(content: bytes, message: str) -> None:
    kind = "xlsx" if content.startswith(b"not") else "csv"
    with pytest.raises(TemplateError, match=message):
        list(read_rows_from(io.BytesIO(content), kind, RESULT_TEMPLATE, name="upload"))


def test_a_workbook_with_a_dtd_is_refused() -> None:
    sheet = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        '<row r="1"><c r="A1" t="inlineStr"><is><t>&a;</t></is></c></row></sheetData></worksheet>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
    with pytest.raises(TemplateError, match="DTD"):
        list(read_rows_from(io.BytesIO(out.getvalue()), "xlsx", RESULT_TEMPLATE))


def test_missing_required_columns_are_named() -> None:
    with pytest.raises(TemplateError, match=r"lacks required column\(s\): unit \(单位\)"):
        list(read_rows_from(io.BytesIO("卡号,报告编号,检查日期,指标代码,结果\n".encode()), "csv", RESULT_TEMPLATE))
