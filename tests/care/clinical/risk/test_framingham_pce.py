"""Framingham general CVD (spec section 2) and the Pooled Cohort Equations (spec section 3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from care.clinical.risk import evaluate

MG = 38.67  # cholesterol mg/dL per mmol/L (spec section 0)


def test_vector_6_woman_61_smoker() -> None:
    result = evaluate(
        "framingham",
        {"sex": "female", "age": 61, "tc": 180 / MG, "hdl": 47 / MG, "sbp": 124, "bp_treated": False,
         "smoker": True, "diabetes": False},
    )  # fmt: skip
    assert result.details["linear_predictor"] == pytest.approx(26.9653, abs=5e-4)
    assert result.details["risk_percent_unrounded"] == pytest.approx(10.48, abs=0.005)
    assert (result.value, result.category) == (10.5, "medium")


def test_vector_7_man_53_treated_diabetic() -> None:
    result = evaluate(
        "framingham",
        {"sex": "male", "age": 53, "tc": 161 / MG, "hdl": 55 / MG, "sbp": 125, "bp_treated": True,
         "smoker": False, "diabetes": True},
    )  # fmt: skip
    assert result.details["linear_predictor"] == pytest.approx(24.3509, abs=5e-4)
    assert result.details["risk_percent_unrounded"] == pytest.approx(15.62, abs=0.005)
    assert result.value == 15.6


def test_framingham_is_not_clamped() -> None:
    """CVrisk clamps to 1-30 %; the spec says we must not."""
    high = evaluate(
        "framingham",
        {"sex": "male", "age": 74, "tc": 8.0, "hdl": 0.8, "sbp": 190, "bp_treated": True, "smoker": True,
         "diabetes": True},
    )  # fmt: skip
    low = evaluate(
        "framingham",
        {"sex": "female", "age": 30, "tc": 3.5, "hdl": 2.0, "sbp": 100, "bp_treated": False, "smoker": False,
         "diabetes": False},
    )  # fmt: skip
    assert high.value is not None
    assert high.value > 30
    assert high.category == "high"
    assert low.value is not None
    assert low.value < 1


@pytest.mark.parametrize(
    ("age", "inside"), [(0, False), (29, False), (30, True), (74, True), (74.9, True), (75, False)]
)
def test_framingham_only_for_ages_30_to_74(age: float, inside: bool) -> None:
    base = {"sex": "female", "tc": 5.0, "hdl": 1.3, "sbp": 120, "bp_treated": False, "smoker": False, "diabetes": False}
    result = evaluate("framingham", {**base, "age": age})
    assert (result.value is not None) is inside
    if not inside:
        assert (result.category, result.flags) == ("out_of_range", ("age_out_of_range",))


# The guideline's Table A profile (spec section 3).
PROFILE = {
    "age": 55, "tc": 213 / MG, "hdl": 50 / MG, "sbp": 120, "bp_treated": False, "smoker": False, "diabetes": False,
}  # fmt: skip


@pytest.mark.parametrize(
    ("sex", "race", "predictor", "risk", "shown"),
    [
        ("female", "white", -29.68, 2.05, 2.1),
        ("female", "african_american", 86.17, 3.03, 3.0),
        ("male", "white", 60.70, 5.38, 5.4),
        ("male", "african_american", 18.97, 6.07, 6.1),
    ],
)
def test_vector_9_pce_guideline_profile(sex: str, race: str, predictor: float, risk: float, shown: float) -> None:
    result = evaluate("pce", {"sex": sex, "race": race, **PROFILE})
    assert result.details["linear_predictor"] == pytest.approx(predictor, abs=0.005)
    assert result.details["risk_percent_unrounded"] == pytest.approx(risk, abs=0.01)
    assert result.value == shown


def test_pce_white_man_against_the_guideline_text() -> None:
    result = evaluate("pce", {"sex": "male", "race": "white", **PROFILE})
    assert result.details["risk_percent_unrounded"] == pytest.approx(5.3, abs=0.1)


def test_pce_other_race_uses_white_equations_and_says_so() -> None:
    other = evaluate("pce", {"sex": "female", "race": "other", **PROFILE})
    white = evaluate("pce", {"sex": "female", "race": "white", **PROFILE})
    assert other.value == white.value
    assert "white_equations_for_other_race" in other.flags
    assert "China-PAR" in other.notes[0].en


def test_pce_needs_race_and_never_assumes_it() -> None:
    result = evaluate("pce", {"sex": "female", **PROFILE})
    assert (result.value, result.missing) == (None, ("race",))


@pytest.mark.parametrize(("age", "inside"), [(0, False), (39, False), (40, True), (79, True), (80, False)])
def test_pce_age_range(age: int, inside: bool) -> None:
    result = evaluate("pce", {"sex": "male", "race": "white", **{**PROFILE, "age": age}})
    assert (result.value is not None) is inside
    if not inside:
        assert (result.category, result.flags) == ("out_of_range", ("age_out_of_range",))


@pytest.mark.parametrize(
    ("change", "inside", "flag"),
    [
        ({"tc": 130 / MG}, True, None),
        ({"tc": 129.9 / MG}, False, "tc_out_of_range"),
        ({"tc": 320 / MG}, True, None),
        ({"tc": 320.1 / MG}, False, "tc_out_of_range"),
        ({"hdl": 20 / MG}, True, None),
        ({"hdl": 19.9 / MG}, False, "hdl_out_of_range"),
        ({"hdl": 100 / MG}, True, None),
        ({"hdl": 100.1 / MG}, False, "hdl_out_of_range"),
        ({"sbp": 90}, True, None),
        ({"sbp": 89}, False, "sbp_out_of_range"),
        ({"sbp": 200}, True, None),
        ({"sbp": 201}, False, "sbp_out_of_range"),
    ],
)
def test_pce_calculator_ranges(change: dict[str, float], inside: bool, flag: str | None) -> None:
    """Spec 10a: TC 130-320 mg/dL, HDL 20-100 mg/dL, SBP 90-200 mmHg as in the guideline's calculator."""
    result = evaluate("pce", {"sex": "female", "race": "white", **PROFILE, **change})
    assert (result.value is not None) is inside
    if flag is not None:
        assert (result.category, result.flags) == ("out_of_range", (flag,))
        assert result.error is not None
        assert "mg/dL" in result.error.en or "mmHg" in result.error.en


@pytest.mark.parametrize(
    ("shown", "category"),
    [
        (4.9, "low"),
        (5.0, "borderline"),
        (7.4, "borderline"),
        (7.5, "intermediate"),
        (19.9, "intermediate"),
        (20.0, "high"),
    ],
)
def test_pce_category_edges(shown: float, category: str) -> None:
    from care.clinical.ranges import band_pack

    assert band_pack("pce").classify(shown).key == category


# No deadline: the suite shares CI machines, and a slow first call is not a failure.
@settings(deadline=None)
@given(
    sex=st.sampled_from(["male", "female"]),
    age=st.integers(min_value=30, max_value=74),
    tc=st.floats(min_value=3.0, max_value=8.0),
    hdl=st.floats(min_value=0.7, max_value=2.5),
    sbp=st.integers(min_value=95, max_value=200),
    treated=st.booleans(),
    smoker=st.booleans(),
    diabetes=st.booleans(),
)
def test_framingham_properties(
    sex: str, age: int, tc: float, hdl: float, sbp: int, treated: bool, smoker: bool, diabetes: bool
) -> None:
    """Independent of the worked examples: a probability; higher SBP, TC, smoking, diabetes, lower HDL raise it."""
    profile = {
        "sex": sex, "age": age, "tc": tc, "hdl": hdl, "sbp": sbp, "bp_treated": treated, "smoker": smoker,
        "diabetes": diabetes,
    }  # fmt: skip
    raw = evaluate("framingham", profile).details["risk_percent_unrounded"]
    assert isinstance(raw, float)
    assert 0 < raw < 100
    worse_profiles = ({"sbp": sbp + 10}, {"tc": tc + 0.5}, {"smoker": True}, {"diabetes": True}, {"hdl": hdl - 0.2})
    for change in worse_profiles:
        worse = evaluate("framingham", {**profile, **change}).details["risk_percent_unrounded"]
        assert isinstance(worse, float)
        assert worse >= raw
