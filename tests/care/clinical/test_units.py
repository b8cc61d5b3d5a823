"""Unit conversions into canonical units (clinical-spec.md section 0)."""

from __future__ import annotations

import math

import pytest

from care.clinical import units
from care.clinical.units import UnitError


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "expected"),
    [
        ("fpg", 126, "mg/dL", 7.0),  # 7.0 mmol/L ≈ 126 mg/dL with the factor 18.0
        ("fpg", 99, "mg/dl", 5.5),
        ("tc", 200, "mg/dL", 200 / 38.67),
        ("ldl", 100, "mg/dL", 100 / 38.67),
        ("hdl", 38.67, "mg/dL", 1.0),
        ("tg", 88.57, "mg/dL", 1.0),  # TG has its own factor, not the cholesterol one
        ("tg", 150, "mg/dL", 150 / 88.57),
        ("cr", 1.0, "mg/dL", 88.4),
        ("ua", 7.0, "mg/dL", 7.0 * 59.48),
        ("ua", 0.42, "mmol/L", 420.0),
        ("height", 1.70, "m", 170.0),
        ("height", 1700, "mm", 170.0),
        ("waist", 0.85, "m", 85.0),
        ("weight", 70500, "g", 70.5),
        ("sbp", 16, "kPa", 16 * 7.50062),
        ("sbp", 120, "mm[Hg]", 120.0),
        ("hba1c", 48, "mmol/mol", 48 / 10.929 + 2.15),
        ("egfr", 90, "mL/min/{1.73_m2}", 90.0),
        ("alt", 40, "IU/L", 40.0),
    ],
)
def test_to_canonical(analyte: str, value: float, unit: str, expected: float) -> None:
    assert units.to_canonical(analyte, value, unit) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("spelling", ["umol/L", "µmol/L", "μmol/L", "UMOL/L", " umol / L "])
def test_micromole_spellings_are_one_unit(spelling: str) -> None:
    assert units.normalize_unit(spelling) == "µmol/L"
    assert units.to_canonical("cr", 80, spelling) == 80


def test_uric_acid_420_is_about_7_mg_dl() -> None:
    assert units.from_canonical("ua", 420, "mg/dL") == pytest.approx(7.06, abs=0.005)


def test_hba1c_ngsp_ifcc_round_trip() -> None:
    assert units.hba1c_ifcc_from_ngsp(6.5) == pytest.approx((6.5 - 2.15) * 10.929)
    assert units.hba1c_ifcc_from_ngsp(6.5) == pytest.approx(47.54, abs=0.01)
    assert units.hba1c_ngsp_from_ifcc(units.hba1c_ifcc_from_ngsp(7.3)) == pytest.approx(7.3)
    assert units.convert("hba1c", 6.5, "%", "mmol/mol") == pytest.approx(47.54, abs=0.01)


def test_convert_between_two_non_canonical_units() -> None:
    assert units.convert("height", 1.7, "m", "mm") == pytest.approx(1700)


def test_unknown_unit_names_analyte_and_unit() -> None:
    with pytest.raises(UnitError, match=r"'mg/dL' is not accepted for sbp"):
        units.to_canonical("sbp", 120, "mg/dL")
    with pytest.raises(UnitError, match=r"'furlong' is not accepted for height"):
        units.to_canonical("height", 1, "furlong")


def test_unknown_analyte() -> None:
    with pytest.raises(UnitError, match="unknown analyte 'psa'"):
        units.to_canonical("psa", 1, "ng/mL")


def test_non_finite_value_is_refused() -> None:
    with pytest.raises(UnitError, match="finite"):
        units.to_canonical("fpg", math.nan, "mmol/L")


def test_every_analyte_converts_its_canonical_unit_to_itself() -> None:
    for analyte, unit in units.CANONICAL_UNITS.items():
        assert units.to_canonical(analyte, 12.5, unit) == 12.5
