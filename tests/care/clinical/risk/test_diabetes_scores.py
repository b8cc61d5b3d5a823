"""FINDRISC (clinical-spec.md section 4) and the Chinese Diabetes Risk Score (section 5)."""

from __future__ import annotations

import pytest

from care.clinical.risk import evaluate

FINDRISC_MAN = {
    "sex": "male",
    "age": 52,
    "bmi": 27.3,
    "waist": 98,
    "physically_active": False,
    "daily_veg_fruit": True,
    "ever_bp_medication": True,
    "ever_high_glucose": False,
    "family_history_diabetes": "first_degree",
}

LOWEST = {
    "sex": "female",
    "age": 30,
    "bmi": 21.0,
    "waist": 70,
    "physically_active": True,
    "daily_veg_fruit": True,
    "ever_bp_medication": False,
    "ever_high_glucose": False,
    "family_history_diabetes": "none",
}


def findrisc_points(item: str, **changes: object) -> int:
    points = evaluate("findrisc", {**LOWEST, **changes}).details["points"]
    assert isinstance(points, dict)
    value = points[item]
    assert isinstance(value, int)
    return value


def test_vector_11_findrisc_worked_example() -> None:
    result = evaluate("findrisc", FINDRISC_MAN)
    assert result.details["points"] == {
        "age": 2, "bmi": 1, "waist": 3, "physical_activity": 2, "vegetables_fruit": 0, "bp_medication": 2,
        "high_glucose": 0, "family_history": 5,
    }  # fmt: skip
    assert (result.value, result.category, result.category_label.en) == (15, "high", "High (about 1 in 3)")
    assert result.rule_pack == "FINDRISC-2003"


@pytest.mark.parametrize(
    ("age", "points"), [(44, 0), (44.9, 0), (45, 2), (54, 2), (55, 3), (64, 3), (64.9, 3), (65, 4)]
)
def test_findrisc_age(age: float, points: int) -> None:
    assert findrisc_points("age", age=age) == points


@pytest.mark.parametrize(
    ("bmi", "points"), [(24.9, 0), (24.95, 1), (25.0, 1), (30.0, 1), (30.04, 1), (30.05, 3), (30.1, 3)]
)
def test_findrisc_bmi_inclusive_as_printed(bmi: float, points: int) -> None:
    assert findrisc_points("bmi", bmi=bmi) == points


@pytest.mark.parametrize(
    ("sex", "waist", "points"),
    [
        ("male", 93.9, 0),
        ("male", 94, 3),
        ("male", 102, 3),
        ("male", 102.5, 4),
        ("female", 79.9, 0),
        ("female", 80, 3),
        ("female", 88, 3),
        ("female", 88.5, 4),
    ],
)
def test_findrisc_waist_inclusive_as_printed(sex: str, waist: float, points: int) -> None:
    assert findrisc_points("waist", sex=sex, waist=waist) == points


@pytest.mark.parametrize(("answer", "points"), [("none", 0), ("second_degree", 3), ("first_degree", 5)])
def test_findrisc_family_history(answer: str, points: int) -> None:
    assert findrisc_points("family_history", family_history_diabetes=answer) == points


def test_findrisc_finnish_form_not_the_german_variant() -> None:
    """FINDRISK (DE/AT) scores 35-44 as 1 and 'not every day' vegetables as 2; the Finnish form does not."""
    assert findrisc_points("age", age=40) == 0
    assert findrisc_points("vegetables_fruit", daily_veg_fruit=False) == 1


@pytest.mark.parametrize(
    ("total", "category"),
    [(6, "low"), (7, "slightly_elevated"), (11, "slightly_elevated"), (12, "moderate"), (14, "moderate"),
     (15, "high"), (20, "high"), (21, "very_high"), (26, "very_high")],
)  # fmt: skip
def test_findrisc_bands(total: int, category: str) -> None:
    from care.clinical.ranges import band_pack

    assert band_pack("findrisc").classify(total).key == category


def test_findrisc_maximum_is_26() -> None:
    worst = {
        "sex": "male", "age": 70, "bmi": 35, "waist": 110, "physically_active": False, "daily_veg_fruit": False,
        "ever_bp_medication": True, "ever_high_glucose": True, "family_history_diabetes": "first_degree",
    }  # fmt: skip
    result = evaluate("findrisc", worst)
    assert (result.value, result.category) == (26, "very_high")
    assert evaluate("findrisc", LOWEST).value == 0


def test_findrisc_bmi_from_weight_and_height() -> None:
    inputs = {key: value for key, value in FINDRISC_MAN.items() if key != "bmi"}
    result = evaluate("findrisc", {**inputs, "weight": 80, "height": 171})  # 27.36 -> 27.4 -> 1 point
    assert result.value == 15
    assert evaluate("findrisc", inputs).missing == ("bmi",)


# --- CDRS ----------------------------------------------------------------------------------

CDRS_MAN = {"sex": "male", "age": 46, "bmi": 25.9, "waist": 88, "sbp": 132, "family_history_diabetes": "none"}
CDRS_WOMAN = {
    "sex": "female", "age": 33, "bmi": 21.5, "waist": 72, "sbp": 118, "family_history_diabetes": "first_degree",
}  # fmt: skip
CDRS_BASE = {"sex": "female", "age": 22, "bmi": 20.0, "waist": 60, "sbp": 100, "family_history_diabetes": "none"}


def cdrs_points(item: str, **changes: object) -> int:
    points = evaluate("cdrs", {**CDRS_BASE, **changes}).details["points"]
    assert isinstance(points, dict)
    value = points[item]
    assert isinstance(value, int)
    return value


def test_vector_12_cdrs_man() -> None:
    result = evaluate("cdrs", CDRS_MAN)
    assert result.details["points"] == {"age": 12, "bmi": 3, "waist": 7, "sbp": 6, "family_history": 0, "sex": 2}
    assert (result.value, result.category) == (30, "high")
    assert "ogtt_recommended" in result.flags
    assert "OGTT" in result.category_label.zh


def test_vector_13_cdrs_woman() -> None:
    result = evaluate("cdrs", CDRS_WOMAN)
    assert result.details["points"] == {"age": 4, "bmi": 0, "waist": 3, "sbp": 1, "family_history": 6, "sex": 0}
    assert (result.value, result.category, result.flags) == (14, "low", ())


@pytest.mark.parametrize(
    ("age", "points"),
    [(20, 0), (24, 0), (25, 4), (34, 4), (35, 8), (39, 8), (40, 11), (44, 11), (45, 12), (49, 12), (50, 13),
     (54, 13), (55, 15), (59, 15), (60, 16), (64, 16), (65, 18), (74, 18), (74.9, 18)],
)  # fmt: skip
def test_cdrs_age(age: float, points: int) -> None:
    assert cdrs_points("age", age=age) == points


@pytest.mark.parametrize(
    ("bmi", "points"),
    [(21.9, 0), (21.95, 1), (22.0, 1), (23.9, 1), (23.94, 1), (23.95, 3), (24.0, 3), (29.9, 3), (30.0, 5)],
)
def test_cdrs_bmi(bmi: float, points: int) -> None:
    assert cdrs_points("bmi", bmi=bmi) == points


@pytest.mark.parametrize(
    ("sex", "waist", "points"),
    [
        ("male", 74.9, 0), ("male", 75.0, 3), ("male", 79.9, 3), ("male", 80.0, 5), ("male", 84.9, 5),
        ("male", 85.0, 7), ("male", 89.9, 7), ("male", 90.0, 8), ("male", 94.9, 8), ("male", 95.0, 10),
        ("female", 69.9, 0), ("female", 70.0, 3), ("female", 74.9, 3), ("female", 75.0, 5), ("female", 79.9, 5),
        ("female", 80.0, 7), ("female", 84.9, 7), ("female", 85.0, 8), ("female", 89.9, 8), ("female", 90.0, 10),
    ],
)  # fmt: skip
def test_cdrs_waist(sex: str, waist: float, points: int) -> None:
    assert cdrs_points("waist", sex=sex, waist=waist) == points


@pytest.mark.parametrize(
    ("sbp", "points"),
    [(109, 0), (110, 1), (119, 1), (119.5, 3), (120, 3), (129, 3), (130, 6), (139, 6), (140, 7), (149, 7),
     (150, 8), (159, 8), (160, 10), (200, 10)],
)  # fmt: skip
def test_cdrs_sbp(sbp: float, points: int) -> None:
    assert cdrs_points("sbp", sbp=sbp) == points


@pytest.mark.parametrize(("answer", "points"), [("none", 0), ("second_degree", 0), ("first_degree", 6)])
def test_cdrs_counts_first_degree_relatives_only(answer: str, points: int) -> None:
    assert cdrs_points("family_history", family_history_diabetes=answer) == points


def test_cdrs_threshold_24_vs_25() -> None:
    # male 2 + age 55-59 15 + BMI 24-29.9 3 + waist < 75 0 + SBP 110-119 1 = 21; +3 waist 75-79.9 = 24; +1 -> 25
    base = {"sex": "male", "age": 56, "bmi": 25, "waist": 78, "sbp": 115, "family_history_diabetes": "none"}
    at_24 = evaluate("cdrs", base)
    at_25 = evaluate("cdrs", {**base, "age": 60})
    assert (at_24.value, at_24.category) == (24, "low")
    assert (at_25.value, at_25.category) == (25, "high")


def test_cdrs_maximum_is_51() -> None:
    worst = {"sex": "male", "age": 70, "bmi": 31, "waist": 100, "sbp": 170, "family_history_diabetes": "first_degree"}
    assert evaluate("cdrs", worst).value == 51


@pytest.mark.parametrize(("age", "applies"), [(19, False), (19.9, False), (20, True), (74, True), (75, False)])
def test_cdrs_applies_to_ages_20_to_74(age: float, applies: bool) -> None:
    result = evaluate("cdrs", {**CDRS_BASE, "age": age})
    assert (result.value is not None) is applies
    if not applies:
        assert (result.category, result.flags) == ("out_of_range", ("age_out_of_range",))


def test_cdrs_not_for_known_diabetes() -> None:
    result = evaluate("cdrs", {**CDRS_MAN, "diabetes": True})
    assert (result.value, result.category, result.flags) == (None, "not_applicable", ("known_diabetes",))
