"""The category models: bmi, waist, bp, fpg, lipids, uric-acid, egfr (clinical-spec.md 7.x, vectors 16-18)."""

from __future__ import annotations

import pytest

from care.clinical.config import ClinicalConfig
from care.clinical.risk import evaluate
from care.clinical.risk.egfr import ckd_epi_2021


def test_vector_18_bmi() -> None:
    result = evaluate("bmi", {"weight": 70, "height": 170})
    assert (result.value, result.unit, result.category) == (24.2, "kg/m2", "overweight")
    assert result.category_label.zh == "超重"
    assert result.rule_pack == "BMI-CN-2013"
    assert "WS/T 428-2013" in result.citation


def test_bmi_given_directly_and_with_who_option() -> None:
    assert evaluate("bmi", {"bmi": 23.99}).category == "overweight"  # shown as 24.0
    result = evaluate("bmi", {"bmi": 24.2}, config=ClinicalConfig.from_options(bmi="WHO"))
    assert (result.category, result.rule_pack) == ("normal", "BMI-WHO-2000")
    assert "WHO" in result.citation


def test_bmi_needs_weight_and_height_or_bmi() -> None:
    assert evaluate("bmi", {"weight": 70}).missing == ("bmi",)


def test_waist_model() -> None:
    assert evaluate("waist", {"sex": "male", "waist": 90}).category == "central_obesity"
    assert evaluate("waist", {"sex": "female", "waist": 82}).category == "pre_central_obesity"
    assert evaluate("waist", {"waist": 90}).missing == ("sex",)


@pytest.mark.parametrize(
    ("sbp", "dbp", "category", "flags"),
    [
        (118, 78, "normal", ()),
        (128, 82, "high_normal", ()),
        (145, 85, "grade1", ("isolated_systolic",)),
        (165, 95, "grade2", ()),
        (150, 112, "grade3", ()),
        (139, 89, "high_normal", ()),
    ],
)
def test_vector_17_bp(sbp: int, dbp: int, category: str, flags: tuple[str, ...]) -> None:
    result = evaluate("bp", {"sbp": sbp, "dbp": dbp})
    assert (result.category, result.flags, result.value, result.unit) == (category, flags, sbp, "mmHg")
    assert result.details["dbp"] == dbp
    assert result.rule_pack == "HTN-CN-2018"


def test_bp_130_80_option_changes_pack_and_citation() -> None:
    result = evaluate("bp", {"sbp": 132, "dbp": 78}, config=ClinicalConfig.from_options(bp_threshold="130/80"))
    assert (result.category, result.rule_pack) == ("grade1", "HTN-CN-2022")
    assert "2022" in result.citation


@pytest.mark.parametrize(
    ("fpg", "category"), [(5.8, "normal"), (6.1, "ifg"), (6.5, "ifg"), (7.0, "diabetes_range"), (7.2, "diabetes_range")]
)
def test_fpg_examples(fpg: float, category: str) -> None:
    result = evaluate("fpg", {"fpg": fpg})
    assert (result.category, result.rule_pack, result.unit) == (category, "DM-CN-2020", "mmol/L")


def test_fpg_ada_alternative() -> None:
    result = evaluate("fpg", {"fpg": 5.8}, config=ClinicalConfig.from_options(glucose="ADA"))
    assert (result.category, result.rule_pack) == ("ifg", "DM-ADA-2024")


def test_fpg_with_hba1c_in_diabetes_range() -> None:
    result = evaluate("fpg", {"fpg": 5.8, "hba1c": 6.7})
    assert result.category == "normal"
    assert result.details["hba1c_category"] == "diabetes_range"
    assert "hba1c_diabetes_range" in result.flags
    assert "hba1c_diabetes_range" not in evaluate("fpg", {"fpg": 5.8, "hba1c": 6.4}).flags


def test_lipids_model() -> None:
    result = evaluate("lipids", {"tc": 5.6, "ldl": 4.2, "hdl": 0.95, "tg": 2.0})
    assert (result.value, result.category, result.unit) == (4.65, "abnormal", "mmol/L")
    assert {"ldl_high", "hdl_low", "tc_borderline_high", "tg_borderline_high"} <= set(result.flags)
    assert result.rule_pack == "LIPID-CN-2023"


@pytest.mark.parametrize(
    ("panel", "category", "flag"),
    [
        ({"tc": 4.5, "ldl": 2.5, "hdl": 1.3, "tg": 1.2}, "desirable", None),
        ({"tc": 5.3, "ldl": 3.0, "hdl": 1.3, "tg": 1.2}, "borderline", "tc_borderline_high"),
        ({"tc": 4.5, "ldl": 2.5, "hdl": 0.9, "tg": 1.2}, "abnormal", "hdl_low"),
        ({"tc": 5.0, "ldl": 2.5, "hdl": 1.3, "tg": 6.0}, "abnormal", "pancreatitis_risk"),
        ({"tc": 7.5, "ldl": 5.0, "hdl": 1.3, "tg": 1.5}, "abnormal", "lipid_high_risk_condition"),
    ],
)
def test_lipid_overall(panel: dict[str, float], category: str, flag: str | None) -> None:
    result = evaluate("lipids", panel)
    assert result.category == category
    if flag is not None:
        assert flag in result.flags


def test_lipids_refuse_hdl_above_total() -> None:
    result = evaluate("lipids", {"tc": 1.0, "ldl": 0.5, "hdl": 1.2, "tg": 1.0})
    assert (result.value, result.category) == (None, "implausible")
    assert result.error is not None
    assert "hdl must be lower than tc" in result.error.en


@pytest.mark.parametrize(("value", "category"), [(420, "normal"), (421, "hyperuricaemia"), (450, "hyperuricaemia")])
def test_uric_acid(value: int, category: str) -> None:
    result = evaluate("uric-acid", {"uric_acid": value})
    assert (result.category, result.value, result.rule_pack) == (category, value, "UA-CN-2019")
    assert result.missing == ()


def test_uric_acid_female_threshold_needs_sex() -> None:
    config = ClinicalConfig.from_options(uric_acid_female_threshold=360)
    assert evaluate("uric-acid", {"uric_acid": 365}, config=config).missing == ("sex",)
    result = evaluate("uric-acid", {"uric_acid": 365, "sex": "female"}, config=config)
    assert (result.category, result.rule_pack) == ("hyperuricaemia", "UA-CN-2019-F360")


@pytest.mark.parametrize(
    ("sex", "age", "creatinine", "egfr", "category"),
    [
        ("male", 50, 88.4, 91.7, "G1"),  # vector 16
        ("female", 60, 70, 85.3, "G2"),  # vector 16
        ("female", 40, 53.04, 116.3, "G1"),  # own: 0.6 mg/dL, min term branch
        ("male", 70, 150, 42.9, "G3b"),  # own: 1.697 mg/dL, max term branch
        ("female", 30, 44.2, 129.3, "G1"),  # own: 0.5 mg/dL
    ],
)
def test_egfr_ckd_epi_2021(sex: str, age: int, creatinine: float, egfr: float, category: str) -> None:
    result = evaluate("egfr", {"sex": sex, "age": age, "creatinine": creatinine})
    assert (result.value, result.category) == (egfr, category)
    assert result.rule_pack == "CKD-EPI-2021+KDIGO-2012"


def test_egfr_step_by_step_man_50() -> None:
    """Spec 7.7: 1.0/0.9 = 1.1111 -> 0.8812; 0.9938^50 = 0.7328; 142 x 0.8812 x 0.7328 = 91.7."""
    assert ckd_epi_2021("male", 50, 88.4) == pytest.approx(142 * 0.8812 * 0.7328, abs=0.01)


def test_egfr_is_continuous_at_kappa() -> None:
    at_kappa = 0.9 * 88.4
    assert ckd_epi_2021("male", 50, at_kappa - 1e-9) == pytest.approx(ckd_epi_2021("male", 50, at_kappa + 1e-9))
    assert ckd_epi_2021("male", 50, at_kappa) == pytest.approx(142 * 0.9938**50)


def test_egfr_adults_only() -> None:
    result = evaluate("egfr", {"sex": "female", "age": 17, "creatinine": 60})
    assert (result.value, result.category, result.flags) == (None, "out_of_range", ("age_out_of_range",))
    assert evaluate("egfr", {"sex": "female", "age": 18, "creatinine": 60}).value is not None
