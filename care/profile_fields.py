"""The health profile's fields: one name per fact, the section that holds it, what its value is.

This is the one naming scheme for profile writes. A flow's ``set_profile`` node, the admin and the
risk models all name a fact by its bare name (``smoker``, ``family_history_ascvd``); the names
follow clinical-spec.md's input table wherever a risk model reads the fact. The section is where the
fact is stored (each section is an encrypted JSON object of the profile row), never part of the name.
``flows validate`` and the flow library refuse a flow that writes a name not listed here, so a
misspelt field is found when the flow is installed, never half-way through a patient's answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class ProfileField:
    """One fact of the profile: its section, the kind of value, and its zh/en labels for staff."""

    section: str
    kind: str  # "bool", "number", "list" (of choice keys), "choice" (a key), "text"
    zh: str
    en: str

    def accepts(self, value: Any) -> bool:
        """Tell whether ``value`` is of this field's kind (JSON shapes: a list of strings for ``list``)."""
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        if self.kind == "list":
            return isinstance(value, list) and all(isinstance(item, str) for item in value)
        return isinstance(value, str)


def _field(section: str, kind: str, zh: str, en: str) -> ProfileField:
    return ProfileField(section, kind, zh, en)


#: Every profile field by name. Adding a fact here is all a new flow needs to be allowed to write it.
PROFILE_FIELDS: Mapping[str, ProfileField] = MappingProxyType({
    # Chief complaint and history.
    "chief_complaint": _field("history", "text", "主诉", "Main complaint"),
    "present_illness": _field("history", "text", "现病史", "Present illness"),
    "past_history": _field("history", "list", "既往史", "Past history"),
    "past_history_other": _field("history", "text", "其他既往史", "Other past history"),
    "diabetes": _field("history", "bool", "糖尿病", "Diabetes"),
    "hypertension": _field("history", "bool", "高血压", "High blood pressure"),
    "known_ascvd": _field("history", "bool", "已确诊动脉粥样硬化性心血管病", "Known cardiovascular disease"),
    "ever_high_glucose": _field("history", "bool", "曾查出血糖高", "Ever told of high blood sugar"),
    # Family history.
    "family_history": _field("family_history", "list", "家族史", "Family history"),
    "family_history_ascvd": _field("family_history", "bool", "父母或兄弟姐妹有心梗或脑卒中",
                                   "Parent or sibling with heart attack or stroke"),
    "family_history_premature_cvd": _field("family_history", "bool", "早发心血管病家族史",
                                           "Family history of early heart disease"),
    "family_history_diabetes": _field("family_history", "choice", "糖尿病家族史", "Family history of diabetes"),
    # Medicines.
    "medications": _field("medications", "text", "正在用的药", "Current medicines"),
    "bp_treated": _field("medications", "bool", "正在服降压药", "On blood pressure medicine"),
    "ever_bp_medication": _field("medications", "bool", "曾服降压药", "Ever on blood pressure medicine"),
    "bp_medication_adherence": _field("medications", "choice", "降压药服用情况", "Blood pressure medicine taken"),
    "diabetes_medication_adherence": _field("medications", "choice", "降糖药服用情况", "Diabetes medicine taken"),
    # Allergies.
    "allergies": _field("allergies", "text", "过敏史", "Allergies"),
    # Lifestyle and living circumstances.
    "smoking_status": _field("lifestyle", "choice", "吸烟情况", "Smoking"),
    "smoker": _field("lifestyle", "bool", "目前吸烟", "Current smoker"),
    "alcohol": _field("lifestyle", "choice", "饮酒情况", "Alcohol"),
    "physically_active": _field("lifestyle", "bool", "每天活动30分钟以上", "Active 30 minutes a day"),
    "weekly_moderate_minutes": _field("lifestyle", "number", "每周中等强度运动分钟数",
                                      "Minutes of moderate exercise a week"),
    "daily_veg_fruit": _field("lifestyle", "bool", "每天吃蔬菜水果", "Vegetables or fruit every day"),
    "salt_preference": _field("lifestyle", "choice", "口味咸淡", "Salt in food"),
    "sleep_hours": _field("lifestyle", "number", "每晚睡眠小时数", "Hours of sleep a night"),
    "sleep_quality": _field("lifestyle", "choice", "睡眠质量", "Sleep quality"),
    "daily_foot_check": _field("lifestyle", "bool", "每天检查双脚", "Checks feet daily"),
    "region_north": _field("lifestyle", "bool", "居住在长江以北", "Lives north of the Yangtze"),
    "urban": _field("lifestyle", "bool", "居住在城市", "Lives in a city"),
    "race": _field("history", "choice", "种族", "Race"),
    # The national chronic-disease follow-up: the last visit's classification (controlled, not_controlled,
    # not_controlled_twice, urgent_referral), which the next visit reads for "not controlled twice in a row".
    "national_htn_class": _field("history", "choice", "上次高血压随访分类",
                                 "Last hypertension follow-up classification"),
    "national_dm_class": _field("history", "choice", "上次糖尿病随访分类", "Last diabetes follow-up classification"),
})


class UnknownProfileFieldError(KeyError):
    """Raise when a profile field name is not in :data:`PROFILE_FIELDS`."""

    def __str__(self) -> str:
        return f"{self.args[0]!r} is not a profile field"


def profile_field(name: str) -> ProfileField:
    """Return the field called ``name``; raise :class:`UnknownProfileFieldError` if there is none."""
    try:
        return PROFILE_FIELDS[name]
    except KeyError:
        raise UnknownProfileFieldError(name) from None
