"""Guideline categories and reference ranges (clinical-spec.md section 7) from the versioned rule packs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from care.clinical.common import RuleDataError, display_round
from care.clinical.config import ClinicalConfig, ConfigError
from care.clinical.plausibility import ImplausibleError
from care.clinical.ranges import (
    LAB_SOURCE,
    SexRequiredError,
    classify,
    classify_bp,
    hypoglycaemia,
    load_rule_packs,
    reference_range,
    rule_packs,
)

ADA = ClinicalConfig.from_options(glucose="ADA")
WHO = ClinicalConfig.from_options(bmi="WHO")
BP_130 = ClinicalConfig.from_options(bp_threshold="130/80")
UA_F360 = ClinicalConfig.from_options(uric_acid_female_threshold=360)


def key(code: str, value: float, sex: str | None = None, config: ClinicalConfig | None = None) -> str:
    found = classify(code, value, sex=sex, config=config)
    assert found is not None
    return found.key


# --- 7.1 BMI and waist -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bmi", "expected"),
    [
        (18.44, "underweight"),
        (18.45, "normal"),  # displayed 18.5
        (18.5, "normal"),
        (23.94, "normal"),
        (23.95, "overweight"),  # displayed 24.0: the label must match what is shown
        (23.99, "overweight"),
        (24.0, "overweight"),
        (24.2, "overweight"),
        (27.9, "overweight"),
        (27.96, "obese"),
        (28.0, "obese"),
    ],
)
def test_bmi_cn_edges_on_the_displayed_value(bmi: float, expected: str) -> None:
    assert key("bmi", bmi) == expected


def test_bmi_labels_and_version() -> None:
    found = classify("bmi", 24.2)
    assert found is not None
    assert (found.label.zh, found.label.en, found.rule_pack, found.value) == ("超重", "Overweight", "BMI-CN-2013", 24.2)


@pytest.mark.parametrize(
    ("bmi", "expected"), [(24.2, "normal"), (24.9, "normal"), (25.0, "overweight"), (30.0, "obese")]
)
def test_bmi_who_option(bmi: float, expected: str) -> None:
    assert key("bmi", bmi, config=WHO) == expected


@pytest.mark.parametrize(
    ("sex", "waist", "expected"),
    [
        ("male", 84.9, "normal"),
        ("male", 85.0, "pre_central_obesity"),
        ("male", 89.9, "pre_central_obesity"),
        ("male", 90.0, "central_obesity"),
        ("female", 79.9, "normal"),
        ("female", 80.0, "pre_central_obesity"),
        ("female", 84.9, "pre_central_obesity"),
        ("female", 85.0, "central_obesity"),
    ],
)
def test_waist_by_sex(sex: str, waist: float, expected: str) -> None:
    assert key("waist", waist, sex=sex) == expected


def test_waist_needs_sex() -> None:
    with pytest.raises(SexRequiredError, match="needs the patient's sex"):
        classify("waist", 90)


# --- 7.2 blood pressure ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sbp", "dbp", "expected", "isolated"),
    [
        (118, 78, "normal", False),  # spec examples
        (128, 82, "high_normal", False),
        (145, 85, "grade1", True),
        (165, 95, "grade2", False),
        (150, 112, "grade3", False),  # DBP decides
        (119, 79, "normal", False),
        (120, 79, "high_normal", False),
        (119, 80, "high_normal", False),
        (139, 89, "high_normal", False),
        (140, 89, "grade1", True),
        (139, 90, "grade1", False),
        (159, 99, "grade1", False),
        (159.5, 70, "grade2", True),  # displayed 160, rounded half up
        (179, 109, "grade2", False),
        (180, 60, "grade3", True),
        (110, 109, "grade2", False),
    ],
)
def test_bp_cn_2018(sbp: float, dbp: float, expected: str, isolated: bool) -> None:
    found = classify_bp(sbp, dbp)
    assert found.key == expected
    assert ("isolated_systolic" in found.flags) is isolated
    assert found.rule_pack == "HTN-CN-2018"


def test_bp_labels() -> None:
    assert classify_bp(128, 82).label.zh == "正常高值"
    assert classify_bp(145, 85).label.zh == "1级高血压"
    assert classify_bp(145, 85).notes[0].en.startswith("One reading only")


@pytest.mark.parametrize(
    ("sbp", "dbp", "expected", "isolated"),
    [
        (118, 78, "normal", False),
        (125, 78, "high_normal", False),
        (128, 82, "grade1", False),
        (130, 79, "grade1", True),
        (139, 89, "grade1", False),
        (140, 85, "grade2", False),
        (120, 90, "grade2", False),
    ],
)
def test_bp_130_80_option(sbp: float, dbp: float, expected: str, isolated: bool) -> None:
    found = classify_bp(sbp, dbp, config=BP_130)
    assert (found.key, "isolated_systolic" in found.flags, found.rule_pack) == (expected, isolated, "HTN-CN-2022")


def test_single_component_grades_for_trends() -> None:
    assert key("sbp", 146) == "grade1"
    assert key("dbp", 85) == "high_normal"


# --- 7.3 glucose -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fpg", "expected"),
    [
        (5.8, "normal"),  # spec: normal in China
        (6.04, "normal"),
        (6.05, "ifg"),  # displayed 6.1
        (6.1, "ifg"),
        (6.5, "ifg"),
        (6.94, "ifg"),
        (6.95, "diabetes_range"),
        (7.0, "diabetes_range"),
        (7.2, "diabetes_range"),
    ],
)
def test_fpg_cn(fpg: float, expected: str) -> None:
    assert key("fpg", fpg) == expected


@pytest.mark.parametrize(
    ("fpg", "expected"), [(5.5, "normal"), (5.6, "ifg"), (5.8, "ifg"), (6.9, "ifg"), (7.0, "diabetes_range")]
)
def test_fpg_ada_option(fpg: float, expected: str) -> None:
    assert key("fpg", fpg, config=ADA) == expected


@pytest.mark.parametrize("config", [None, ADA])
@pytest.mark.parametrize(
    ("fpg", "expected"),
    [
        (1.0, "hypoglycaemia_level2"),  # the lowest plausible glucose (spec 10a)
        (2.5, "hypoglycaemia_level2"),  # spec 7.3: "FPG 2.5 is hypoglycaemia level 2, never normal"
        (2.94, "hypoglycaemia_level2"),
        (2.95, "hypoglycaemia_level1"),  # displayed 3.0
        (3.0, "hypoglycaemia_level1"),
        (3.8, "hypoglycaemia_level1"),
        (3.84, "hypoglycaemia_level1"),
        (3.85, "normal"),  # displayed 3.9
        (3.9, "normal"),
    ],
)
def test_low_glucose_is_hypoglycaemia_level_1_or_2(fpg: float, expected: str, config: ClinicalConfig | None) -> None:
    """中国2型糖尿病防治指南(2020年版) §低血糖: level 1 3.0-<3.9, level 2 < 3.0 mmol/L (spec 7.3)."""
    found = classify("fpg", fpg, config=config)
    assert found is not None
    assert found.key == expected
    low = expected.startswith("hypoglycaemia")
    assert found.flag == ("low" if low else "normal")
    assert ("hypoglycaemia_red_flag" in found.flags) is low


def test_hypoglycaemia_labels_and_advice_in_both_languages() -> None:
    level2, level1 = classify("fpg", 2.5), classify("fpg", 3.5)
    assert level2 is not None
    assert level1 is not None
    assert (level2.label.zh, level2.label.en) == ("低血糖(2级)", "Hypoglycaemia level 2")
    assert (level1.label.zh, level1.label.en) == ("低血糖(1级)", "Hypoglycaemia level 1")
    assert "15克" in level2.messages[0].zh
    assert "15 g" in level2.messages[0].en
    assert "低血糖" in level2.citation


@pytest.mark.parametrize(
    ("code", "value", "unit", "expected"),
    [
        ("14771-0", 2.5, "mmol/L", "hypoglycaemia_level2"),
        ("fpg", 3.5, "mmol/L", "hypoglycaemia_level1"),
        ("FPG", 3.5, "mmol/L", "hypoglycaemia_level1"),
        ("1558-6", 53, "mg/dL", "hypoglycaemia_level2"),  # 2.94 -> 2.9 mmol/L
        ("2345-7", 54, "mg/dL", "hypoglycaemia_level1"),  # random serum glucose, 3.0 mmol/L
        ("15074-8", 3.2, "mmol/L", "hypoglycaemia_level1"),  # blood
        ("14743-9", 3.8, "mmol/L", "hypoglycaemia_level1"),  # capillary, glucometer
        ("41653-7", 70, "mg/dL", None),  # 3.9 mmol/L: not low
        ("14771-0", 6.0, "mmol/L", None),
        ("14771-0", 0.5, "mmol/L", None),  # implausible: no category at all
        ("14771-0", 2.5, "kg", None),  # an impossible unit: nothing is guessed
        ("4548-4", 2.5, "%", None),  # HbA1c is not glucose
        ("8480-6", 2.5, "mmHg", None),
    ],
)
def test_hypoglycaemia_of_any_glucose_reading(code: str, value: float, unit: str, expected: str | None) -> None:
    found = hypoglycaemia(code, value, unit)
    assert (None if found is None else found.key) == expected


def test_a_low_glucose_reading_is_flagged_low_against_the_guideline_range() -> None:
    found = reference_range("fpg", "mmol/L")
    assert found is not None
    assert (found.flag(2.5), found.flag(3.9), found.flag(6.1)) == ("low", "normal", "high")


@pytest.mark.parametrize(("sbp", "dbp"), [(80, 120), (120, 120)])
def test_a_reversed_blood_pressure_gets_no_category(sbp: float, dbp: float) -> None:
    with pytest.raises(ImplausibleError, match="sbp must be higher than dbp"):
        classify_bp(sbp, dbp)


@pytest.mark.parametrize(("code", "value"), [("sbp", 59), ("fpg", 0.9), ("tc", 21), ("bmi", 10), ("egfr", 251)])
def test_an_impossible_value_gets_no_category(code: str, value: float) -> None:
    with pytest.raises(ImplausibleError, match=rf"^{code} is outside the plausible range"):
        classify(code, value)


def test_diabetes_range_asks_for_confirmation() -> None:
    found = classify("fpg", 7.2)
    assert found is not None
    assert found.label.zh == "糖尿病范围(需复查确认)"
    assert "confirm" in found.notes[0].en


@pytest.mark.parametrize(
    ("hba1c", "config", "expected"),
    [
        (6.4, None, "normal"),
        (6.5, None, "diabetes_range"),
        (5.6, ADA, "normal"),
        (5.7, ADA, "prediabetes"),
        (6.4, ADA, "prediabetes"),
        (6.5, ADA, "diabetes_range"),
    ],
)
def test_hba1c(hba1c: float, config: ClinicalConfig | None, expected: str) -> None:
    assert key("hba1c", hba1c, config=config) == expected


# --- 7.4 lipids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "value", "expected"),
    [
        ("tc", 5.6, "borderline_high"),  # spec examples
        ("ldl", 4.2, "high"),
        ("hdl", 0.95, "low"),
        ("tg", 2.0, "borderline_high"),
        ("tc", 5.19, "desirable"),
        ("tc", 5.2, "borderline_high"),
        ("tc", 6.19, "borderline_high"),
        ("tc", 6.2, "high"),
        ("ldl", 2.59, "ideal"),
        ("ldl", 2.6, "desirable"),
        ("ldl", 3.39, "desirable"),
        ("ldl", 3.4, "borderline_high"),
        ("ldl", 4.09, "borderline_high"),
        ("ldl", 4.1, "high"),
        ("hdl", 0.99, "low"),
        ("hdl", 1.0, "normal"),
        ("tg", 1.69, "desirable"),
        ("tg", 1.7, "borderline_high"),
        ("tg", 2.29, "borderline_high"),
        ("tg", 2.3, "high"),
        ("non_hdl", 3.39, "ideal"),
        ("non_hdl", 3.4, "desirable"),
        ("non_hdl", 4.1, "borderline_high"),
        ("non_hdl", 4.9, "high"),
    ],
)
def test_lipid_levels(code: str, value: float, expected: str) -> None:
    assert key(code, value) == expected


def test_tg_pancreatitis_flag() -> None:
    high = classify("tg", 5.6)
    below = classify("tg", 5.59)
    assert high is not None
    assert below is not None
    assert high.flags == ("pancreatitis_risk",)
    assert "doctor" in high.messages[0].en
    assert below.flags == ()


# --- 7.5 uric acid ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(420, "normal"), (420.4, "normal"), (420.5, "hyperuricaemia"), (421, "hyperuricaemia"), (450, "hyperuricaemia")],
)
def test_uric_acid_strictly_above_420(value: float, expected: str) -> None:
    assert key("ua", value) == expected
    assert key("ua", value, sex="female") == expected  # no sex split by default


def test_uric_acid_female_threshold_option() -> None:
    assert key("ua", 360, sex="female", config=UA_F360) == "normal"
    assert key("ua", 361, sex="female", config=UA_F360) == "hyperuricaemia"
    assert key("ua", 361, sex="male", config=UA_F360) == "normal"
    with pytest.raises(SexRequiredError):
        classify("ua", 361, config=UA_F360)


# --- 7.7 eGFR --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("egfr", "expected"),
    [
        (89.96, "G1"),  # displayed 90.0
        (89.94, "G2"),
        (90.0, "G1"),
        (60.0, "G2"),
        (59.95, "G2"),
        (59.9, "G3a"),
        (45.0, "G3a"),
        (44.9, "G3b"),
        (30.0, "G3b"),
        (29.9, "G4"),
        (15.0, "G4"),
        (14.9, "G5"),
    ],
)
def test_egfr_kdigo(egfr: float, expected: str) -> None:
    assert key("egfr", egfr) == expected


def test_indicators_without_category() -> None:
    assert classify("alt", 80) is None
    assert classify("height", 170) is None


# --- reference ranges ------------------------------------------------------------------------


def test_lab_printed_range_always_wins() -> None:
    lab = reference_range("fpg", "mmol/L", lab_low=3.9, lab_high=6.1)
    assert lab is not None
    assert lab.source == LAB_SOURCE
    assert (lab.flag(3.8), lab.flag(3.9), lab.flag(6.1), lab.flag(6.2)) == ("low", "normal", "normal", "high")
    alt = reference_range("alt", "U/L", sex="male", lab_high=40)
    assert alt is not None
    assert alt.flag(45) == "high"


@pytest.mark.parametrize(
    ("code", "sex", "age", "text"),
    [
        ("alt", "male", 40, "9-50"),
        ("alt", "female", 40, "7-40"),
        ("ast", "male", 40, "15-40"),
        ("ast", "female", 40, "13-35"),
        ("cr", "male", 45, "57-97"),
        ("cr", "male", 60, "57-111"),
        ("cr", "female", 59, "41-73"),
        ("cr", "female", 79, "41-81"),
        ("ua", "male", 40, "208-428"),
        ("ua", "female", 40, "155-357"),
    ],
)
def test_wst404_fallback_intervals(code: str, sex: str, age: float, text: str) -> None:
    found = reference_range(code, "U/L", sex=sex, age=age)
    assert found is not None
    assert found.text(0) == text
    assert found.source == "WST404-2012/2015"


def test_fallback_interval_is_inclusive() -> None:
    alt = reference_range("alt", "U/L", sex="male")
    assert alt is not None
    assert (alt.flag(8), alt.flag(9), alt.flag(50), alt.flag(51)) == ("low", "normal", "normal", "high")


def test_no_guessing_without_sex_or_outside_age_bands() -> None:
    assert reference_range("alt", "U/L") is None
    assert reference_range("cr", "µmol/L", sex="male", age=85) is None
    assert reference_range("cr", "µmol/L", sex="male") is None
    assert reference_range("waist", "cm") is None
    assert reference_range("height", "cm") is None


@pytest.mark.parametrize(
    ("code", "config", "text", "below", "above"),
    [
        ("sbp", None, "<140", ("normal", 139), ("high", 140)),
        ("sbp", BP_130, "<130", ("normal", 129), ("high", 130)),
        ("dbp", None, "<90", ("normal", 89), ("high", 90)),
        ("bmi", None, "18.5-<24.0", ("low", 18.4), ("high", 24.0)),
        ("fpg", None, "3.9-<6.1", ("low", 3.8), ("high", 6.1)),
        ("fpg", ADA, "3.9-<5.6", ("low", 3.8), ("high", 5.6)),
        ("tc", None, "<5.20", ("normal", 5.19), ("high", 5.2)),
        ("ldl", None, "<3.40", ("normal", 3.39), ("high", 3.4)),
        ("hdl", None, "≥1.00", ("low", 0.99), ("normal", 1.0)),
        ("tg", None, "<1.70", ("normal", 1.69), ("high", 1.7)),
        ("egfr", None, "≥60.0", ("low", 59.9), ("normal", 60.0)),
    ],
)
def test_guideline_reference_ranges(
    code: str, config: ClinicalConfig | None, text: str, below: tuple[str, float], above: tuple[str, float]
) -> None:
    found = reference_range(code, "unit", config=config)
    assert found is not None
    places = {"sbp": 0, "dbp": 0, "bmi": 1, "fpg": 1, "egfr": 1}.get(code, 2)
    assert found.text(places) == text
    assert found.flag(below[1]) == below[0]
    assert found.flag(above[1]) == above[0]


def test_waist_reference_by_sex() -> None:
    men = reference_range("waist", "cm", sex="male")
    women = reference_range("waist", "cm", sex="female")
    assert men is not None
    assert women is not None
    assert (men.high, women.high) == (85.0, 80.0)


# --- the rule packs themselves ---------------------------------------------------------------


def test_every_pack_has_citation_version_and_bilingual_labels() -> None:
    packs = rule_packs()
    assert set(packs.schemes) >= {"bmi", "waist", "bp", "fpg", "hba1c", "tc", "ldl", "hdl", "tg", "ua", "egfr"}
    for scheme in packs.schemes.values():
        assert scheme.default in scheme.packs
        for name, pack in scheme.packs.items():
            assert pack.name == name
            assert pack.citation
            assert pack.confidence in ("V2", "V1", "U")


# No deadline: the suite shares CI machines, and a slow first call is not a failure.
@settings(deadline=None)
@given(st.floats(min_value=10.05, max_value=80))
def test_category_always_matches_the_displayed_value(bmi: float) -> None:
    shown = display_round(bmi, 1)
    assert key("bmi", bmi) == key("bmi", shown)
    found = classify("bmi", bmi)
    assert found is not None
    assert found.value == shown


GOOD_PACK = """
schemes:
  demo:
    title: {zh: 演示, en: Demo}
    default: DEMO-1
    packs:
      DEMO-1:
        citation: test
        confidence: V2
        decimals: 1
        bands:
          - {key: low, zh: 低, en: Low, below: 1.0, flag: low}
          - {key: ok, zh: 正常, en: Normal, from: 1.0, flag: normal}
reference_intervals:
  version: R-1
  citation: test
  intervals: {}
"""


def test_a_well_formed_pack_loads() -> None:
    packs = load_rule_packs(GOOD_PACK)
    assert packs.pack("demo").name == "DEMO-1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("from: 1.0, flag: normal", "from: 1.5, flag: normal"), "gap or overlap"),
        (("from: 1.0, flag: normal", "above: 1.0, flag: normal"), "in both or neither"),
        (("en: Low, ", ""), "both 'zh' and 'en'"),
        (("default: DEMO-1", "default: DEMO-2"), "default pack 'DEMO-2' is not defined"),
        (("flag: low", "flag: bad"), "'flag' must be one of"),
        (("citation: test\n        confidence", "confidence"), "a 'citation' is required"),
        (("below: 1.0, flag: low", "below: 1.0, to: 2, flag: low"), "either 'below' or 'to'"),
        (("flag: normal}", "flag: high}"), "at least one band must be flagged normal"),
        (("en: Low,", "en: Low, very,"), r"unknown keys \['very'\]"),
    ],
)
def test_malformed_packs_are_refused_when_loaded(change: tuple[str, str], message: str) -> None:
    broken = GOOD_PACK.replace(*change, 1)
    assert broken != GOOD_PACK
    with pytest.raises(RuleDataError, match=message):
        load_rule_packs(broken)


def test_config_rejects_unknown_choices() -> None:
    with pytest.raises(ConfigError, match="unknown bp option '135/85'"):
        ClinicalConfig.from_options(bp_threshold="135/85")
    with pytest.raises(ConfigError, match="unknown rule pack 'HTN-XX' for bp"):
        ClinicalConfig(packs={"bp": "HTN-XX"})
    with pytest.raises(ConfigError, match="unknown rule scheme 'psa'"):
        ClinicalConfig(packs={"psa": "X"})
    with pytest.raises(ConfigError, match="age policy"):
        ClinicalConfig(china_par_age_policy="ignore")  # type: ignore[arg-type]
