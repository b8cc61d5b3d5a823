"""The indicator catalogue and the importer's resolve() (clinical-spec.md section 8, CONTRACT.md)."""

from __future__ import annotations

import re

import pytest

from care.clinical import codes
from care.clinical.codes import ImplausibleValueError, UnknownCodeError
from care.clinical.units import UnitError

# The short codes of CONTRACT.md's import template, in its order.
CONTRACT_SHORT_CODES = [
    "sbp", "dbp", "height", "weight", "bmi", "waist", "fpg", "hba1c", "tc",
    "ldl", "hdl", "tg", "ua", "alt", "ast", "cr", "egfr",
]


def test_catalogue_has_exactly_the_contract_short_codes() -> None:
    assert list(codes.INDICATORS) == CONTRACT_SHORT_CODES


@pytest.mark.parametrize(
    ("code", "loinc"),
    [
        ("sbp", "8480-6"),
        ("dbp", "8462-4"),
        ("bmi", "39156-5"),
        ("weight", "29463-7"),
        ("height", "8302-2"),
        ("waist", "8280-0"),
        ("fpg", "14771-0"),
        ("hba1c", "4548-4"),
        ("tc", "14647-2"),
        ("ldl", "22748-8"),
        ("hdl", "14646-4"),
        ("tg", "14927-8"),
        ("ua", "14933-6"),
        ("alt", "1742-6"),
        ("ast", "1920-8"),
        ("cr", "14682-9"),
        ("egfr", "98979-8"),
    ],
)
def test_molar_loinc_per_indicator(code: str, loinc: str) -> None:
    assert codes.INDICATORS[code].loinc == loinc
    assert codes.indicator(loinc).code == code


@pytest.mark.parametrize(
    ("code", "value", "unit", "loinc"),
    [
        ("fpg", 100, "mg/dL", "1558-6"),
        ("fpg", 5.5, "mmol/L", "14771-0"),
        ("tc", 200, "mg/dL", "2093-3"),
        ("ldl", 100, "mg/dL", "13457-7"),
        ("hdl", 50, "mg/dL", "2085-9"),
        ("tg", 150, "mg/dL", "2571-8"),
        ("ua", 6, "mg/dL", "3084-1"),
        ("ua", 350, "umol/L", "14933-6"),
        ("cr", 1, "mg/dL", "2160-0"),
        ("hba1c", 48, "mmol/mol", "59261-8"),
    ],
)
def test_loinc_is_chosen_by_reported_unit(code: str, value: float, unit: str, loinc: str) -> None:
    assert codes.resolve(code, value, unit).loinc == loinc


def test_egfr_is_never_mapped_to_serum_creatinine_code() -> None:
    assert codes.indicator("2160-0").code == "cr"
    assert codes.INDICATORS["egfr"].loinc == "98979-8"
    assert "2160-0" not in codes.INDICATORS["egfr"].all_loinc()


def test_resolve_converts_mass_units_with_the_analytes_own_factor() -> None:
    tc = codes.resolve("2093-3", 200, "mg/dL")
    assert tc.indicator.code == "tc"
    assert tc.value == pytest.approx(200 / 38.67)
    assert tc.unit == "mmol/L"
    assert tc.loinc == "2093-3"
    assert tc.reported_value == 200
    assert tc.reported_unit == "mg/dL"
    assert codes.resolve("tg", 177.14, "mg/dL").value == pytest.approx(2.0)
    assert codes.resolve("fpg", 126, "mg/dL").value == pytest.approx(7.0)
    assert codes.resolve("cr", 1.2, "mg/dL").value == pytest.approx(106.08)
    assert codes.resolve("ua", 7, "mg/dL").value == pytest.approx(416.36)
    assert codes.resolve("height", 1.72, "m").value == pytest.approx(172)


def test_direct_ldl_loinc_is_kept_when_given() -> None:
    assert codes.resolve("18262-6", 130, "mg/dL").loinc == "18262-6"


@pytest.mark.parametrize(
    ("code", "value", "unit"),
    [("sbp", 1350, "mmHg"), ("height", 17, "cm"), ("height", 17, "m"), ("weight", 0, "kg"), ("fpg", 0, "mmol/L")],
)
def test_implausible_values_are_rejected_with_the_indicator_named(code: str, value: float, unit: str) -> None:
    with pytest.raises(ImplausibleValueError, match=rf"^{code} is outside the plausible range") as raised:
        codes.resolve(code, value, unit)
    # The reason never repeats the (PHI) value (spec 10a), only the range.
    assert not re.search(rf"(?<![\d.\-]){value:g}(?![\d.])", str(raised.value))


@pytest.mark.parametrize(("code", "value", "unit"), [("sbp", 300, "mmHg"), ("height", 50, "cm"), ("tg", 50, "mmol/L")])
def test_plausibility_limits_are_inclusive(code: str, value: float, unit: str) -> None:
    assert codes.resolve(code, value, unit).value == value


def test_unknown_code() -> None:
    with pytest.raises(UnknownCodeError, match="unknown indicator code 'psa'"):
        codes.resolve("psa", 1, "ng/mL")
    with pytest.raises(UnknownCodeError):
        codes.resolve("2345-7", 1, "mg/dL")


def test_wrong_unit_for_indicator() -> None:
    with pytest.raises(UnitError, match="'kg' is not accepted for sbp"):
        codes.resolve("sbp", 120, "kg")


def test_non_numbers_are_rejected() -> None:
    with pytest.raises(ImplausibleValueError, match="must be a number"):
        codes.resolve("sbp", True, "mmHg")  # type: ignore[arg-type]
    with pytest.raises(ImplausibleValueError, match="must be a number"):
        codes.resolve("sbp", "120", "mmHg")  # type: ignore[arg-type]


def test_short_codes_are_case_insensitive() -> None:
    assert codes.resolve(" SBP ", 120, "mmHg").indicator.code == "sbp"


def test_display_names_in_both_languages() -> None:
    for indicator in codes.INDICATORS.values():
        assert indicator.name.zh
        assert indicator.name.en
        low, high = indicator.plausible
        assert low < high
