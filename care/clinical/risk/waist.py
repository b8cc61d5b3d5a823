"""Waist circumference and central obesity (Chinese adults).

Source: WS/T 428-2013《成人体重判定》 (clinical-spec.md 7.1): men 85-89.9 cm pre-central obesity,
>= 90 central obesity; women 80-84.9 and >= 85. Adults only (spec 10a): with an ``age`` under 18
the result is ``out_of_range``.

Inputs (JSON)::

    {"sex": "male", "waist": 92}        or        {"sex": "male", "waist": 92, "age": 45}
"""

from __future__ import annotations

from care.clinical.common import Label
from care.clinical.config import ClinicalConfig
from care.clinical.risk.base import INPUTS, Population, RiskModel, RiskResult, Values, register


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
    inputs = tuple(INPUTS[name] for name in ("sex", "waist", "age"))
    required = ("sex", "waist")
    validated_population = Population(min_age=18)

    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Classify the waist by sex."""
        classification = self.pack(config).classify(values.number("waist"), values.choice("sex"))
        return self.categorised(values, classification)
