"""China-PAR 10-year ASCVD risk.

Source: Yang X, Li J, Hu D, et al. Predicting the 10-Year Risks of Atherosclerotic Cardiovascular
Disease in Chinese Population: The China-PAR Project. Circulation 2016;134:1430-1440,
doi:10.1161/CIRCULATIONAHA.116.022367 (Supplemental Table 1); 3-decimal coefficients of
T/JPMA 024-2024 Appendix C/D (clinical-spec.md section 1). Categories: 中国心血管病风险评估和管理指南
(2019) (spec 1.3). The lifetime model is not implemented: its coefficients are not public (spec 1.3).

Inputs (JSON)::

    {"sex": "male", "age": 60, "sbp": 130, "bp_treated": false, "tc": 5.439, "hdl": 1.4245,
     "waist": 80, "smoker": false, "diabetes": true, "region_north": true, "urban": true,
     "family_history_ascvd": false}

``urban`` and ``family_history_ascvd`` enter the men's equation only, so women need not give them.
``known_ascvd: true`` means the model does not apply (primary prevention only, spec 1.4).

Population (spec 10a): the derivation cohorts' ages 35-74; outside them the result is
``out_of_range``. A clinic that configures ``china_par_age_policy="flag"`` gets values for ages
20-34 and 75+ as well, flagged ``extrapolated`` (spec 1.4: the guideline and official tool accept
adults from 20); under 20 is always ``out_of_range``.
"""

from __future__ import annotations

import math

from care.clinical.common import Label
from care.clinical.config import ClinicalConfig
from care.clinical.risk.base import INPUTS, Population, RiskModel, RiskResult, Values, register
from care.clinical.risk.survival import Equation, linear_predictor, ten_year_risk

#: China-PAR converts cholesterol with the paper's factor: mg/dL = mmol/L / 0.0259 (spec section 0).
CHOLESTEROL_MMOLL_PER_MGDL = 0.0259

#: Ages of the derivation cohorts (spec 1.4, 10a).
COHORT_AGES = (35, 74)
#: The guideline and the official tool accept adults from 20 (spec 1.4): the "flag" policy's floor.
MINIMUM_AGE = 20
COHORT = Population(min_age=COHORT_AGES[0], max_age=COHORT_AGES[1])
EXTRAPOLATING = Population(min_age=MINIMUM_AGE)


#: Spec 1.2, "use the 3-decimal set". Terms absent for women are simply not listed.
EQUATIONS: dict[str, Equation] = {
    "male": Equation(
        coefficients={
            "ln_age": 31.967,
            "ln_sbp_treated": 27.388,
            "ln_sbp_untreated": 26.148,
            "ln_tc": 0.621,
            "ln_hdl": -0.695,
            "ln_waist": -0.712,
            "smoker": 3.955,
            "diabetes": 0.357,
            "north": 0.475,
            "urban": -0.164,
            "family_history": 6.221,
            "ln_age_ln_sbp_treated": -6.018,
            "ln_age_ln_sbp_untreated": -5.731,
            "ln_age_smoker": -0.939,
            "ln_age_family_history": -1.534,
        },
        mean=140.68,
        s10=0.9707,
    ),
    "female": Equation(
        coefficients={
            "ln_age": 24.874,
            "ln_sbp_treated": 20.709,
            "ln_sbp_untreated": 19.982,
            "ln_tc": 0.058,
            "ln_hdl": -0.217,
            "ln_waist": 1.475,
            "smoker": 0.495,
            "diabetes": 0.567,
            "north": 0.544,
            "ln_age_ln_sbp_treated": -4.528,
            "ln_age_ln_sbp_untreated": -4.360,
        },
        mean=117.26,
        # Derived from the paper's worked example, not printed (spec 1.2 notes) [U].
        s10=0.9851,
    ),
}

#: Raised on every women's result: S10 0.9851 is derived, not printed (spec 1.2, open issue 11.1).
S10_FLAG = "s10_unconfirmed"
WOMEN_S10_NOTE = Label(
    zh="女性基线生存率S10=0.9851为推导值(论文印刷为0.99)，上线前需用官方计算器核对。[U]",
    en="Women's baseline survival S10 = 0.9851 is derived, not printed (the paper prints 0.99); "
    "check against the official calculator before go-live. [U]",
)
EXTRAPOLATED_NOTE = Label(
    zh="年龄超出China-PAR研究人群(35-74岁)，结果为外推，仅供参考。",
    en="Age is outside the China-PAR cohorts (35-74 years); the result is extrapolated.",
)
KNOWN_ASCVD_NOTE = Label(
    zh="已有动脉粥样硬化性心血管病者不做一级预防风险评估，请遵医嘱管理。",
    en="People with known ASCVD are not assessed with this primary-prevention model; follow your doctor's plan.",
)


def terms(values: Values) -> dict[str, float]:
    """Return the value Xᵢ of every term of either sex's equation (spec 1.1)."""
    ln_age = math.log(values.number("age"))
    ln_sbp = math.log(values.number("sbp"))
    treated = values.flag("bp_treated")
    smoker = float(values.flag("smoker"))
    men = values.choice("sex") == "male"
    family = float(values.flag("family_history_ascvd")) if men else 0.0
    return {
        "ln_age": ln_age,
        "ln_sbp_treated": ln_sbp if treated else 0.0,
        "ln_sbp_untreated": 0.0 if treated else ln_sbp,
        "ln_tc": math.log(values.number("tc") / CHOLESTEROL_MMOLL_PER_MGDL),
        "ln_hdl": math.log(values.number("hdl") / CHOLESTEROL_MMOLL_PER_MGDL),
        "ln_waist": math.log(values.number("waist")),
        "smoker": smoker,
        "diabetes": float(values.flag("diabetes")),
        "north": float(values.flag("region_north")),
        "urban": float(values.flag("urban")) if men else 0.0,
        "family_history": family,
        "ln_age_ln_sbp_treated": ln_age * ln_sbp if treated else 0.0,
        "ln_age_ln_sbp_untreated": 0.0 if treated else ln_age * ln_sbp,
        "ln_age_smoker": ln_age * smoker,
        "ln_age_family_history": ln_age * family,
    }


@register
class ChinaPar(RiskModel):
    """China-PAR 10-year ASCVD risk (Yang X et al., Circulation 2016; spec section 1)."""

    name = "china-par"
    title = Label("China-PAR 10年动脉粥样硬化性心血管病风险", "China-PAR 10-year ASCVD risk")
    citation = (
        "Yang X et al. Circulation 2016;134:1430-1440, doi:10.1161/CIRCULATIONAHA.116.022367; "
        "coefficients T/JPMA 024-2024; categories 中国心血管病风险评估和管理指南(2019)"
    )
    version = "ChinaPAR-2016/TJPMA-2024"
    scheme = "china_par"
    unit = "%"
    inputs = tuple(
        INPUTS[name]
        for name in (
            "sex", "age", "sbp", "bp_treated", "tc", "hdl", "waist", "smoker", "diabetes",
            "region_north", "urban", "family_history_ascvd", "known_ascvd",
        )
    )
    required = (
        "sex", "age", "sbp", "bp_treated", "tc", "hdl", "waist", "smoker", "diabetes", "region_north",
    )

    def required_inputs(self, values: Values, config: ClinicalConfig) -> tuple[str, ...]:
        """Men also need ``urban`` and ``family_history_ascvd`` (spec 1.1: men only)."""
        if "sex" in values and values.choice("sex") == "female":
            return self.required
        return (*self.required, "urban", "family_history_ascvd")

    def population(self, config: ClinicalConfig) -> Population:
        """Ages 35-74; from 20 when the clinic configured the ``flag`` (extrapolate) policy (spec 1.4)."""
        return EXTRAPOLATING if config.china_par_age_policy == "flag" else COHORT

    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Compute the 10-year risk; apply the exclusion rule of spec 1.4 and flag extrapolation."""
        if values.flag_or("known_ascvd", False):
            return self.not_applicable(values, "known_ascvd", KNOWN_ASCVD_NOTE, config=config)
        outside = not COHORT.age_inside(values.number("age"))
        sex = values.choice("sex")
        equation = EQUATIONS[sex]
        predictor = linear_predictor(equation, terms(values))
        staff_notes = [WOMEN_S10_NOTE] if sex == "female" else []
        notes = [EXTRAPOLATED_NOTE] if outside else []
        flags = [*(["extrapolated"] if outside else []), *([S10_FLAG] if sex == "female" else [])]
        return self.percent(
            values,
            ten_year_risk(equation, predictor),
            config,
            flags=flags,
            notes=notes,
            staff_notes=staff_notes,
            details={"linear_predictor": predictor, "mean": equation.mean, "s10": equation.s10},
        )
