"""Waist circumference and central obesity (Chinese adults).

Source: WS/T 428-2013《成人体重判定》 (clinical-spec.md 7.1): men 85-89.9 cm pre-central obesity,
>= 90 central obesity; women 80-84.9 and >= 85.

Inputs (JSON)::

    {"sex": "male", "waist": 92}
"""

from __future__ import annotations

from care.clinical.common import Label
from care.clinical.config import ClinicalConfig
from care.clinical.risk.base import INPUTS, RiskModel, RiskResult, Values, register


@register
class Waist(RiskModel):
    """Central obesity category (WS/T 428-2013; spec 7.1)."""

    name = "waist"
    title = Label("腰围(中心型肥胖)", "Waist circumference (central obesity)")
    citation = "WS/T 428-2013 成人体重判定"
    version = "WAIST"
    category_only = True
    scheme = "waist"
    unit = "cm"
    inputs = tuple(INPUTS[name] for name in ("sex", "waist"))
    required = ("sex", "waist")

    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Classify the waist by sex."""
        classification = self.pack(config).classify(values.number("waist"), values.choice("sex"))
        return self.categorised(values, classification)
