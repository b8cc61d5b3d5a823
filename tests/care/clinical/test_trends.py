"""Trends over the years: changes, slope, flag, category and the sentence (issue 5, 历年指标趋势分析)."""

from __future__ import annotations

import json
import math
from datetime import date

import pytest

from care.clinical.common import ClinicalError
from care.clinical.config import ClinicalConfig
from care.clinical.trends import analyse, analyse_all, slope_per_year
from tests.care.clinical.history import ANNUAL, annual, history


def yearly(values: list[float], first_year: int = 2021) -> list[tuple[date, float]]:
    return [(date(first_year + i, 6, 1), value) for i, value in enumerate(values)]


def test_the_issue_example_sentence() -> None:
    trend = analyse("sbp", yearly([128, 133, 140, 146]))
    assert trend.text.zh == "收缩压连续3年上升, 由128升至146 mmHg"
    assert trend.text.en == "Systolic BP rose 3 years in a row, from 128 to 146 mmHg"
    assert (trend.direction, trend.run) == ("rising", 3)


def test_falling_run() -> None:
    trend = analyse("waist", yearly([96, 94, 92, 90]), sex="male")
    assert trend.text.zh == "腰围连续3年下降, 由96.0降至90.0 cm"
    assert trend.text.en == "Waist fell 3 years in a row, from 96.0 to 90.0 cm"


def test_run_counts_only_the_last_consecutive_steps() -> None:
    trend = analyse("sbp", yearly([150, 128, 133, 140]))
    assert trend.run == 2
    assert trend.text.zh == "收缩压连续2年上升, 由128升至140 mmHg"


def test_several_measurements_a_year_say_times_not_years() -> None:
    series = [(date(2024, 1, 5), 3.1), (date(2024, 4, 5), 3.5), (date(2024, 9, 5), 3.9)]
    trend = analyse("ldl", series)
    assert trend.text.zh == "低密度脂蛋白胆固醇连续2次上升, 由3.10升至3.90 mmol/L"
    assert trend.text.en == "LDL cholesterol rose 2 times in a row, from 3.10 to 3.90 mmol/L"


def test_stable_within_tolerance() -> None:
    trend = analyse("sbp", yearly([128, 129, 127, 130, 128], 2020))
    assert trend.direction == "stable"
    assert trend.text.zh == "收缩压2020–2024年间保持稳定, 在127~130 mmHg之间"
    assert trend.text.en == "Systolic BP stayed stable from 2020 to 2024, between 127 and 130 mmHg"


def test_small_steps_that_add_up_are_a_rise_overall() -> None:
    trend = analyse("sbp", yearly([128, 130, 132, 134, 136], 2020))
    assert (trend.direction, trend.run) == ("rising", 0)
    assert trend.text.en == "Systolic BP rose overall from 2020 to 2024, from 128 to 136 mmHg"


def test_fluctuating() -> None:
    trend = analyse("sbp", yearly([120, 146, 118, 140, 125], 2020))
    assert trend.direction == "fluctuating"
    assert trend.text.zh == "收缩压2020–2024年间有波动, 在118~146 mmHg之间, 最近一次为125 mmHg"
    assert trend.text.en == "Systolic BP went up and down from 2020 to 2024, between 118 and 146 mmHg; latest 125 mmHg"


def test_single_value() -> None:
    trend = analyse("fpg", [(date(2024, 3, 1), 6.4)])
    assert trend.direction == "single"
    assert (trend.change_from_previous, trend.change_from_first, trend.slope_per_year) == (None, None, None)
    assert trend.text.zh == "空腹血糖仅有一次记录: 6.4 mmol/L"
    assert trend.text.en == "Fasting glucose: one measurement so far, 6.4 mmol/L"


def test_two_values() -> None:
    up = analyse("sbp", yearly([128, 135]))
    same = analyse("sbp", yearly([128, 129]))
    assert up.text.zh == "收缩压较上次上升, 由128升至135 mmHg"
    assert up.text.en == "Systolic BP rose since the last check, from 128 to 135 mmHg"
    assert same.direction == "stable"
    assert same.text.en == "Systolic BP is about the same as last time, from 128 to 129 mmHg"


def test_changes_and_slope() -> None:
    trend = analyse("sbp", annual("sbp"))
    assert trend.change_from_previous == 6
    assert trend.change_from_first == 22
    assert trend.slope_per_year == pytest.approx(5.6, abs=0.05)  # least squares over 124..146


def test_slope_is_least_squares_in_years() -> None:
    from care.clinical.trends import Point

    points = [Point(date(2020, 1, 1), 1.0), Point(date(2020, 7, 2), 2.0), Point(date(2021, 1, 1), 3.0)]
    xs = [0, 183 / 365.25, 366 / 365.25]
    mean_x, mean_y = sum(xs) / 3, 2.0
    expected = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, [1, 2, 3], strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    slope = slope_per_year(points)
    assert slope is not None
    assert math.isclose(slope, expected)
    assert slope_per_year([Point(date(2020, 1, 1), 1.0), Point(date(2020, 1, 1), 2.0)]) is None


def test_latest_value_is_flagged_and_categorised() -> None:
    trend = analyse("sbp", annual("sbp"))
    assert trend.flag == "high"
    assert trend.category is not None
    assert (trend.category.key, trend.category.label.zh) == ("grade1", "1级高血压")
    assert trend.reference is not None
    assert trend.reference.text(0) == "<140"
    assert trend.point_flags() == ("normal", "normal", "normal", "high", "high")


def test_lab_printed_range_wins() -> None:
    trend = analyse("fpg", yearly([5.5, 5.8]), lab_range=(3.9, 5.6))
    assert trend.reference is not None
    assert trend.reference.source == "lab"
    assert trend.flag == "high"
    assert trend.category is not None
    assert trend.category.key == "normal"  # the guideline category is still given


def test_flag_uses_the_displayed_value() -> None:
    assert analyse("fpg", yearly([6.04])).flag == "normal"
    assert analyse("fpg", yearly([6.05])).flag == "high"  # shown as 6.1


def test_sex_specific_category_is_left_out_without_sex() -> None:
    trend = analyse("waist", yearly([92]))
    assert (trend.category, trend.reference, trend.flag) == (None, None, None)
    with_sex = analyse("waist", yearly([92]), sex="female")
    assert with_sex.category is not None
    assert with_sex.category.key == "central_obesity"


def test_config_changes_category_and_range() -> None:
    trend = analyse("sbp", yearly([132]), config=ClinicalConfig.from_options(bp_threshold="130/80"))
    assert (trend.flag, trend.category.key if trend.category else None) == ("high", "grade1")


def test_points_are_sorted_by_date() -> None:
    trend = analyse("sbp", [(date(2023, 1, 1), 140), (date(2021, 1, 1), 128), (date(2022, 1, 1), 133)])
    assert [p.value for p in trend.points] == [128, 133, 140]


@pytest.mark.parametrize(
    ("series", "message"),
    [([], "at least one value"), ([(date(2024, 1, 1), math.nan)], "finite"), ([("2024-01-01", 1.0)], "need a date")],
)
def test_bad_series(series: list[tuple[object, float]], message: str) -> None:
    with pytest.raises(ClinicalError, match=message):
        analyse("sbp", series)  # type: ignore[arg-type]


def test_five_year_history_gives_the_expected_lines() -> None:
    trends = {trend.code: trend for trend in analyse_all(history(), sex="male", age=58)}
    assert list(trends) == list(ANNUAL)
    expected_zh = {
        "sbp": "收缩压连续4年上升, 由124升至146 mmHg",
        "dbp": "舒张压2020–2024年间有波动, 在79~86 mmHg之间, 最近一次为82 mmHg",
        "weight": "体重2020–2024年间保持稳定, 在74.9~75.2 kg之间",
        "bmi": "体重指数2020–2024年间保持稳定, 在25.9~26.1 kg/m2之间",
        "waist": "腰围连续4年下降, 由96.0降至88.0 cm",
        "fpg": "空腹血糖连续4年上升, 由5.2升至6.4 mmol/L",
        "tc": "总胆固醇2020–2024年间总体上升, 由5.10升至5.60 mmol/L",
        "hdl": "高密度脂蛋白胆固醇连续4年下降, 由1.40降至0.95 mmol/L",
        "ua": "尿酸连续4年上升, 由380升至440 µmol/L",
        "alt": "谷丙转氨酶2020–2024年间保持稳定, 在28~31 U/L之间",
        "cr": "肌酐2020–2024年间总体上升, 由80升至95 µmol/L",
        "egfr": "估算肾小球滤过率连续4年下降, 由93.0降至78.0 mL/min/1.73m2",
    }
    for code, line in expected_zh.items():
        assert trends[code].text.zh == line, code
    assert trends["sbp"].text.en == "Systolic BP rose 4 years in a row, from 124 to 146 mmHg"
    assert trends["hdl"].text.en == "HDL cholesterol fell 4 years in a row, from 1.40 to 0.95 mmol/L"
    flags = {code: trend.flag for code, trend in trends.items()}
    assert flags["sbp"] == "high"
    assert flags["hdl"] == "low"
    assert flags["ua"] == "high"  # 440 > 428 (WS/T 404.5 men)
    assert flags["alt"] == "normal"
    assert flags["cr"] == "normal"  # 95 within 57-97 (men 20-59)
    assert flags["weight"] is None  # no reference range for weight
    assert trends["ua"].category is not None
    assert trends["ua"].category.key == "hyperuricaemia"
    assert trends["egfr"].category is not None
    assert trends["egfr"].category.key == "G2"


def test_trend_serialises_to_json() -> None:
    data = analyse("sbp", annual("sbp")).to_dict()
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data
    assert data["rule_version"] == "TREND-1"
    assert data["reference"] == "<140"
