"""Office blood-pressure category.

Source: 中国高血压防治指南2018年修订版, 中国心血管杂志 2019;24(1):24-56,
doi:10.3969/j.issn.1007-5410.2019.01.002 (clinical-spec.md 7.2); the 2022 clinical-practice
guideline's 130/80 is the configurable alternative. SBP and DBP are graded separately and the higher
grade wins; ``isolated_systolic`` is flagged. A single reading is an elevated reading, not a
diagnosis (the result carries that note). ``value`` is the systolic pressure; both are in ``details``.

Inputs (JSON)::

    {"sbp": 145, "dbp": 85}
"""

from __future__ import annotations

from care.clinical.common import Label
from care.clinical.config import ClinicalConfig
from care.clinical.ranges import bp_pack
from care.clinical.risk.base import INPUTS, RiskModel, RiskResult, Values, register


@register
class BloodPressure(RiskModel):
    """Blood-pressure category (HTN-CN-2018 by default; spec 7.2)."""

    name = "bp"
    title = Label("血压分类", "Blood pressure category")
    citation = "中国高血压防治指南2018年修订版, 中国心血管杂志 2019;24(1):24-56"
    version = "BP"
    category_only = True
    scheme = "bp"
    unit = "mmHg"
    inputs = tuple(INPUTS[name] for name in ("sbp", "dbp"))
    required = ("sbp", "dbp")

    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Grade SBP and DBP, take the higher grade."""
        pack = bp_pack(config)
        sbp, dbp = values.number("sbp"), values.number("dbp")
        classification = pack.classify(sbp, dbp)
        by_sbp = pack.classify_component("sbp", sbp)
        by_dbp = pack.classify_component("dbp", dbp)
        details = {
            "sbp": by_sbp.shown,
            "dbp": by_dbp.shown,
            "sbp_category": by_sbp.key,
            "dbp_category": by_dbp.key,
        }
        return self.categorised(values, classification, details=details)
