"""eGFR by the CKD-EPI 2021 creatinine equation (race-free), with the KDIGO GFR category.

Source: Inker LA, Eneanya ND, Coresh J, et al. New Creatinine- and Cystatin C-Based Equations to
Estimate GFR without Race. N Engl J Med 2021;385:1737-1749, doi:10.1056/NEJMoa2102953
(clinical-spec.md 7.7)::

    eGFR = 142 x min(Scr/κ, 1)^α x max(Scr/κ, 1)^-1.200 x 0.9938^age x 1.012 [female]
    Scr in mg/dL (= µmol/L / 88.4); κ 0.7 (F) / 0.9 (M); α -0.241 (F) / -0.302 (M); adults >= 18

Categories G1-G5 (KDIGO 2012) on the value rounded to 1 decimal. G1-G2 alone is not CKD.

Inputs (JSON)::

    {"sex": "male", "age": 50, "creatinine": 88.4}
"""

from __future__ import annotations

from dataclasses import dataclass

from care.clinical.common import Label
from care.clinical.config import ClinicalConfig
from care.clinical.risk.base import INPUTS, Population, RiskModel, RiskResult, Values, register
from care.clinical.units import creatinine_mgdl

MINIMUM_AGE = 18
AGE_BASE = 0.9938
SCALE = 142.0
UPPER_EXPONENT = -1.200


@dataclass(frozen=True)
class SexTerms:
    """κ, α and the sex factor of CKD-EPI 2021."""

    kappa: float
    alpha: float
    factor: float


TERMS = {
    "female": SexTerms(kappa=0.7, alpha=-0.241, factor=1.012),
    "male": SexTerms(kappa=0.9, alpha=-0.302, factor=1.0),
}



def ckd_epi_2021(sex: str, age: float, creatinine_umol_per_l: float) -> float:
    """Return eGFR in mL/min/1.73 m² (CKD-EPI 2021, Inker 2021), unrounded."""
    terms = TERMS[sex]
    ratio = creatinine_mgdl(creatinine_umol_per_l) / terms.kappa
    egfr: float = (
        SCALE
        * min(ratio, 1.0) ** terms.alpha
        * max(ratio, 1.0) ** UPPER_EXPONENT
        * AGE_BASE**age
        * terms.factor
    )
    return egfr


@register
class Egfr(RiskModel):
    """CKD-EPI 2021 eGFR and KDIGO category (spec 7.7)."""

    name = "egfr"
    title = Label("估算肾小球滤过率(eGFR)", "Estimated GFR (CKD-EPI 2021)")
    citation = "Inker LA et al. N Engl J Med 2021;385:1737-1749, doi:10.1056/NEJMoa2102953; KDIGO 2012 categories"
    version = "CKD-EPI-2021"
    scheme = "egfr"
    unit = "mL/min/1.73m2"
    inputs = tuple(INPUTS[name] for name in ("sex", "age", "creatinine"))
    required = ("sex", "age", "creatinine")
    #: Adults only (spec 7.7, 10a); under 18 the result is ``out_of_range``.
    validated_population = Population(min_age=MINIMUM_AGE)

    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Compute eGFR, round to 1 decimal, then classify G1-G5."""
        egfr = ckd_epi_2021(values.choice("sex"), values.number("age"), values.number("creatinine"))
        classification = self.pack(config).classify(egfr)
        return self.categorised(
            values, classification, details={"egfr_unrounded": egfr}
        )
