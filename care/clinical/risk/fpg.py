"""Fasting plasma glucose category (with HbA1c when given).

Source: 中国2型糖尿病防治指南(2020年版), 中华糖尿病杂志 2021;13(4):315-409 (clinical-spec.md 7.3):
normal < 6.1, IFG 6.1-6.9, >= 7.0 in the diabetes range (confirm on another day). ADA's IFG
5.6-6.9 is the configurable alternative. HbA1c >= 6.5% (2020 edition) is reported beside the FPG
category and raises ``hba1c_diabetes_range``; the category itself is the FPG's.

Inputs (JSON)::

    {"fpg": 6.5}        or        {"fpg": 6.5, "hba1c": 6.7}
"""

from __future__ import annotations

from care.clinical.common import Label
from care.clinical.config import ClinicalConfig
from care.clinical.ranges import band_pack
from care.clinical.risk.base import INPUTS, RiskModel, RiskResult, Values, register


@register
class FastingGlucose(RiskModel):
    """Glucose category (DM-CN-2020 by default; spec 7.3)."""

    name = "fpg"
    title = Label("空腹血糖分类", "Fasting glucose category")
    citation = "中国2型糖尿病防治指南(2020年版), 中华糖尿病杂志 2021;13(4):315-409"
    version = "FPG"
    category_only = True
    scheme = "fpg"
    unit = "mmol/L"
    inputs = tuple(INPUTS[name] for name in ("fpg", "hba1c"))
    required = ("fpg",)

    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Classify FPG; add the HbA1c category when HbA1c is given."""
        classification = self.pack(config).classify(values.number("fpg"))
        details: dict[str, object] = {}
        flags: list[str] = []
        notes: list[Label] = []
        if "hba1c" in values:
            by_hba1c = band_pack("hba1c", config).classify(values.number("hba1c"))
            details.update(
                hba1c=by_hba1c.shown,
                hba1c_category=by_hba1c.key,
                hba1c_label=by_hba1c.label.to_dict(),
                hba1c_rule_pack=by_hba1c.rule_pack,
            )
            if by_hba1c.key != "normal":
                flags.append(f"hba1c_{by_hba1c.key}")
                notes.extend(by_hba1c.notes)
        return self.categorised(
            values, classification, flags=flags, notes=notes, details=details
        )
