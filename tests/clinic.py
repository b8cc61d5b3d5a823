"""A clinic of its own (synthetic), configured as an operator would: through the environment's names."""

from __future__ import annotations

from collections.abc import Mapping

from careloop.settings import Settings

CLINIC_ENV: dict[str, str] = {
    "CARELOOP_CLINIC_NAME": "幸福里健康管理中心",
    "CARELOOP_CLINIC_NAME_EN": "Xingfuli Health Centre",
    "CARELOOP_CLINIC_PHONE": "021-5550-0101",
    "CARELOOP_CLINIC_ADDRESS": "上海市徐汇区幸福路8号",
    "CARELOOP_CLINIC_ADDRESS_EN": "8 Xingfu Road, Xuhui, Shanghai",
    "CARELOOP_EMERGENCY_NUMBER": "999",
    "CARELOOP_SMS_SENDER_NAME": "幸福里健康",
    "CARELOOP_TIMEZONE": "Asia/Urumqi",
    "CARELOOP_QUIET_HOURS": "22:30-07:15",
    "WECHAT_TEMPLATE_FOLLOWUP": "TPL-followup-xfl",
    "WECHAT_TEMPLATE_REMINDER": "TPL-reminder-xfl",
    "WECHAT_TEMPLATE_RESULT": "TPL-result-xfl",
}


def with_clinic(settings: Settings, env: Mapping[str, str] = CLINIC_ENV) -> Settings:
    """``settings`` with the clinic's own settings read from ``env`` (the rest kept)."""
    parsed = Settings.from_mapping(env)
    clinic = {attribute: getattr(parsed, attribute) for attribute in Settings.CLINIC_SETTINGS
              if Settings.ENVIRONMENT_NAMES[attribute] in parsed.given}
    return settings.with_overrides(**clinic, wechat_templates=parsed.wechat_templates)
