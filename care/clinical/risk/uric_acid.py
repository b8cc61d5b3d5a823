"""Serum uric acid: hyperuricaemia range.

Source: 中国高尿酸血症与痛风诊疗指南(2019), 中华内分泌代谢杂志 2020;36(1):1-13,
doi:10.3760/cma.j.issn.1000-6699.2020.01.001 (clinical-spec.md 7.5): > 420 µmol/L for both sexes,
strictly greater (420 is not hyperuricaemia). The older female threshold (> 360) is a configurable
pack; then ``sex`` is required too. Confirm with two fasting tests on different days.

Inputs (JSON)::

    {"uric_acid": 450}        or, with the female-threshold pack,        {"uric_acid": 365, "sex": "female"}
"""

from __future__ import annotations

from care.clinical.common import Label
from care.clinical.config import ClinicalConfig
from care.clinical.risk.base import INPUTS, RiskModel, RiskResult, Values, register


@register
class UricAcid(RiskModel):
    """Uric-acid category (UA-CN-2019 by default; spec 7.5)."""

    name = "uric-acid"
    title = Label("血尿酸", "Serum uric acid")
    citation = "中国高尿酸血症与痛风诊疗指南(2019), 中华内分泌代谢杂志 2020;36(1):1-13"
    version = "UA"
    category_only = True
    scheme = "ua"
    unit = "µmol/L"
    inputs = tuple(INPUTS[name] for name in ("uric_acid", "sex"))
    required = ("uric_acid",)

    def required_inputs(self, values: Values, config: ClinicalConfig) -> tuple[str, ...]:
        """Sex is required only when the chosen pack has sex-specific thresholds."""
        return (*self.required, "sex") if self.pack(config).needs_sex else self.required

    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Classify the uric acid (by sex when the pack needs it)."""
        pack = self.pack(config)
        sex = values.choice("sex") if pack.needs_sex else None
        classification = pack.classify(values.number("uric_acid"), sex)
        return self.categorised(values, classification)
