"""LOINC codes: the check digit, and the short codes that flows and facts use for common indicators.

Source of the table: clinical-spec.md section 8 (molar units, as Chinese reports print them).
"""

from __future__ import annotations

import re

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"

#: Short code -> (LOINC code, canonical unit as the import contract spells it).
SHORT_CODES: dict[str, tuple[str, str]] = {
    "sbp": ("8480-6", "mmHg"),
    "dbp": ("8462-4", "mmHg"),
    "bmi": ("39156-5", "kg/m2"),
    "weight": ("29463-7", "kg"),
    "height": ("8302-2", "cm"),
    "waist": ("8280-0", "cm"),
    "hr": ("8867-4", "/min"),
    "fpg": ("14771-0", "mmol/L"),
    "hba1c": ("4548-4", "%"),
    "tc": ("14647-2", "mmol/L"),
    "ldl": ("22748-8", "mmol/L"),
    "hdl": ("14646-4", "mmol/L"),
    "tg": ("14927-8", "mmol/L"),
    "ua": ("14933-6", "umol/L"),
    "alt": ("1742-6", "U/L"),
    "ast": ("1920-8", "U/L"),
    "cr": ("14682-9", "umol/L"),
    "egfr": ("98979-8", "mL/min/1.73m2"),
    "phq9": ("44261-6", "{score}"),
    "gad7": ("70274-6", "{score}"),
}

#: LOINC code -> short code.
LOINC_TO_SHORT: dict[str, str] = {code: short for short, (code, _unit) in SHORT_CODES.items()}

#: Unit as written in flows and events -> UCUM code (for FHIR).
UCUM: dict[str, str] = {
    "mmHg": "mm[Hg]",
    "mmol/L": "mmol/L",
    "mg/dL": "mg/dL",
    "kg": "kg",
    "cm": "cm",
    "kg/m2": "kg/m2",
    "%": "%",
    "umol/L": "umol/L",
    "U/L": "U/L",
    "/min": "/min",
    "h": "h",
    "min": "min",
    "mL/min/1.73m2": "mL/min/{1.73_m2}",
    "{score}": "{score}",
}

_LOINC = re.compile(r"^(\d{1,7})-(\d)$")
_ANSWER = re.compile(r"^LA\d{1,7}-\d$")


def loinc_check_digit(number: str) -> int:
    """Return the LOINC check digit (mod 10) of the part of a code before the hyphen."""
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            total += digit // 10 + digit % 10
        else:
            total += digit
    return (10 - total % 10) % 10


def is_valid_loinc(code: str) -> bool:
    """Return whether ``code`` is a LOINC code with the right check digit (``68509-9`` yes, ``68509-1`` no)."""
    match = _LOINC.match(code)
    if match is None:
        return False
    return loinc_check_digit(match.group(1)) == int(match.group(2))


def is_valid_answer_code(code: str) -> bool:
    """Return whether ``code`` has the form of a LOINC answer code (``LA6568-5``)."""
    return bool(_ANSWER.match(code))
