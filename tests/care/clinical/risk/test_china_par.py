"""China-PAR 10-year ASCVD risk: clinical-spec.md section 1 (worked examples 1.5, vectors 1-3 of section 10)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from care.clinical.config import ClinicalConfig
from care.clinical.risk import evaluate
from care.clinical.risk.base import Values
from care.clinical.risk.china_par import EQUATIONS, terms
from care.clinical.risk.survival import linear_predictor, ten_year_risk

MGDL = 0.0259  # China-PAR's own factor: mmol/L = mg/dL x 0.0259

PAPER_PROFILE = {
    "sbp": 130,
    "bp_treated": False,
    "tc": 210 * MGDL,
    "hdl": 55 * MGDL,
    "waist": 80,
    "smoker": False,
    "diabetes": True,
    "region_north": True,
    "urban": True,
    "family_history_ascvd": False,
}

GUIDELINE_MAN = {
    "sex": "male",
    "age": 40,
    "sbp": 145,
    "bp_treated": False,
    "tc": 5.2,
    "hdl": 1.3,
    "waist": 80,
    "smoker": False,
    "diabetes": False,
    "region_north": True,
    "urban": True,
    "family_history_ascvd": True,
}


@pytest.mark.parametrize(
    ("sex", "age", "predictor", "risk", "category"),
    [
        ("male", 40, 140.3778, 2.17, "low"),
        ("male", 50, 141.2862, 5.31, "medium"),
        ("male", 60, 142.0285, 10.82, "high"),
        ("male", 70, 142.6560, 19.31, "high"),
        ("female", 40, 117.7482, 2.42, "low"),
        ("female", 50, 118.5631, 5.38, "medium"),
        ("female", 60, 119.2288, 10.19, "high"),
        ("female", 70, 119.7917, 17.20, "high"),
    ],
)
def test_paper_profile_worked_examples(sex: str, age: int, predictor: float, risk: float, category: str) -> None:
    result = evaluate("china-par", {"sex": sex, "age": age, **PAPER_PROFILE})
    assert result.details["linear_predictor"] == pytest.approx(predictor, abs=5e-4)
    assert result.details["risk_percent_unrounded"] == pytest.approx(risk, abs=5e-3)
    assert result.value == round(risk + 1e-9, 1)
    assert result.category == category
    assert result.unit == "%"


def test_vector_1_man_60_against_the_paper() -> None:
    result = evaluate("china-par", {"sex": "male", "age": 60, **PAPER_PROFILE})
    assert result.details["risk_percent_unrounded"] == pytest.approx(11.0, abs=0.3)  # paper Table 2
    assert (result.value, result.category, result.category_label.zh) == (10.8, "high", "高危")


def test_vector_2_woman_60_against_the_paper() -> None:
    result = evaluate("china-par", {"sex": "female", "age": 60, **PAPER_PROFILE})
    assert result.details["risk_percent_unrounded"] == pytest.approx(10.1, abs=0.3)
    assert (result.value, result.category) == (10.2, "high")


def test_vector_3_guideline_appendix_man() -> None:
    result = evaluate("china-par", GUIDELINE_MAN)
    assert result.details["linear_predictor"] == pytest.approx(141.1654, abs=5e-4)
    assert result.value == 4.7  # official calculator: 4.7 %
    assert (result.category, result.category_label.en) == ("low", "Low risk")


def test_step_by_step_products_of_the_man_aged_60() -> None:
    """Spec 1.5 prints each coefficient x value; their sum is the linear predictor."""
    values = Values({"sex": "male", "age": 60, **PAPER_PROFILE})
    x = terms(values)
    beta = EQUATIONS["male"].coefficients
    assert beta["ln_age"] * x["ln_age"] == pytest.approx(130.8839, abs=1e-4)
    assert beta["ln_sbp_untreated"] * x["ln_sbp_untreated"] == pytest.approx(127.2763, abs=1e-4)
    assert beta["ln_tc"] * x["ln_tc"] == pytest.approx(3.3206, abs=1e-4)
    assert beta["ln_hdl"] * x["ln_hdl"] == pytest.approx(-2.7851, abs=1e-4)
    assert beta["ln_waist"] * x["ln_waist"] == pytest.approx(-3.1200, abs=1e-4)
    # The spec prints -114.2161; 5.731 x 4.094345 x 4.867534 is -114.2152, and only that value gives the
    # printed total 142.0285, so the printed product has a slip in its 4th decimal.
    assert beta["ln_age_ln_sbp_untreated"] * x["ln_age_ln_sbp_untreated"] == pytest.approx(-114.2161, abs=1e-3)
    assert math.exp(linear_predictor(EQUATIONS["male"], x) - 140.68) == pytest.approx(3.851, abs=1e-3)


def test_general_cholesterol_factor_gives_the_same_result() -> None:
    """Spec section 0: 38.67 vs the paper's 38.61 differs by < 0.001 on the ln scale."""
    general = {**PAPER_PROFILE, "tc": 210 / 38.67, "hdl": 55 / 38.67}
    a = evaluate("china-par", {"sex": "male", "age": 60, **general})
    b = evaluate("china-par", {"sex": "male", "age": 60, **PAPER_PROFILE})
    assert a.details["risk_percent_unrounded"] == pytest.approx(b.details["risk_percent_unrounded"], abs=0.01)


# Independent checks of the machinery with the spec's sensitivity statements (section 1.2 notes).
TWO_DECIMAL_MEN = {
    "ln_age": 31.97, "ln_sbp_treated": 27.39, "ln_sbp_untreated": 26.15, "ln_tc": 0.62, "ln_hdl": -0.69,
    "ln_waist": -0.71, "smoker": 3.96, "diabetes": 0.36, "north": 0.48, "urban": -0.16, "family_history": 6.22,
    "ln_age_ln_sbp_treated": -6.02, "ln_age_ln_sbp_untreated": -5.73, "ln_age_smoker": -0.94,
    "ln_age_family_history": -1.53,
}  # fmt: skip


@pytest.mark.parametrize(("profile", "expected"), [({"age": 60, **PAPER_PROFILE}, 11.64), (GUIDELINE_MAN, 5.13)])
def test_two_decimal_coefficients_reproduce_the_spec_sensitivity_figures(
    profile: dict[str, object], expected: float
) -> None:
    equation = replace(EQUATIONS["male"], coefficients=TWO_DECIMAL_MEN)
    x = terms(Values({"sex": "male", **profile}))  # type: ignore[arg-type]
    assert ten_year_risk(equation, linear_predictor(equation, x)) * 100 == pytest.approx(expected, abs=0.01)


def test_printed_women_s10_would_underestimate() -> None:
    """Spec: with the printed S10 0.99 the woman aged 60 comes out at 6.95 % instead of 10.1 %."""
    equation = replace(EQUATIONS["female"], s10=0.99)
    x = terms(Values({"sex": "female", "age": 60, **PAPER_PROFILE}))
    assert ten_year_risk(equation, linear_predictor(equation, x)) * 100 == pytest.approx(6.95, abs=0.01)


def test_women_result_flags_the_derived_s10() -> None:
    women = evaluate("china-par", {"sex": "female", "age": 60, **PAPER_PROFILE})
    men = evaluate("china-par", {"sex": "male", "age": 60, **PAPER_PROFILE})
    assert any("[U]" in note.en and "0.9851" in note.en for note in women.notes)
    assert not any("0.9851" in note.en for note in men.notes)
    assert women.details["s10"] == 0.9851
    assert men.details["s10"] == 0.9707
    assert "s10_unconfirmed" in women.flags
    assert "s10_unconfirmed" not in men.flags
    assert women.patient_notes == ()  # a caveat for staff, not for the patient


def test_women_do_not_need_urban_or_family_history_and_they_do_not_count() -> None:
    base = {"sex": "female", "age": 60, **PAPER_PROFILE}
    del base["urban"], base["family_history_ascvd"]
    without = evaluate("china-par", base)
    with_them = evaluate("china-par", {**base, "urban": False, "family_history_ascvd": True})
    assert without.missing == ()
    assert without.details["linear_predictor"] == with_them.details["linear_predictor"]


def test_men_need_urban_and_family_history() -> None:
    base = {"sex": "male", "age": 60, **PAPER_PROFILE}
    del base["urban"], base["family_history_ascvd"]
    result = evaluate("china-par", base)
    assert (result.value, result.category, result.missing) == (None, "incomplete", ("urban", "family_history_ascvd"))


def test_treated_sbp_uses_the_treated_coefficients() -> None:
    untreated = evaluate("china-par", {"sex": "male", "age": 60, **PAPER_PROFILE})
    treated = evaluate("china-par", {"sex": "male", "age": 60, **PAPER_PROFILE, "bp_treated": True})
    ln_age, ln_sbp = math.log(60), math.log(130)
    delta = (27.388 - 26.148) * ln_sbp + (-6.018 + 5.731) * ln_age * ln_sbp
    assert treated.details["linear_predictor"] - untreated.details["linear_predictor"] == pytest.approx(delta)


FLAG = ClinicalConfig(china_par_age_policy="flag")


@pytest.mark.parametrize(("age", "extrapolated"), [(20, True), (34, True), (35, False), (74.9, False), (75, True)])
def test_flag_policy_extrapolates_outside_the_cohorts(age: float, extrapolated: bool) -> None:
    result = evaluate("china-par", {"sex": "male", "age": age, **PAPER_PROFILE}, config=FLAG)
    assert result.value is not None
    assert ("extrapolated" in result.flags) is extrapolated


@pytest.mark.parametrize(
    ("age", "inside"), [(34, False), (34.9, False), (35, True), (74, True), (74.9, True), (75, False)]
)
def test_default_gives_out_of_range_outside_the_cohorts(age: float, inside: bool) -> None:
    """Spec 10a: ages 35-74; 20-34 and 75+ only as "extrapolated" when configured."""
    result = evaluate("china-par", {"sex": "male", "age": age, **PAPER_PROFILE})
    if inside:
        assert result.value is not None
        assert "extrapolated" not in result.flags
    else:
        assert (result.value, result.category, result.flags) == (None, "out_of_range", ("age_out_of_range",))
        assert result.error is not None
        assert "35-74" in result.error.en
        assert "35-74岁" in result.error.zh


def test_under_20_is_out_of_range_under_every_policy() -> None:
    for config in (None, FLAG):
        result = evaluate("china-par", {"sex": "male", "age": 19, **PAPER_PROFILE}, config=config)
        assert (result.value, result.category, result.flags) == (None, "out_of_range", ("age_out_of_range",))


def test_known_ascvd_is_excluded() -> None:
    result = evaluate("china-par", {"sex": "male", "age": 60, **PAPER_PROFILE, "known_ascvd": True})
    assert (result.value, result.category, result.flags) == (None, "not_applicable", ("known_ascvd",))
    assert evaluate("china-par", {"sex": "male", "age": 60, **PAPER_PROFILE, "known_ascvd": False}).value == 10.8


def test_result_carries_citation_and_rule_pack_versions() -> None:
    result = evaluate("china-par", {"sex": "male", "age": 60, **PAPER_PROFILE})
    assert "10.1161/CIRCULATIONAHA.116.022367" in result.citation
    assert result.rule_pack == "ChinaPAR-2016/TJPMA-2024+CVD-RISK-CN-2019"


@pytest.mark.parametrize(("shown", "category"), [(4.9, "low"), (5.0, "medium"), (9.9, "medium"), (10.0, "high")])
def test_category_edges_on_displayed_percent(shown: float, category: str) -> None:
    from care.clinical.ranges import band_pack

    assert band_pack("china_par").classify(shown).key == category
    assert band_pack("china_par").classify(shown - 0.04).key == category  # rounds up to the shown value
