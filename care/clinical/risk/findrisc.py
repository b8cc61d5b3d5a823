"""FINDRISC, the Finnish Diabetes Risk Score (0-26 points).

Source: Lindström J, Tuomilehto J. The diabetes risk score: a practical tool to predict type 2
diabetes risk. Diabetes Care 2003;26(3):725-731, doi:10.2337/diacare.26.3.725; the published Finnish
patient form (clinical-spec.md section 4). Not the German/Austrian FINDRISK variant. Boundaries are
inclusive as printed: BMI 30.0 scores 1 and 30.1 scores 3; waist 102 scores 3 and 102.5 scores 4.
BMI is rounded to 1 decimal first (spec section 0); age counts in whole years. Adults only (spec 10a):
under 18 the result is ``out_of_range``.

Inputs (JSON)::

    {"sex": "male", "age": 52, "bmi": 27.3, "waist": 98, "physically_active": false,
     "daily_veg_fruit": true, "ever_bp_medication": true, "ever_high_glucose": false,
     "family_history_diabetes": "first_degree"}
"""

from __future__ import annotations

import math

from care.clinical.common import Label, display_round
from care.clinical.config import ClinicalConfig
from care.clinical.risk.base import INPUTS, Population, RiskModel, RiskResult, Values, register
from care.clinical.risk.points import PointTable, above, at_least, below, closed, span

AGE = PointTable("findrisc age", ((below(45), 0), (span(45, 55), 2), (span(55, 65), 3), (at_least(65), 4)))
BMI = PointTable("findrisc bmi", ((below(25), 0), (closed(25, 30), 1), (above(30), 3)))
WAIST = {
    "male": PointTable("findrisc waist men", ((below(94), 0), (closed(94, 102), 3), (above(102), 4))),
    "female": PointTable("findrisc waist women", ((below(80), 0), (closed(80, 88), 3), (above(88), 4))),
}
FAMILY_HISTORY = {"none": 0, "second_degree": 3, "first_degree": 5}
INACTIVE_POINTS = 2
NOT_DAILY_VEG_POINTS = 1
BP_MEDICATION_POINTS = 2
HIGH_GLUCOSE_POINTS = 5


@register
class Findrisc(RiskModel):
    """FINDRISC (Lindström & Tuomilehto 2003; spec section 4)."""

    name = "findrisc"
    title = Label("芬兰糖尿病风险评分(FINDRISC)", "Finnish Diabetes Risk Score (FINDRISC)")
    citation = "Lindström J, Tuomilehto J. Diabetes Care 2003;26(3):725-731, doi:10.2337/diacare.26.3.725"
    version = "FINDRISC-2003"
    scheme = "findrisc"
    unit = "points"
    inputs = tuple(
        INPUTS[name]
        for name in (
            "sex", "age", "bmi", "weight", "height", "waist", "physically_active", "daily_veg_fruit",
            "ever_bp_medication", "ever_high_glucose", "family_history_diabetes",
        )
    )
    required = (
        "sex", "age", "bmi", "waist", "physically_active", "daily_veg_fruit", "ever_bp_medication",
        "ever_high_glucose", "family_history_diabetes",
    )
    validated_population = Population(min_age=18)

    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Sum the eight items' points and band the total."""
        items = {
            "age": AGE.points(math.floor(values.number("age"))),
            "bmi": BMI.points(display_round(values.number("bmi"), 1)),
            "waist": WAIST[values.choice("sex")].points(display_round(values.number("waist"), 1)),
            "physical_activity": 0 if values.flag("physically_active") else INACTIVE_POINTS,
            "vegetables_fruit": 0 if values.flag("daily_veg_fruit") else NOT_DAILY_VEG_POINTS,
            "bp_medication": BP_MEDICATION_POINTS if values.flag("ever_bp_medication") else 0,
            "high_glucose": HIGH_GLUCOSE_POINTS if values.flag("ever_high_glucose") else 0,
            "family_history": FAMILY_HISTORY[values.choice("family_history_diabetes")],
        }
        total = sum(items.values())
        return self.categorised(values, self.pack(config).classify(total), details={"points": items})
