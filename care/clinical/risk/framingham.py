"""Framingham general cardiovascular disease 10-year risk.

Source: D'Agostino RB Sr, Vasan RS, Pencina MJ, et al. General Cardiovascular Risk Profile for Use in
Primary Care: The Framingham Heart Study. Circulation 2008;117:743-753,
doi:10.1161/CIRCULATIONAHA.107.699579 (clinical-spec.md section 2). Not clamped (CVrisk clamps to
1-30%; we do not). Derived in ages 30-74 without CVD (spec 10a): outside those ages the result is
``out_of_range`` and nothing is computed.
The risk bands (< 10 / 10-19.9 / >= 20%) are not in the spec and are marked [U] in their rule pack.

Inputs (JSON)::

    {"sex": "female", "age": 61, "tc": 4.6548, "hdl": 1.2154, "sbp": 124, "bp_treated": false,
     "smoker": true, "diabetes": false}
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from care.clinical.common import Label
from care.clinical.config import ClinicalConfig
from care.clinical.risk.base import INPUTS, Population, RiskModel, RiskResult, Values, register
from care.clinical.risk.survival import Equation, linear_predictor, ten_year_risk
from care.clinical.units import cholesterol_mgdl

#: The derivation cohort's ages (spec 2 and 10a).
POPULATION = Population(min_age=30, max_age=74)

#: Spec section 2 table (men, women).
EQUATIONS: dict[str, Equation] = {
    "male": Equation(
        coefficients={
            "ln_age": 3.06117,
            "ln_tc": 1.12370,
            "ln_hdl": -0.93263,
            "ln_sbp_untreated": 1.93303,
            "ln_sbp_treated": 1.99881,
            "smoker": 0.65451,
            "diabetes": 0.57367,
        },
        mean=23.9802,
        s10=0.88936,
    ),
    "female": Equation(
        coefficients={
            "ln_age": 2.32888,
            "ln_tc": 1.20904,
            "ln_hdl": -0.70833,
            "ln_sbp_untreated": 2.76157,
            "ln_sbp_treated": 2.82263,
            "smoker": 0.52873,
            "diabetes": 0.69154,
        },
        mean=26.1931,
        s10=0.95012,
    ),
}

def terms(values: Values) -> Mapping[str, float]:
    """Return Xᵢ: ln age, ln TC and ln HDL in mg/dL (x 38.67), ln SBP by treatment, smoker, diabetes."""
    ln_sbp = math.log(values.number("sbp"))
    treated = values.flag("bp_treated")
    return {
        "ln_age": math.log(values.number("age")),
        "ln_tc": math.log(cholesterol_mgdl(values.number("tc"))),
        "ln_hdl": math.log(cholesterol_mgdl(values.number("hdl"))),
        "ln_sbp_untreated": 0.0 if treated else ln_sbp,
        "ln_sbp_treated": ln_sbp if treated else 0.0,
        "smoker": float(values.flag("smoker")),
        "diabetes": float(values.flag("diabetes")),
    }


@register
class Framingham(RiskModel):
    """Framingham general CVD 10-year risk (D'Agostino 2008; spec section 2)."""

    name = "framingham"
    title = Label("Framingham 10年心血管病风险", "Framingham 10-year general CVD risk")
    citation = "D'Agostino RB Sr et al. Circulation 2008;117:743-753, doi:10.1161/CIRCULATIONAHA.107.699579"
    version = "FRS-2008"
    scheme = "framingham"
    unit = "%"
    inputs = tuple(INPUTS[name] for name in ("sex", "age", "tc", "hdl", "sbp", "bp_treated", "smoker", "diabetes"))
    required = ("sex", "age", "tc", "hdl", "sbp", "bp_treated", "smoker", "diabetes")
    validated_population = POPULATION

    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Compute 1 - S0 ^ exp(Σβ·X - mean) with the sex's coefficients."""
        equation = EQUATIONS[values.choice("sex")]
        predictor = linear_predictor(equation, terms(values))
        return self.percent(
            values,
            ten_year_risk(equation, predictor),
            config,
            details={"linear_predictor": predictor, "mean": equation.mean, "s10": equation.s10},
        )
