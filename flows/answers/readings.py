"""Read blood pressure and blood glucose from what patients write or say.

Blood pressure: ``135/85``, ``135／85``, ``135 85``, ``135*85`` (keypad), ``135 over 85``,
``高压135低压85``, ``收缩压135，舒张压85``, ``BP 128/82``, ``一百三十五，八十五``; a third number after
a slash or a pulse keyword is the pulse (``135/85/72``, ``心率72``). Plausible range: systolic 60-300,
diastolic 30-200, systolic above diastolic.

Blood glucose: ``6.1``, ``6*1`` (keypad), ``六点一``, ``空腹血糖 6.1``, ``6.1 mmol/L``,
``glucose 110 mg/dL``. mg/dL is converted to mmol/L by dividing by 18.0 (clinical-spec.md section 0);
a number without a unit above 35 is taken as mg/dL. Plausible range: 1.0-35.0 mmol/L. Words such
as 空腹/fasting or 餐后/after meal say whether the reading was fasting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flows.normalize import normalize, spell_out_numerals

GLUCOSE_MG_PER_MMOL = 18.0
SBP_RANGE = (60, 300)
DBP_RANGE = (30, 200)
PULSE_RANGE = (30, 220)
GLUCOSE_RANGE = (1.0, 35.0)
_UNITLESS_MG_ABOVE = 35.0

_PAIR = re.compile(
    r"(?<![\d.])(\d{2,3})\s*(?:/|\*|\\|over|比|:)\s*(\d{2,3})(?:\s*(?:/|\*)\s*(\d{2,3}))?(?![\d.])"
)
_SBP_WORD = re.compile(r"(?:高压|收缩压|上压|sbp|systolic|top)\D{0,6}?(\d{2,3})(?![\d.])")
_DBP_WORD = re.compile(r"(?:低压|舒张压|下压|dbp|diastolic|bottom)\D{0,6}?(\d{2,3})(?![\d.])")
PULSE_WORD = re.compile(r"(?:心率|脉搏|脉率|pulse|heart rate|hr)\D{0,6}?(\d{2,3})(?![\d.])")
_INTEGER = re.compile(r"(?<![\d.])\d{2,3}(?![\d.])")
_BP_WORDS = re.compile(r"血压|高压|低压|收缩压|舒张压|上压|下压|\bbp\b|blood pressure|mmhg|systolic|diastolic")
_GLUCOSE_WORDS = re.compile(r"血糖|glucose|sugar|\bbg\b|空腹|餐后|饭后|餐前|饭前|mmol|mg/dl|\bmg\b|fasting")
_FASTING = re.compile(r"空腹|fasting|before breakfast|早餐前|早上没吃|晨起")
_AFTER_MEAL = re.compile(r"餐后|饭后|after (?:a |the )?meal|after eating|post ?prandial|random|随机")
_HOURS = re.compile(r"(?:餐后|饭后)?\s*(?:1|2|3|一|二|两|三)\s*(?:个)?\s*(?:小时|h\b|hrs?\b|hours?\b)")
_DECIMAL_STAR = re.compile(r"(\d)\s*\*\s*(\d)")
_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?![\d.])")
_MG = re.compile(r"mg\s*/?\s*dl|\bmg\b|毫克")
_MMOL = re.compile(r"mmol|毫摩尔")
_SEPARATOR_CHARS = re.compile(r"[\s,，、;；.。-]+")


@dataclass(frozen=True, slots=True)
class BloodPressure:
    """A blood-pressure reading in mmHg, with the pulse when given."""

    sbp: int
    dbp: int
    pulse: int | None = None
    span: tuple[int, int] = (0, 0)

    def text(self) -> str:
        """Return ``"135/85"``."""
        return f"{self.sbp}/{self.dbp}"


@dataclass(frozen=True, slots=True)
class Glucose:
    """A blood-glucose reading in mmol/L, with the unit it was given in."""

    mmol: float
    input_value: float
    input_unit: str
    unit_assumed: bool
    fasting: bool | None


def prepare(text: str) -> str:
    """Return ``text`` normalised for reading numbers: NFKC, numerals as digits, lower case."""
    return spell_out_numerals(normalize(text)).casefold()


def mentions_bp(prepared: str) -> bool:
    """Return whether the text names blood pressure."""
    return _BP_WORDS.search(prepared) is not None


def mentions_glucose(prepared: str) -> bool:
    """Return whether the text names blood glucose."""
    return _GLUCOSE_WORDS.search(prepared) is not None


def find_bp(prepared: str) -> BloodPressure | str | None:
    """Return the reading in ``prepared``, ``"range"`` if numbers were found but are implausible, or None."""
    sbp = dbp = pulse = None
    span = (0, 0)
    pair = _PAIR.search(prepared)
    if pair:
        sbp, dbp = int(pair.group(1)), int(pair.group(2))
        pulse = int(pair.group(3)) if pair.group(3) else None
        span = pair.span()
    else:
        high = _SBP_WORD.search(prepared)
        low = _DBP_WORD.search(prepared)
        if high and low:
            sbp, dbp = int(high.group(1)), int(low.group(1))
            span = (min(high.start(), low.start()), max(high.end(), low.end()))
        else:
            without_pulse = PULSE_WORD.sub(" ", prepared)
            numbers = _INTEGER.findall(without_pulse)
            leftover = _SEPARATOR_CHARS.sub("", _INTEGER.sub("", without_pulse))
            if len(numbers) == 2 and (not leftover or mentions_bp(prepared)):
                sbp, dbp = int(numbers[0]), int(numbers[1])
                span = (0, len(prepared))
    if sbp is None or dbp is None:
        return None
    if pulse is None:
        found = PULSE_WORD.search(prepared)
        pulse = int(found.group(1)) if found else None
    if not (SBP_RANGE[0] <= sbp <= SBP_RANGE[1] and DBP_RANGE[0] <= dbp <= DBP_RANGE[1] and sbp > dbp):
        return "range"
    if pulse is not None and not PULSE_RANGE[0] <= pulse <= PULSE_RANGE[1]:
        pulse = None
    return BloodPressure(sbp, dbp, pulse, span)


def find_glucose(prepared: str, *, fasting_default: bool | None = None) -> Glucose | str | None:
    """Return the glucose reading in ``prepared``, ``"range"`` if implausible, or None if there is no single number."""
    cleaned = _HOURS.sub(" ", _DECIMAL_STAR.sub(r"\1.\2", prepared))
    numbers = _NUMBER.findall(cleaned)
    if len(numbers) != 1:
        return None
    value = float(numbers[0])
    if _MG.search(cleaned):
        unit, assumed = "mg/dL", False
    elif _MMOL.search(cleaned):
        unit, assumed = "mmol/L", False
    else:
        unit, assumed = ("mg/dL" if value > _UNITLESS_MG_ABOVE else "mmol/L"), True
    mmol = value / GLUCOSE_MG_PER_MMOL if unit == "mg/dL" else value
    mmol = round(mmol, 1)
    if not GLUCOSE_RANGE[0] <= mmol <= GLUCOSE_RANGE[1]:
        return "range"
    if _FASTING.search(prepared):
        fasting: bool | None = True
    elif _AFTER_MEAL.search(prepared):
        fasting = False
    else:
        fasting = fasting_default
    return Glucose(mmol, value, unit, assumed, fasting)
