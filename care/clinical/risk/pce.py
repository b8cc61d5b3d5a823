"""Pooled Cohort Equations (ACC/AHA 2013) 10-year ASCVD risk.

Source: Goff DC Jr, et al. 2013 ACC/AHA Guideline on the Assessment of Cardiovascular Risk.
Circulation 2014;129(25 Suppl 2):S49-S73, doi:10.1161/01.cir.0000437741.48606.98, Appendix 7,
Table A (clinical-spec.md section 3). The guideline's calculator population (spec 10a): ages 40-79,
TC 130-320 mg/dL, HDL-C 20-100 mg/dL, SBP 90-200 mmHg; outside it the result is ``out_of_range``
and nothing is computed. The guideline uses the white equations for other groups (``race: "other"``,
flagged ``white_equations_for_other_race``); for Chinese users China-PAR is preferred (spec 3).
Categories: 2019 ACC/AHA primary-prevention bands, < 5 % low, 5-7.4 borderline, 7.5-19.9
intermediate, >= 20 % high (spec 10a; rule pack PCE-CAT-2019).

Inputs (JSON)::

    {"sex": "female", "race": "white", "age": 55, "tc": 5.508, "hdl": 1.293, "sbp": 120,
     "bp_treated": false, "smoker": false, "diabetes": false}
"""

from __future__ import annotations

import math

from care.clinical.common import Label
from care.clinical.config import ClinicalConfig
from care.clinical.risk.base import INPUTS, InputLimit, Population, RiskModel, RiskResult, Values, register
from care.clinical.risk.survival import Equation, linear_predictor, ten_year_risk
from care.clinical.units import cholesterol_mgdl

#: The population of the guideline's calculator (spec 10a); cholesterol bounds are in mg/dL.
POPULATION = Population(
    min_age=40,
    max_age=79,
    limits=(
        InputLimit("tc", 130, 320, "mg/dL", Label("总胆固醇", "total cholesterol"), cholesterol_mgdl),
        InputLimit("hdl", 20, 100, "mg/dL", Label("高密度脂蛋白胆固醇", "HDL cholesterol"), cholesterol_mgdl),
        InputLimit("sbp", 90, 200, "mmHg", Label("收缩压", "systolic BP")),
    ),
)

#: (sex, equation set) -> equation; spec section 3 table. Terms absent from a column are not listed.
EQUATIONS: dict[tuple[str, str], Equation] = {
    ("female", "white"): Equation(
        coefficients={
            "ln_age": -29.799,
            "ln_age_sq": 4.884,
            "ln_tc": 13.540,
            "ln_age_ln_tc": -3.114,
            "ln_hdl": -13.578,
            "ln_age_ln_hdl": 3.149,
            "ln_treated_sbp": 2.019,
            "ln_untreated_sbp": 1.957,
            "smoker": 7.574,
            "ln_age_smoker": -1.665,
            "diabetes": 0.661,
        },
        mean=-29.18,
        s10=0.9665,
    ),
    ("female", "african_american"): Equation(
        coefficients={
            "ln_age": 17.114,
            "ln_tc": 0.940,
            "ln_hdl": -18.920,
            "ln_age_ln_hdl": 4.475,
            "ln_treated_sbp": 29.291,
            "ln_age_ln_treated_sbp": -6.432,
            "ln_untreated_sbp": 27.820,
            "ln_age_ln_untreated_sbp": -6.087,
            "smoker": 0.691,
            "diabetes": 0.874,
        },
        mean=86.61,
        s10=0.9533,
    ),
    ("male", "white"): Equation(
        coefficients={
            "ln_age": 12.344,
            "ln_tc": 11.853,
            "ln_age_ln_tc": -2.664,
            "ln_hdl": -7.990,
            "ln_age_ln_hdl": 1.769,
            "ln_treated_sbp": 1.797,
            "ln_untreated_sbp": 1.764,
            "smoker": 7.837,
            "ln_age_smoker": -1.795,
            "diabetes": 0.658,
        },
        mean=61.18,
        s10=0.9144,
    ),
    ("male", "african_american"): Equation(
        coefficients={
            "ln_age": 2.469,
            "ln_tc": 0.302,
            "ln_hdl": -0.307,
            "ln_treated_sbp": 1.916,
            "ln_untreated_sbp": 1.809,
            "smoker": 0.549,
            "diabetes": 0.645,
        },
        mean=19.54,
        s10=0.8954,
    ),
}

#: Race input -> equation set; "other" uses the white equations (guideline, spec section 3).
EQUATION_SET = {"white": "white", "african_american": "african_american", "other": "white"}

OTHER_RACE_NOTE = Label(
    zh="非白人/非非裔人群按指南使用白人方程，可能高估东亚人群风险；中国人群优先参考China-PAR。",
    en="Other groups use the white equations per the guideline, which may overestimate risk in East Asians; "
    "prefer China-PAR for Chinese patients.",
)


def terms(values: Values) -> dict[str, float]:
    """Return Xᵢ of every PCE term (TC and HDL in mg/dL with the factor 38.67)."""
    ln_age = math.log(values.number("age"))
    ln_tc = math.log(cholesterol_mgdl(values.number("tc")))
    ln_hdl = math.log(cholesterol_mgdl(values.number("hdl")))
    ln_sbp = math.log(values.number("sbp"))
    treated = values.flag("bp_treated")
    smoker = float(values.flag("smoker"))
    treated_sbp = ln_sbp if treated else 0.0
    untreated_sbp = 0.0 if treated else ln_sbp
    return {
        "ln_age": ln_age,
        "ln_age_sq": ln_age * ln_age,
        "ln_tc": ln_tc,
        "ln_age_ln_tc": ln_age * ln_tc,
        "ln_hdl": ln_hdl,
        "ln_age_ln_hdl": ln_age * ln_hdl,
        "ln_treated_sbp": treated_sbp,
        "ln_age_ln_treated_sbp": ln_age * treated_sbp,
        "ln_untreated_sbp": untreated_sbp,
        "ln_age_ln_untreated_sbp": ln_age * untreated_sbp,
        "smoker": smoker,
        "ln_age_smoker": ln_age * smoker,
        "diabetes": float(values.flag("diabetes")),
    }


@register
class PooledCohort(RiskModel):
    """ACC/AHA 2013 Pooled Cohort Equations (Goff 2014, Table A; spec section 3)."""

    name = "pce"
    title = Label("PCE 10年动脉粥样硬化性心血管病风险", "Pooled Cohort Equations 10-year ASCVD risk")
    citation = (
        "Goff DC Jr et al. 2013 ACC/AHA Guideline on the Assessment of Cardiovascular Risk, "
        "Circulation 2014;129(25 Suppl 2):S49-S73, doi:10.1161/01.cir.0000437741.48606.98, Appendix 7 Table A"
    )
    version = "PCE-2013"
    scheme = "pce"
    unit = "%"
    inputs = tuple(
        INPUTS[name] for name in ("sex", "race", "age", "tc", "hdl", "sbp", "bp_treated", "smoker", "diabetes")
    )
    required = ("sex", "race", "age", "tc", "hdl", "sbp", "bp_treated", "smoker", "diabetes")
    validated_population = POPULATION

    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Compute the 10-year risk with the sex and race equation."""
        race = values.choice("race")
        equation = EQUATIONS[(values.choice("sex"), EQUATION_SET[race])]
        predictor = linear_predictor(equation, terms(values))
        flags: list[str] = []
        staff_notes: list[Label] = []
        if race == "other":
            flags.append("white_equations_for_other_race")
            staff_notes.append(OTHER_RACE_NOTE)
        return self.percent(
            values,
            ten_year_risk(equation, predictor),
            config,
            flags=flags,
            staff_notes=staff_notes,
            details={"linear_predictor": predictor, "mean": equation.mean, "s10": equation.s10},
        )
