"""BMI and its category (Chinese adults by default).

Source: WS/T 428-2013《成人体重判定》 (clinical-spec.md 7.1); WHO categories as the configurable
international option. BMI = kg / m², rounded to 1 decimal, then classified (spec section 0).
Adults only (spec 10a: children use other standards): with an ``age`` under 18 the result is
``out_of_range``; without an age the reading is taken as an adult's.

Inputs (JSON)::

    {"weight": 70, "height": 170}        or        {"bmi": 24.2, "age": 45}
"""

from __future__ import annotations

from care.clinical.common import Label
from care.clinical.config import ClinicalConfig
from care.clinical.risk.base import INPUTS, Population, RiskModel, RiskResult, Values, register


@register
class BodyMassIndex(RiskModel):
    """BMI category (WS/T 428-2013; spec 7.1)."""

    name = "bmi"
    title = Label("体重指数(BMI)", "Body-mass index (BMI)")
    citation = "WS/T 428-2013 成人体重判定"
    version = "BMI"
    category_only = True
    scheme = "bmi"
    unit = "kg/m2"
    inputs = tuple(INPUTS[name] for name in ("weight", "height", "bmi", "age"))
    required = ("bmi",)
    validated_population = Population(min_age=18)

    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Round BMI to 1 decimal and classify it."""
        pack = self.pack(config)
        bmi = values.number("bmi")
        return self.categorised(values, pack.classify(bmi), details={"bmi_unrounded": bmi})
