"""Plausibility before arithmetic (clinical-spec.md 10a): the table both ways, the pair rules, the messages."""

from __future__ import annotations

import math
import re

import pytest

from care.clinical import codes, plausibility
from care.clinical.plausibility import RANGES, check_value, check_values

#: The spec's table (10a), canonical units: (code, low, high).
SPEC_TABLE = [
    ("sbp", 60, 300), ("dbp", 30, 200), ("tc", 1, 20), ("hdl", 0.1, 5), ("ldl", 0.1, 15), ("tg", 0.1, 50),
    ("fpg", 1, 40), ("hba1c", 3, 20), ("height", 50, 250), ("weight", 2, 400), ("waist", 30, 250),
    ("cr", 10, 2000), ("ua", 30, 1500),
]  # fmt: skip
#: The extensions (docs/clinical.md): inclusive ends.
EXTENDED = [("egfr", 0.5, 250), ("alt", 1, 50000), ("ast", 1, 50000), ("age", 0, 130)]
STEP = 0.01


def test_the_table_is_the_spec_table() -> None:
    for code, low, high in SPEC_TABLE + EXTENDED:
        assert (RANGES[code].low, RANGES[code].high) == (low, high), code
    assert {code for code, _, _ in SPEC_TABLE} <= set(RANGES)


@pytest.mark.parametrize(("code", "low", "high"), SPEC_TABLE + EXTENDED)
def test_just_inside_passes_and_just_outside_fails(code: str, low: float, high: float) -> None:
    for inside in (low, low + STEP, high - STEP, high):
        assert check_value(code, inside) is None, (code, inside)
    for outside in (low - STEP, high + STEP):
        problem = check_value(code, outside)
        assert problem is not None, (code, outside)
        assert (problem.rule, problem.names) == ("range", (code,))


@pytest.mark.parametrize(("value", "plausible"), [(10, False), (10.01, True), (99.99, True), (100, False)])
def test_bmi_limits_are_open(value: float, plausible: bool) -> None:
    """BMI <= 10 or >= 100 is implausible (Chan & Raffa 2017, the source of the extension)."""
    assert (check_value("bmi", value) is None) is plausible


@pytest.mark.parametrize(("name", "code"), [("creatinine", "cr"), ("uric_acid", "ua")])
def test_risk_input_names_use_the_indicators_range(name: str, code: str) -> None:
    limits = RANGES[code]
    assert check_value(name, limits.high) is None
    problem = check_value(name, limits.high + 1)
    assert problem is not None
    assert problem.names == (name,)
    assert problem.text.startswith(f"{name} is outside the plausible range")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_fail(value: float) -> None:
    problem = check_value("sbp", value)
    assert problem is not None
    assert problem.rule == "finite"


@pytest.mark.parametrize(
    ("values", "rules"),
    [
        ({"sbp": 120, "dbp": 80}, []),
        ({"sbp": 80, "dbp": 120}, ["sbp_above_dbp"]),  # the reversed pair
        ({"sbp": 100, "dbp": 100}, ["sbp_above_dbp"]),  # equal is not "above"
        ({"sbp": 101, "dbp": 100}, []),
        ({"tc": 5.0, "hdl": 1.2, "ldl": 3.0}, []),
        ({"tc": 4.0, "hdl": 4.5}, ["hdl_below_tc"]),
        ({"tc": 4.0, "hdl": 4.0}, ["hdl_below_tc"]),
        ({"tc": 4.0, "ldl": 4.2}, ["ldl_below_tc"]),
        ({"tc": 4.0, "ldl": 4.2, "hdl": 4.1}, ["hdl_below_tc", "ldl_below_tc"]),
        ({"ldl": 4.2, "hdl": 4.1}, []),  # no TC: nothing to compare with
        ({"sbp": 80}, []),
    ],
)
def test_pair_rules(values: dict[str, float], rules: list[str]) -> None:
    assert [problem.rule for problem in check_values(values)] == rules


def test_a_pair_with_an_impossible_member_reports_the_member_only() -> None:
    assert [(p.rule, p.names) for p in check_values({"sbp": 1350, "dbp": 2000})] == [
        ("range", ("sbp",)), ("range", ("dbp",)),
    ]  # fmt: skip
    assert [p.rule for p in check_values({"sbp": 20, "dbp": 80})] == ["range"]


def test_unknown_names_are_ignored() -> None:
    assert check_values({"psa": -5, "smoker": 1}) == []


def test_messages_are_bilingual_and_never_carry_the_value() -> None:
    problems = check_values({"sbp": 80, "dbp": 120, "tc": 37.25, "weight": 1.5})
    assert [p.rule for p in problems] == ["range", "range", "sbp_above_dbp"]
    for problem in problems:
        assert problem.message.zh
        assert problem.message.en
        for shown in ("37.25", "1.5"):
            assert not re.search(rf"(?<![\d.]){re.escape(shown)}(?![\d])", problem.message.zh + problem.message.en)
    assert problems[0].message.zh.startswith("tc（总胆固醇）超出生理可能范围 1-20 mmol/L")
    assert problems[2].message.zh.startswith("收缩压必须高于舒张压")


def test_require_plausible_raises_with_every_problem() -> None:
    with pytest.raises(plausibility.ImplausibleError) as raised:
        plausibility.require_plausible({"sbp": 80, "dbp": 120, "hdl": 9})
    assert [p.rule for p in raised.value.problems] == ["range", "sbp_above_dbp"]
    assert "sbp must be higher than dbp" in str(raised.value)


@pytest.mark.parametrize(("code", "value", "unit"), [("sbp", 59, "mmHg"), ("tg", 51, "mmol/L"), ("fpg", 0.9, "mmol/L")])
def test_the_importers_resolve_uses_the_same_table(code: str, value: float, unit: str) -> None:
    """One place: codes.resolve (what the report formats call) rejects by this table."""
    with pytest.raises(codes.ImplausibleValueError, match=rf"^{code} is outside the plausible range"):
        codes.resolve(code, value, unit)
