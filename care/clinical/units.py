"""Canonical units per analyte and the conversions into them.

Source: clinical-spec.md section 0 (global conventions) and the CONTRACT.md import template.
Canonical units: lipids and glucose mmol/L, creatinine and uric acid µmol/L, blood pressure mmHg,
waist and height cm, weight kg, HbA1c % (NGSP), enzymes U/L, eGFR mL/min/1.73m2.

Every conversion is a registry entry ``(analyte, unit) -> Conversion``; an unknown pair raises
:class:`UnitError` naming both, never a guess.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from care.clinical.common import ClinicalError

#: Cholesterol (TC, LDL-C, HDL-C, non-HDL-C): mg/dL = mmol/L x 38.67 (= 1/0.02586). Spec section 0.
CHOLESTEROL_MGDL_PER_MMOLL = 38.67
#: China-PAR uses the paper's own factor, mmol/L / 0.0259. Spec section 0 and 1.1.
CHINA_PAR_CHOLESTEROL_MMOLL_PER_MGDL = 0.0259
#: Triglycerides: mg/dL = mmol/L x 88.57 (= 1/0.01129). Spec section 0.
TRIGLYCERIDE_MGDL_PER_MMOLL = 88.57
#: Glucose: mg/dL = mmol/L x 18.0 (7.0 mmol/L = 126 mg/dL). Spec section 0.
GLUCOSE_MGDL_PER_MMOLL = 18.0
#: Creatinine: mg/dL = µmol/L / 88.4. Spec section 0 and 7.7.
CREATININE_UMOLL_PER_MGDL = 88.4
#: Uric acid: mg/dL = µmol/L / 59.48 (420 µmol/L = 7.06 mg/dL). Spec section 0.
URIC_ACID_UMOLL_PER_MGDL = 59.48
#: HbA1c: IFCC mmol/mol = (NGSP % - 2.15) x 10.929. Spec section 0.
HBA1C_IFCC_SLOPE = 10.929
HBA1C_IFCC_OFFSET = 2.15
#: 1 kPa = 7.50062 mmHg (older Chinese reports print blood pressure in kPa).
MMHG_PER_KPA = 7.50062


class UnitError(ClinicalError):
    """A unit that is not known for the analyte, or an analyte without conversions."""


@dataclass(frozen=True, slots=True)
class Conversion:
    """``canonical = value * factor + offset``."""

    factor: float
    offset: float = 0.0

    def forward(self, value: float) -> float:
        """Convert a value in the source unit to the canonical unit."""
        return value * self.factor + self.offset

    def backward(self, value: float) -> float:
        """Convert a value in the canonical unit back to the source unit."""
        return (value - self.offset) / self.factor


def _same() -> Conversion:
    return Conversion(1.0)


_MMOL = "mmol/L"
_UMOL = "µmol/L"

#: analyte -> canonical unit. Analytes are the indicator short codes plus ``non_hdl``.
CANONICAL_UNITS: dict[str, str] = {
    "sbp": "mmHg",
    "dbp": "mmHg",
    "height": "cm",
    "weight": "kg",
    "bmi": "kg/m2",
    "waist": "cm",
    "fpg": _MMOL,
    "hba1c": "%",
    "tc": _MMOL,
    "ldl": _MMOL,
    "hdl": _MMOL,
    "non_hdl": _MMOL,
    "tg": _MMOL,
    "ua": _UMOL,
    "alt": "U/L",
    "ast": "U/L",
    "cr": _UMOL,
    "egfr": "mL/min/1.73m2",
}


def _cholesterol() -> dict[str, Conversion]:
    return {_MMOL: _same(), "mg/dL": Conversion(1 / CHOLESTEROL_MGDL_PER_MMOLL)}


def _pressure() -> dict[str, Conversion]:
    return {"mmHg": _same(), "kPa": Conversion(MMHG_PER_KPA)}


def _enzyme() -> dict[str, Conversion]:
    return {"U/L": _same()}


#: analyte -> {unit -> conversion into the canonical unit}.
CONVERSIONS: dict[str, dict[str, Conversion]] = {
    "sbp": _pressure(),
    "dbp": _pressure(),
    "height": {"cm": _same(), "m": Conversion(100.0), "mm": Conversion(0.1)},
    "weight": {"kg": _same(), "g": Conversion(0.001)},
    "bmi": {"kg/m2": _same()},
    "waist": {"cm": _same(), "m": Conversion(100.0), "mm": Conversion(0.1)},
    "fpg": {_MMOL: _same(), "mg/dL": Conversion(1 / GLUCOSE_MGDL_PER_MMOLL)},
    "hba1c": {
        "%": _same(),
        # IFCC mmol/mol -> NGSP %: % = mmol/mol / 10.929 + 2.15
        "mmol/mol": Conversion(1 / HBA1C_IFCC_SLOPE, HBA1C_IFCC_OFFSET),
    },
    "tc": _cholesterol(),
    "ldl": _cholesterol(),
    "hdl": _cholesterol(),
    "non_hdl": _cholesterol(),
    "tg": {_MMOL: _same(), "mg/dL": Conversion(1 / TRIGLYCERIDE_MGDL_PER_MMOLL)},
    "ua": {_UMOL: _same(), "mg/dL": Conversion(URIC_ACID_UMOLL_PER_MGDL), "mmol/L": Conversion(1000.0)},
    "alt": _enzyme(),
    "ast": _enzyme(),
    "cr": {_UMOL: _same(), "mg/dL": Conversion(CREATININE_UMOLL_PER_MGDL), "mmol/L": Conversion(1000.0)},
    "egfr": {"mL/min/1.73m2": _same()},
}

# Spellings seen on printed reports and in HL7/FHIR (UCUM) -> the spelling used above.
_ALIASES: dict[str, str] = {
    "mmhg": "mmHg",
    "mm[hg]": "mmHg",
    "kpa": "kPa",
    "cm": "cm",
    "m": "m",
    "mm": "mm",
    "kg": "kg",
    "g": "g",
    "kg/m2": "kg/m2",
    "kg/m^2": "kg/m2",
    "kg/m²": "kg/m2",
    "mmol/l": "mmol/L",
    "mg/dl": "mg/dL",
    "umol/l": _UMOL,
    "µmol/l": _UMOL,  # MICRO SIGN U+00B5
    "μmol/l": _UMOL,  # GREEK SMALL LETTER MU U+03BC
    "%": "%",
    "mmol/mol": "mmol/mol",
    "u/l": "U/L",
    "iu/l": "U/L",
    "[iu]/l": "U/L",
    "ml/min/1.73m2": "mL/min/1.73m2",
    "ml/min/1.73m^2": "mL/min/1.73m2",
    "ml/min/1.73m²": "mL/min/1.73m2",
    "ml/min/{1.73_m2}": "mL/min/1.73m2",
    "ml/min/1.73_m2": "mL/min/1.73m2",
}

_SPACES = re.compile(r"\s+")


def normalize_unit(unit: str) -> str:
    """Return the canonical spelling of a printed unit (``umol/L`` and ``µmol/L`` are one unit).

    Raises :class:`UnitError` for a spelling that is not known at all.
    """
    key = _SPACES.sub("", unit).lower()
    try:
        return _ALIASES[key]
    except KeyError:
        raise UnitError(f"unknown unit {unit!r}") from None


def canonical_unit(analyte: str) -> str:
    """Return the canonical unit of ``analyte``; raise :class:`UnitError` if the analyte is unknown."""
    try:
        return CANONICAL_UNITS[analyte]
    except KeyError:
        raise UnitError(f"unknown analyte {analyte!r}") from None


def conversion(analyte: str, unit: str) -> Conversion:
    """Return the conversion of ``unit`` into the canonical unit of ``analyte``.

    Raises :class:`UnitError` naming the analyte and the unit when the pair is not known.
    """
    table = CONVERSIONS.get(analyte)
    if table is None:
        raise UnitError(f"unknown analyte {analyte!r}")
    try:
        spelled = normalize_unit(unit)
    except UnitError:
        spelled = None
    found = table.get(spelled) if spelled is not None else None
    if found is None:
        accepted = ", ".join(sorted(table))
        raise UnitError(f"unit {unit!r} is not accepted for {analyte} (accepted: {accepted})")
    return found


def to_canonical(analyte: str, value: float, unit: str) -> float:
    """Convert ``value`` given in ``unit`` to the canonical unit of ``analyte``."""
    if not math.isfinite(value):
        raise UnitError(f"{analyte}: the value must be a finite number, got {value!r}")
    return conversion(analyte, unit).forward(value)


def from_canonical(analyte: str, value: float, unit: str) -> float:
    """Convert ``value`` in the canonical unit of ``analyte`` to ``unit``."""
    return conversion(analyte, unit).backward(value)


def convert(analyte: str, value: float, from_unit: str, to_unit: str) -> float:
    """Convert ``value`` of ``analyte`` from ``from_unit`` to ``to_unit`` through the canonical unit."""
    return from_canonical(analyte, to_canonical(analyte, value, from_unit), to_unit)


def hba1c_ifcc_from_ngsp(percent: float) -> float:
    """Return HbA1c in IFCC mmol/mol from NGSP %: (% - 2.15) x 10.929 (spec section 0)."""
    return (percent - HBA1C_IFCC_OFFSET) * HBA1C_IFCC_SLOPE


def hba1c_ngsp_from_ifcc(mmol_per_mol: float) -> float:
    """Return HbA1c in NGSP % from IFCC mmol/mol (inverse of :func:`hba1c_ifcc_from_ngsp`)."""
    return mmol_per_mol / HBA1C_IFCC_SLOPE + HBA1C_IFCC_OFFSET


def cholesterol_mgdl(mmol_per_l: float) -> float:
    """Return cholesterol in mg/dL from mmol/L with the general factor 38.67 (spec section 0)."""
    return mmol_per_l * CHOLESTEROL_MGDL_PER_MMOLL


def creatinine_mgdl(umol_per_l: float) -> float:
    """Return creatinine in mg/dL from µmol/L: / 88.4 (spec section 0)."""
    return umol_per_l / CREATININE_UMOLL_PER_MGDL
