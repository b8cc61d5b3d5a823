"""Stage summary (健康阶段总结): indicator changes, goals, risks then and now, adherence, interventions."""

from __future__ import annotations

import json
from datetime import date

import pytest

from care.clinical.common import ClinicalError, Label
from care.clinical.risk import evaluate
from care.clinical.summary import (
    Goal,
    Intervention,
    StageSummaryInput,
    adherence,
    compute_stage_summary,
)

START, END = date(2024, 1, 1), date(2024, 12, 31)


def test_indicator_change_from_the_value_before_the_period() -> None:
    result = compute_stage_summary(
        StageSummaryInput(
            START, END, series={"sbp": [(date(2023, 11, 1), 146), (date(2024, 5, 1), 138), (date(2024, 11, 1), 132)]}
        )
    )
    (change,) = result.indicators
    assert change.start is not None
    assert change.end is not None
    assert (change.start.value, change.end.value, change.change, change.movement) == (146, 132, -14, "down")
    assert change.text.zh == "收缩压: 146 → 132 mmHg (1级高血压 → 正常高值)"
    assert change.text.en == "Systolic BP: 146 → 132 mmHg (Grade 1 hypertension → High-normal)"


def test_first_value_inside_the_period_when_none_before() -> None:
    result = compute_stage_summary(
        StageSummaryInput(START, END, series={"weight": [(date(2024, 3, 1), 80), (date(2024, 10, 1), 76.5)]})
    )
    (change,) = result.indicators
    assert change.text.en == "Weight: 80.0 → 76.5 kg"
    assert change.movement == "down"


@pytest.mark.parametrize(
    ("values", "movement"),
    [((130, 133), "unchanged"), ((130, 134), "up"), ((134, 130), "down")],
)
def test_changes_within_tolerance_are_unchanged(values: tuple[int, int], movement: str) -> None:
    series = {"sbp": [(date(2024, 2, 1), values[0]), (date(2024, 9, 1), values[1])]}
    (change,) = compute_stage_summary(StageSummaryInput(START, END, series=series)).indicators
    assert change.movement == movement


def test_no_new_measurement_and_later_values_are_ignored() -> None:
    series = {"ldl": [(date(2022, 1, 1), 3.5), (date(2025, 3, 1), 2.9)]}
    (change,) = compute_stage_summary(StageSummaryInput(START, END, series=series)).indicators
    assert change.movement == "single"
    assert change.text.zh == "低密度脂蛋白胆固醇: 3.50 mmol/L (本阶段无新记录)"


def test_goals() -> None:
    series = {
        "sbp": [(date(2024, 2, 1), 146), (date(2024, 11, 1), 132)],
        "weight": [(date(2024, 2, 1), 80), (date(2024, 11, 1), 76.5)],
        "bmi": [(date(2024, 11, 1), 23.94)],
    }
    goals = [
        Goal("g1", "sbp", "<", 140),
        Goal("g2", "weight", "<=", 75),
        Goal("g3", "fpg", "<", 6.1),
        Goal("g4", "bmi", "between", 18.5, 23.9),
    ]
    outcomes = compute_stage_summary(StageSummaryInput(START, END, series=series, goals=goals)).goals
    assert [outcome.status for outcome in outcomes] == ["met", "not_met", "no_data", "met"]
    assert outcomes[0].text.zh == "目标 收缩压 < 140 mmHg: 已达成(132)"
    assert outcomes[1].text.en == "Goal Weight ≤ 75.0 kg: not yet met (76.5)"
    assert outcomes[2].text.zh == "目标 空腹血糖 < 6.1 mmol/L: 暂无数据"
    assert outcomes[3].text.en == "Goal BMI 18.5~23.9 kg/m2: met (23.9)"  # judged on the shown value


@pytest.mark.parametrize(
    ("comparator", "value", "met"),
    [("<", 139, True), ("<", 140, False), ("<=", 140, True), (">", 1.0, False), (">=", 1.0, True)],
)
def test_goal_comparators(comparator: str, value: float, met: bool) -> None:
    target = 140 if comparator in ("<", "<=") else 1.0
    code = "sbp" if comparator in ("<", "<=") else "hdl"
    assert Goal("g", code, comparator, target).met(value) is met  # type: ignore[arg-type]


def test_bad_goals() -> None:
    with pytest.raises(ClinicalError, match="needs target_high"):
        Goal("g", "bmi", "between", 18.5)
    with pytest.raises(ClinicalError, match="unknown comparator"):
        Goal("g", "bmi", "~", 18.5)  # type: ignore[arg-type]
    with pytest.raises(ClinicalError, match="unknown indicator code"):
        Goal("g", "psa", "<", 4)


def test_risks_then_and_now() -> None:
    risks = [
        (date(2023, 11, 1), evaluate("bp", {"sbp": 146, "dbp": 88})),
        (date(2024, 11, 1), evaluate("bp", {"sbp": 132, "dbp": 84})),
        (date(2023, 12, 1), evaluate("phq9", {"items": [1, 1, 1, 1, 1, 1, 1, 1, 0]})),
        (date(2024, 6, 1), evaluate("phq9", {"items": [2, 2, 1, 2, 1, 1, 1, 1, 0]})),
        (date(2024, 3, 1), evaluate("gad7", {"items": [1, 1, 1, 0, 0, 0, 0]})),
        (date(2022, 3, 1), evaluate("cdrs", {"sex": "male", "age": 46, "bmi": 25.9, "waist": 88, "sbp": 132,
                                              "family_history_diabetes": "none"})),
        (date(2024, 3, 1), evaluate("findrisc", {"sex": "male"})),  # incomplete: ignored
    ]  # fmt: skip
    result = compute_stage_summary(StageSummaryInput(START, END, risks=risks))
    by_model = {change.model: change for change in result.risks}
    assert by_model["bp"].movement == "improved"
    assert by_model["bp"].text.zh == "血压分类: 146 mmHg 1级高血压 → 132 mmHg 正常高值 (好转)"
    assert by_model["phq9"].movement == "worsened"
    assert by_model["phq9"].text.en.endswith("8 points Mild → 11 points Moderate (worsened)")
    assert by_model["gad7"].movement == "new"
    assert by_model["cdrs"].movement == "not_reassessed"
    assert by_model["findrisc"].movement == "no_data"
    assert [change.model for change in result.risks] == ["findrisc", "cdrs", "phq9", "gad7", "bp"]


def test_china_par_percent_text() -> None:
    profile = {
        "sex": "male", "sbp": 130, "bp_treated": False, "tc": 5.439, "hdl": 1.4245, "waist": 80, "smoker": False,
        "diabetes": True, "region_north": True, "urban": True, "family_history_ascvd": False,
    }  # fmt: skip
    risks = [(date(2023, 6, 1), evaluate("china-par", {**profile, "age": 59})),
             (date(2024, 6, 1), evaluate("china-par", {**profile, "age": 60}))]  # fmt: skip
    (change,) = compute_stage_summary(StageSummaryInput(START, END, risks=risks)).risks
    assert change.movement == "unchanged"
    assert change.text.zh.endswith("→ 10.8% 高危 (持平)")


def test_adherence() -> None:
    follow = adherence(12, 10)
    assert follow.rate == pytest.approx(10 / 12)
    assert follow.text.zh == "随访12次，回复10次(依从率83%)"
    assert follow.text.en == "12 follow-ups sent, 10 answered (83% adherence)"
    assert adherence(0, 0).rate is None
    assert adherence(3, 3).text.en.endswith("(100% adherence)")
    with pytest.raises(ClinicalError, match="more follow-ups answered than sent"):
        adherence(2, 3)
    with pytest.raises(ClinicalError, match="whole number"):
        adherence(-1, 0)


def test_interventions_done_and_lines() -> None:
    interventions = [
        Intervention(Label("饮食指导", "Diet guidance"), "done", date(2024, 3, 1)),
        Intervention(Label("运动处方", "Exercise plan"), "in_progress"),
        Intervention(Label("戒烟门诊", "Stop-smoking clinic"), "done", date(2024, 9, 1)),
    ]
    result = compute_stage_summary(
        StageSummaryInput(START, END, interventions=interventions, followups_sent=4, followups_answered=3)
    )
    assert [item.title.en for item in result.interventions_done] == ["Diet guidance", "Stop-smoking clinic"]
    assert result.lines[0].zh == "阶段: 2024-01-01 – 2024-12-31"
    assert result.lines[-1].zh == "完成干预: 饮食指导、戒烟门诊"
    assert result.lines[-1].en == "Interventions completed: Diet guidance, Stop-smoking clinic"


def test_period_must_be_ordered() -> None:
    with pytest.raises(ClinicalError, match="ends before it starts"):
        compute_stage_summary(StageSummaryInput(END, START))


def test_summary_serialises_for_storage_with_rule_packs() -> None:
    result = compute_stage_summary(
        StageSummaryInput(
            START,
            END,
            series={"sbp": [(date(2023, 11, 1), 146), (date(2024, 11, 1), 132)]},
            goals=[Goal("g1", "sbp", "<", 140)],
            risks=[(date(2024, 2, 1), evaluate("bmi", {"bmi": 26}))],
            followups_sent=2,
            followups_answered=1,
        )
    )
    data = result.to_dict()
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data
    assert data["version"] == "SUMMARY-1"
    assert data["rule_packs"] == {"summary": "SUMMARY-1", "sbp": "HTN-CN-2018", "bmi": "BMI-CN-2013"}
    assert data["period"] == {"start": "2024-01-01", "end": "2024-12-31"}
