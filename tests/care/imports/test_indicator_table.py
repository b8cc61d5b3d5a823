"""The indicator table alone: codes, printed names, units and conversions of a Chinese checkup."""

from __future__ import annotations

import pytest

from care.clinical import codes
from care.indicator_table import (
    BY_LOINC,
    INDICATORS,
    TABLE_ROWS,
    UnitError,
    find,
    grade_of,
    is_loinc,
)

# The short codes of CONTRACT.md's results template.
TEMPLATE_CODES = [
    "sbp", "dbp", "height", "weight", "bmi", "waist", "fpg", "hba1c", "tc", "ldl", "hdl", "tg", "ua", "alt", "ast",
    "cr", "egfr",
]


@pytest.mark.parametrize("code", TEMPLATE_CODES)
def test_the_seventeen_short_codes_keep_working_and_agree_with_the_clinical_catalogue(code: str) -> None:
    row = find(code)
    assert row is not None
    assert row.clinical
    assert (row.loinc, row.unit, row.name) == (codes.INDICATORS[code].loinc, codes.INDICATORS[code].unit,
                                               codes.INDICATORS[code].name)
    assert find(code.upper()) is row


@pytest.mark.parametrize(
    ("panel", "keys"),
    [
        ("血常规", "wbc rbc hgb hct plt neut_pct lymph_pct mono_pct eos_pct baso_pct neut_abs lymph_abs mcv mch mchc "
                 "rdw_cv mpv esr"),
        ("尿常规", "u_pro u_glu u_bld u_ket u_bil u_nit u_leu u_sg u_ph"),
        ("肝功能", "alt ast ggt alp tbil dbil alb tp"),
        ("肾功能", "cr urea bun ua egfr cysc uacr"),
        ("血脂四项", "tc tg hdl ldl"),
        ("血糖", "fpg hba1c"),
        ("电解质", "k na cl ca"),
        ("甲状腺功能", "tsh ft3 ft4"),
        ("其他", "hcy"),
    ],
)
def test_a_chinese_checkup_is_covered_panel_by_panel(panel: str, keys: str) -> None:
    for key in keys.split():
        assert key in INDICATORS, key
        row = INDICATORS[key]
        assert row.group.zh == panel, (key, row.group.zh)
        assert row.name.zh
        assert row.name.en
        assert row.loinc in row.loinc_codes


@pytest.mark.parametrize(
    ("code", "key"),
    [("2089-1", "ldl"), ("13457-7", "ldl"), ("18262-6", "ldl"), ("22748-8", "ldl"), ("4548-4", "hba1c"),
     ("17856-6", "hba1c"), ("33914-3", "egfr"), ("62238-1", "egfr"), ("98979-8", "egfr"), ("9318-7", "uacr"),
     ("718-7", "hgb"), ("4544-3", "hct"), ("6690-2", "wbc"), ("1975-2", "tbil"), ("14631-6", "tbil"),
     ("3094-0", "bun"), ("22664-7", "urea"), ("3016-3", "tsh"), ("13965-9", "hcy"), ("4537-7", "esr")],
)
def test_loinc_codes_name_their_indicator(code: str, key: str) -> None:
    found = find(code)
    assert found is not None
    assert found.key == key


def test_every_loinc_code_of_the_table_has_its_check_digit_and_one_indicator() -> None:
    assert all(is_loinc(code) for code in BY_LOINC)
    assert not is_loinc("26453-2")  # RBC is 26453-1; the check digit catches a typo
    seen: dict[str, str] = {}
    for row in TABLE_ROWS:
        for code in row.loinc_codes:
            assert seen.setdefault(code, row.key) == row.key


@pytest.mark.parametrize(
    ("printed", "key"),
    [("总胆固醇", "tc"), ("TC", "tc"), ("CHOL", "tc"), ("总胆固醇(TC)", "tc"), ("低密度脂蛋白胆固醇", "ldl"),
     ("LDL-C", "ldl"), ("ldl_c", "ldl"), ("谷丙转氨酶", "alt"), ("丙氨酸氨基转移酶", "alt"),
     ("谷丙转氨酶（ALT）", "alt"),
     ("血红蛋白", "hgb"), ("HGB", "hgb"), ("Hb", "hgb"), ("白细胞计数(WBC)", "wbc"), ("γ-谷氨酰转移酶", "ggt"),
     ("ＧＧＴ", "ggt"), ("尿素氮", "bun"), ("尿素", "urea"), ("估算肾小球滤过率", "egfr"), ("糖化血红蛋白", "hba1c"),
     ("尿糖(GLU)", "u_glu"), ("葡萄糖(GLU)", "fpg"), ("GLU", "fpg"), ("尿蛋白", "u_pro"), ("促甲状腺激素", "tsh"),
     ("游离T4", "ft4"), ("同型半胱氨酸", "hcy"), ("尿微量白蛋白/肌酐比值", "uacr"), ("钾", "k"), ("血钠", "na")],
)
def test_printed_names_and_abbreviations_name_their_indicator(printed: str, key: str) -> None:
    found = find(printed, names=True)
    assert found is not None
    assert found.key == key


def test_printed_names_and_new_short_codes_are_codes_only_in_a_tabular_report() -> None:
    # A sending system's local code "CA" or "K" is not calcium or potassium unless the clinic maps it.
    assert find("ca") is None
    assert find("K") is None
    assert find("总胆固醇") is None
    assert find("ca", names=True) is INDICATORS["ca"]
    assert find("载脂蛋白A1", names=True) is None
    assert find("脂蛋白(a)", names=True) is None


@pytest.mark.parametrize(
    ("key", "value", "unit", "canonical"),
    [
        ("hgb", 13.5, "g/dL", 135.0), ("hgb", 135, "g/L", 135.0), ("hgb", 8.38, "mmol/L", 135.0),
        ("wbc", 6.8, "10*3/uL", 6.8), ("wbc", 6.8, "×10^9/L", 6.8), ("rbc", 4.5, "10*6/uL", 4.5),
        ("hct", 0.42, "L/L", 42.0), ("mchc", 33.3, "g/dL", 333.0),
        ("tbil", 1.0, "mg/dL", 17.1), ("dbil", 0.2, "mg/dL", 3.42), ("alb", 4.5, "g/dL", 45.0),
        ("tp", 7.2, "g/dL", 72.0), ("bun", 14, "mg/dL", 4.998), ("urea", 30.03, "mg/dL", 5.0),
        ("ca", 9.4, "mg/dL", 2.345), ("na", 139, "mEq/L", 139.0), ("ft4", 1.2, "ng/dL", 15.444),
        ("ft3", 3.1, "pg/mL", 4.762), ("tsh", 2.1, "µIU/mL", 2.1), ("tsh", 2.1, "uIU/mL", 2.1),
        ("uacr", 3.0, "mg/mmol", 26.52), ("esr", 18, "mm/h", 18.0), ("u_sg", 1.02, "", 1.02),
        ("u_ph", 6.0, "[pH]", 6.0), ("hr", 72, "/min", 72.0), ("hr", 72, "次/分", 72.0),
        # The clinical indicators convert as care.clinical.units does.
        ("tc", 200, "mg/dL", 200 / 38.67), ("fpg", 126, "mg/dL", 7.0), ("cr", 1.0, "mg/dL", 88.4),
    ],
)
def test_units_convert_with_each_analytes_factor(key: str, value: float, unit: str, canonical: float) -> None:
    assert INDICATORS[key].to_canonical(value, unit) == pytest.approx(canonical, rel=1e-3)


@pytest.mark.parametrize(("key", "unit"), [("hgb", "mg/dL"), ("alt", "mmol/L"), ("tsh", "mIU/mL"), ("wbc", "g/L")])
def test_a_unit_the_indicator_does_not_take_is_refused_naming_both(key: str, unit: str) -> None:
    with pytest.raises(UnitError, match=f"unit '{unit}' is not accepted for {key}"):
        INDICATORS[key].to_canonical(1.0, unit)


@pytest.mark.parametrize(
    ("printed", "grade"),
    [("阴性", "-"), ("-", "-"), ("阴性(-)", "-"), ("－", "-"), ("Negative", "-"), ("弱阳性", "±"), ("±", "±"),
     ("Trace", "±"), ("+", "+"), ("阳性", "+"), ("＋", "+"), ("1+", "1+"), ("++", "2+"), ("3+", "3+"), ("++++", "4+")],
)
def test_test_strip_grades_are_read_as_printed(printed: str, grade: str) -> None:
    assert grade_of(printed) == grade


def test_what_is_no_grade_is_none() -> None:
    assert grade_of("很多") is None
    assert grade_of("5.5") is None


def test_plausible_ranges_come_from_the_clinical_catalogue_for_its_indicators() -> None:
    assert INDICATORS["sbp"].plausible_range() == codes.INDICATORS["sbp"].plausible
    assert not INDICATORS["sbp"].is_plausible(1350)
    assert INDICATORS["hgb"].is_plausible(135)
    assert not INDICATORS["hgb"].is_plausible(1350)
    assert INDICATORS["u_pro"].plausible_range() is None
