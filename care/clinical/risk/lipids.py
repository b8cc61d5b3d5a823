"""Lipid panel: each analyte's level and the overall reading.

Source: 中国血脂管理指南(2023年), 中华心血管病杂志 2023;51(3):221-255 (clinical-spec.md 7.4), for
TC, LDL-C, HDL-C, TG and non-HDL-C (= TC - HDL-C). Overall: ``abnormal`` (血脂异常) when any analyte
is high or HDL-C is low, ``borderline`` when the worst is borderline high, else ``desirable``.
TG >= 5.6 raises ``pancreatitis_risk``; LDL-C >= 4.9 or TC >= 7.2 raises
``lipid_high_risk_condition`` (a direct high-risk condition of the 2023 guideline, [V1]).
``value`` is non-HDL-C in mmol/L.

Inputs (JSON)::

    {"tc": 5.6, "ldl": 3.5, "hdl": 0.95, "tg": 2.0}
"""

from __future__ import annotations

from care.clinical.common import Label
from care.clinical.config import ClinicalConfig
from care.clinical.ranges import Classification, band_pack
from care.clinical.risk.base import INPUTS, RiskModel, RiskResult, Values, register

ANALYTES = ("tc", "ldl", "hdl", "tg", "non_hdl")
#: Direct high-risk conditions of the 2023 guideline (spec 7.4, [V1]): analyte -> threshold (>=).
HIGH_RISK_CONDITIONS = {"ldl": 4.9, "tc": 7.2}
OVERALL = {
    "desirable": Label("血脂水平合适", "Lipids at desirable levels"),
    "borderline": Label("血脂边缘升高", "Lipids borderline high"),
    "abnormal": Label("血脂异常", "Abnormal blood lipids"),
}
HIGH_RISK_NOTE = Label(
    zh="LDL-C≥4.9或TC≥7.2 mmol/L属于直接高危情况，请尽快就医评估。",
    en="LDL-C >= 4.9 or TC >= 7.2 mmol/L is a direct high-risk condition; please see a doctor soon.",
)


#: Overall readings from best to worst.
OVERALL_ORDER = ("desirable", "borderline", "abnormal")


def overall_key(levels: dict[str, Classification]) -> str:
    """Return ``abnormal``, ``borderline`` or ``desirable`` from the analytes' levels."""
    if any(level.key in ("high", "low") for level in levels.values()):
        return "abnormal"
    if any(level.key == "borderline_high" for level in levels.values()):
        return "borderline"
    return "desirable"


@register
class Lipids(RiskModel):
    """Lipid levels (LIPID-CN-2023; spec 7.4)."""

    name = "lipids"
    title = Label("血脂", "Blood lipids")
    citation = "中国血脂管理指南(2023年), 中华心血管病杂志 2023;51(3):221-255"
    version = "LIPIDS"
    category_only = True
    scheme = "non_hdl"
    unit = "mmol/L"
    inputs = tuple(INPUTS[name] for name in ("tc", "ldl", "hdl", "tg"))
    required = ("tc", "ldl", "hdl", "tg")

    def severity(self, category: str, config: ClinicalConfig | None = None) -> int | None:
        """Return 0 for desirable, 1 borderline, 2 abnormal (None for no category)."""
        return OVERALL_ORDER.index(category) if category in OVERALL_ORDER else None

    def compute(self, values: Values, config: ClinicalConfig) -> RiskResult:
        """Classify every analyte and combine them."""
        # HDL-C and LDL-C below TC were checked before (care.clinical.plausibility), so non-HDL-C > 0.
        measured = {name: values.number(name) for name in ("tc", "ldl", "hdl", "tg")}
        measured["non_hdl"] = measured["tc"] - measured["hdl"]
        levels = {name: band_pack(name, config).classify(measured[name]) for name in ANALYTES}
        key = overall_key(levels)
        flags = [flag for level in levels.values() for flag in level.flags]
        flags += [f"{name}_{level.key}" for name, level in levels.items() if level.flag != "normal"]
        notes = [message for level in levels.values() for message in level.messages]
        if any(levels[name].value >= limit for name, limit in HIGH_RISK_CONDITIONS.items()):
            flags.append("lipid_high_risk_condition")
            notes.append(HIGH_RISK_NOTE)
        non_hdl = levels["non_hdl"]
        overall = Classification(
            scheme="lipids",
            key=key,
            label=OVERALL[key],
            flag="normal" if key == "desirable" else "high",
            rule_pack=non_hdl.rule_pack,
            citation=non_hdl.citation,
            value=non_hdl.value,
            decimals=non_hdl.decimals,
        )
        details = {
            name: {"value": level.shown, "category": level.key, "label": level.label.to_dict()}
            for name, level in levels.items()
        }
        return self.categorised(
            values, overall, flags=flags, notes=notes, details=details
        )
