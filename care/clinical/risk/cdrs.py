"""Chinese Diabetes Risk Score (中国糖尿病风险评分表, 0-51 points; >= 25 -> OGTT).

Source: Chinese Diabetes Society, 中国2型糖尿病防治指南(2020年版), 中华糖尿病杂志 2021;13(4):315-409,
doi:10.3760/cma.j.cn115791-20210221-00095; derivation Zhou X, Qiao Q, Ji L, et al. Diabetes Care
2013;36(12):3944-3952, doi:10.2337/dc13-0593 (clinical-spec.md section 5). Applies to ages 20-74
without known diabetes. Family history counts first-degree relatives only (parents, siblings,
children). BMI and waist are rounded to 1 decimal and SBP to whole mmHg before scoring.

Inputs (JSON)::

    {"sex": "male", "age": 46, "bmi": 25.9, "waist": 88, "sbp": 132, "family_history_diabetes": "none"}

``diabetes: true`` (known diabetes) means the score does not apply.
"""

from __future__ import annotations

import math

from care.clinical.common import Label, display_round
from care.clinical.config import ClinicalConfig
from care.clinical.risk.base import INPUTS, Population, RiskModel, RiskResult, Values, register
from care.clinical.risk.points import PointTable, at_least, below, span

AGES = (20, 74)
AGE = PointTable(
    "cdrs age",
    (
        (below(25), 0),
        (span(25, 35), 4),
        (span(35, 40), 8),
        (span(40, 45), 11),
        (span(45, 50), 12),
        (span(50, 55), 13),
        (span(55, 60), 15),
        (span(60, 65), 16),
        (at_least(65), 18),
    ),
)
BMI = PointTable("cdrs bmi", ((below(22.0), 0), (span(22.0, 24.0), 1), (span(24.0, 30.0), 3), (at_least(30.0), 5)))
WAIST = {
    "male": PointTable(
        "cdrs waist men",
        (
            (below(75.0), 0),
            (span(75.0, 80.0), 3),
            (span(80.0, 85.0), 5),
            (span(85.0, 90.0), 7),
            (span(90.0, 95.0), 8),
            (at_least(95.0), 10),
        ),
    ),
    "female": PointTable(
        "cdrs waist women",
        (
            (below(70.0), 0),
            (span(70.0, 75.0), 3),
            (span(75.0, 80.0), 5),
            (span(80.0, 85.0), 7),
            (span(85.0, 90.0), 8),
            (at_least(90.0), 10),
        ),
    ),
}
SBP = PointTable(
    "cdrs sbp",
    (
        (below(110), 0),
        (span(110, 120), 1),
        (span(120, 130), 3),
        (span(130, 140), 6),
        (span(140, 150), 7),
        (span(150, 160), 8),
        (at_least(160), 10),
    ),
)
FIRST_DEGREE_POINTS = 6
SEX_POINTS = {"female": 0, "male": 2}

DIABETES_NOTE = Label(
    zh="已确诊糖尿病者无需做糖尿病风险筛查。", en="People already diagnosed with diabetes are not screened."
)


@register
class ChineseDiabetesRiskScore(RiskModel):
    """Chinese Diabetes Risk Score (CDS guideline 2020; spec section 5)."""

    name = "cdrs"
    title = Label("中国糖尿病风险评分", "Chinese Diabetes Risk Score")
    citation = (
        "中国2型糖尿病防治指南(2020年版), 中华糖尿病杂志 2021;13(4):315-409, "
        "doi:10.3760/cma.j.cn115791-20210221-00095; Zhou X et al. Diabetes Care 2013;36(12):3944-3952"
    )
    version = "CDRS-2020"
    scheme = "cdrs"
    unit = "points"
    inputs = tuple(
        INPUTS[name]
        for name in ("sex", "age", "bmi", "weight", "height", "waist", "sbp", "family_history_diabetes", "diabetes")
    )
    required = ("sex", "age", "bmi", "waist", "sbp", "family_history_diabetes")
    validated_population = Population(min_age=AGES[0], max_age=AGES[1])

    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Sum the six items' points; >= 25 is high risk (OGTT advised)."""
        if values.flag_or("diabetes", False):
            return self.not_applicable(values, "known_diabetes", DIABETES_NOTE, config=config)
        age = math.floor(values.number("age"))
        sex = values.choice("sex")
        items = {
            "age": AGE.points(age),
            "bmi": BMI.points(display_round(values.number("bmi"), 1)),
            "waist": WAIST[sex].points(display_round(values.number("waist"), 1)),
            "sbp": SBP.points(display_round(values.number("sbp"), 0)),
            "family_history": FIRST_DEGREE_POINTS if values.choice("family_history_diabetes") == "first_degree" else 0,
            "sex": SEX_POINTS[sex],
        }
        total = sum(items.values())
        classification = self.pack(config).classify(total)
        flags = ("ogtt_recommended",) if classification.key == "high" else ()
        return self.categorised(values, classification, flags=flags, details={"points": items})
