"""Trends know where each point came from; the trend line is drawn through checkup and clinic values (issue 13.9)."""

from __future__ import annotations

from datetime import date

import pytest

from care.clinical.charts import trend_figure
from care.clinical.common import ClinicalError
from care.clinical.report_pdf import ResultRow
from care.clinical.trends import SeriesItem, analyse, slope_per_year, source_kind

#: Yearly checkups rising 6 mmHg a year, and a burst of low home readings in the last autumn.
CHECKUPS: list[SeriesItem] = [(date(2021 + i, 5, 12), 128.0 + 6 * i, "checkup") for i in range(4)]
HOME: list[SeriesItem] = [(date(2024, 9, day), 112.0 + day % 3, "home") for day in range(1, 21)]


def test_source_kind_is_defined_in_one_place() -> None:
    assert source_kind("flow:bp_daily") == "home"
    assert source_kind("flow") == "home"
    assert source_kind("clinic") == "clinic"
    assert source_kind("visit:2024-05") == "clinic"
    assert source_kind("file") == "checkup"
    assert source_kind("hospital-lis") == "checkup"
    assert source_kind("demo") == "checkup"
    assert source_kind(None) == "checkup"


def test_home_readings_do_not_bend_the_trend_line() -> None:
    mixed = analyse("sbp", [*CHECKUPS, *HOME])
    checkups_only = analyse("sbp", CHECKUPS)
    everything = analyse("sbp", [*CHECKUPS, *HOME], sources=("checkup", "clinic", "home"))
    assert checkups_only.slope_per_year is not None
    assert everything.slope_per_year is not None
    # The home readings would change the slope by far more than rounding ...
    assert abs(everything.slope_per_year - checkups_only.slope_per_year) > 2
    # ... but by default they are left out of it, and out of the sentence.
    assert mixed.slope_per_year == pytest.approx(checkups_only.slope_per_year)
    assert mixed.text == checkups_only.text
    assert mixed.text.zh == "收缩压连续3年上升, 由128升至146 mmHg"
    assert mixed.line_sources == ("checkup",)
    assert everything.line_sources == ("checkup", "home")
    # Every point is still there, with its source; the latest value is the latest home reading.
    assert len(mixed.points) == len(CHECKUPS) + len(HOME)
    assert {point.source for point in mixed.points} == {"checkup", "home"}
    assert mixed.latest.source == "home"
    assert mixed.to_dict()["points"][-1]["source"] == "home"  # type: ignore[index]


def test_clinic_values_count_for_the_line() -> None:
    clinic: list[SeriesItem] = [(date(2025, 1, 10), 160.0, "clinic")]
    trend = analyse("sbp", [*CHECKUPS, *HOME, *clinic])
    expected = slope_per_year(analyse("sbp", [*CHECKUPS, *clinic]).points)
    assert trend.slope_per_year == pytest.approx(expected)
    assert trend.line_sources == ("checkup", "clinic")


def test_only_home_readings_still_make_a_line_from_them() -> None:
    trend = analyse("sbp", HOME)
    assert trend.slope_per_year is not None
    assert trend.line_sources == ("home",)


def test_an_unknown_source_kind_is_refused() -> None:
    with pytest.raises(ClinicalError, match="unknown source kind 'lab'"):
        analyse("sbp", CHECKUPS, sources=("lab",))  # type: ignore[arg-type]
    with pytest.raises(ClinicalError, match="unknown source kind"):
        analyse("sbp", [(date(2024, 1, 1), 120.0, "phone")])  # type: ignore[list-item]


def test_the_chart_draws_home_readings_as_their_own_labelled_series() -> None:
    trend = analyse("sbp", [*CHECKUPS, *HOME])
    for lang, checkup, home in (("zh", "体检", "家庭自测"), ("en", "Checkup", "Home reading")):
        axes = trend_figure(trend, lang=lang).axes[0]  # type: ignore[arg-type]
        legend = axes.get_legend()
        assert legend is not None
        assert [text.get_text() for text in legend.get_texts()] == [checkup, home]
        lines = {line.get_label(): len(line.get_xdata()) for line in axes.get_lines()}  # type: ignore[arg-type]
        assert lines == {checkup: len(CHECKUPS), home: len(HOME)}


def test_a_checkup_only_chart_has_no_legend() -> None:
    axes = trend_figure(analyse("sbp", CHECKUPS)).axes[0]
    assert axes.get_legend() is None


def test_the_time_axis_ends_at_the_last_data_date() -> None:
    # The last checkup is in December: the axis must not run into the next year, which has no data.
    series: list[SeriesItem] = [(date(2020 + i, 12, 1), 130.0 + i, "checkup") for i in range(5)]
    axes = trend_figure(analyse("sbp", series)).axes[0]
    last = date(2024, 12, 1).toordinal()
    left, right = axes.get_xlim()
    assert last < right <= last + 31
    labels = [tick.get_text() for tick in axes.get_xticklabels()]
    assert labels[-1] == "2024"
    assert "2025" not in labels
    assert all(position <= last for position in axes.get_xticks())


def test_a_result_row_says_where_the_latest_value_came_from() -> None:
    assert ResultRow.from_trend(analyse("sbp", [*CHECKUPS, *HOME])).source == "home"
    assert ResultRow.from_trend(analyse("sbp", CHECKUPS)).source == "checkup"
