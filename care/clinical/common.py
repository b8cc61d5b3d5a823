"""Shared vocabulary of the clinical package: bilingual labels, display rounding, errors, disclaimer.

Everything here is pure and immutable, so results can be cached, compared in tests and stored as JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")


@dataclass(frozen=True, slots=True)
class Label:
    """A piece of product text in Chinese (first) and English."""

    zh: str
    en: str

    def get(self, lang: Lang) -> str:
        """Return the text in ``lang``."""
        return self.zh if lang == "zh" else self.en

    def to_dict(self) -> dict[str, str]:
        """Return ``{"zh": ..., "en": ...}`` for JSON storage."""
        return {"zh": self.zh, "en": self.en}

    @classmethod
    def from_mapping(cls, data: object, where: str) -> Label:
        """Build a label from ``{"zh": ..., "en": ...}``; raise :class:`RuleDataError` naming ``where``."""
        if not isinstance(data, dict):
            raise RuleDataError(f"{where}: expected a mapping with 'zh' and 'en'")
        zh, en = data.get("zh"), data.get("en")
        if not isinstance(zh, str) or not zh.strip() or not isinstance(en, str) or not en.strip():
            raise RuleDataError(f"{where}: both 'zh' and 'en' texts are required")
        return cls(zh=zh, en=en)


#: The standard disclaimer carried by every patient-facing result (clinical-spec.md, preamble).
DISCLAIMER = Label(
    zh="本结果用于健康管理的决策支持，不是医学诊断。如有不适或疑问，请咨询您的医生。",
    en="This is decision support for your health management, not a diagnosis. "
    "If you feel unwell or have questions, please talk to your doctor.",
)


class ClinicalError(ValueError):
    """Base class of every error raised by ``care.clinical``; the message is one clear line."""


class RuleDataError(ClinicalError):
    """A packaged rule file (YAML) is malformed; raised when it is first loaded."""


def display_round(value: float, places: int) -> float:
    """Round ``value`` half away from zero to ``places`` decimals, as a person rounds on paper.

    Python's ``round`` rounds half to even (``round(118.5) == 118``) and works on the binary float,
    so ``round(2.675, 2) == 2.67``. Categories are applied to the displayed value
    (clinical-spec.md section 0), so the displayed value must be the one a reader expects.
    """
    if not math.isfinite(value):
        raise ClinicalError(f"cannot round a non-finite number: {value!r}")
    quantum = Decimal(1).scaleb(-places)
    rounded = Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP)
    return float(rounded)


def format_number(value: float, places: int) -> str:
    """Format ``value`` with exactly ``places`` decimals after :func:`display_round`."""
    return f"{display_round(value, places):.{places}f}"
