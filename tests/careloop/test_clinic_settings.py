"""The clinic's own settings: each variable read, each bad value named with what it accepts."""

from __future__ import annotations

from datetime import time

import pytest

from careloop.bot_runtime import bot_config
from careloop.runtime import Runtime
from careloop.settings import Settings, SettingsError
from tests.clinic import CLINIC_ENV, with_clinic


def test_unset_the_clinic_is_the_demo_clinic_with_the_contracts_defaults():
    settings = Settings.from_mapping({})
    clinic = settings.clinic
    assert clinic.name.zh == "Careloop 健康管理中心"
    assert clinic.name.in_language("en") == "Careloop Health Centre"
    assert clinic.emergency_number == "120"
    assert settings.timezone == "Asia/Shanghai"
    assert settings.quiet_hours == (time(21, 0), time(8, 0))
    assert (settings.region_north, settings.urban) == (None, None)
    assert settings.wechat_templates == {}
    assert clinic.sms_sender("zh") == "Careloop 健康管理中心"  # no signature set: the clinic's name
    assert clinic.sms_sender("en") == "Careloop Health Centre"


def test_every_clinic_setting_is_read_from_its_contract_name():
    settings = Settings.from_mapping({**CLINIC_ENV, "CARELOOP_REGION_NORTH": "yes", "CARELOOP_URBAN": "false"})
    clinic = settings.clinic
    assert (clinic.name.zh, clinic.name.en) == ("幸福里健康管理中心", "Xingfuli Health Centre")
    assert clinic.phone == "021-5550-0101"
    assert (clinic.address.zh, clinic.address.en) == ("上海市徐汇区幸福路8号", "8 Xingfu Road, Xuhui, Shanghai")
    assert clinic.emergency_number == "999"
    assert clinic.sms_sender("en") == "幸福里健康"  # a registered signature is one for both languages
    assert settings.timezone == "Asia/Urumqi"
    assert settings.quiet_hours == (time(22, 30), time(7, 15))
    assert (settings.region_north, settings.urban) == (True, False)
    assert settings.risk_defaults == {"region_north": True, "urban": False}
    assert settings.wechat_templates == {"FOLLOWUP": "TPL-followup-xfl", "REMINDER": "TPL-reminder-xfl",
                                         "RESULT": "TPL-result-xfl"}


def test_an_english_name_left_unset_falls_back_to_the_chinese_one():
    clinic = Settings.from_mapping({"CARELOOP_CLINIC_NAME": "幸福里健康管理中心"}).clinic
    assert clinic.name.in_language("en") == "Careloop Health Centre"  # the demo's English name is a default too
    assert Settings(clinic_name_en="").clinic.name.in_language("en") == "Careloop 健康管理中心"


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", "0", "false", "No", "off"])
def test_booleans_take_the_usual_words(value):
    expected = value.lower() in {"1", "true", "yes", "on"}
    assert Settings.from_mapping({"CARELOOP_URBAN": value}).urban is expected
    assert Settings.from_mapping({"CARELOOP_REGION_NORTH": value}).region_north is expected


@pytest.mark.parametrize(("value", "hours"), [
    ("21:00-08:00", (time(21, 0), time(8, 0))),
    ("22:30 - 6:45", (time(22, 30), time(6, 45))),
    ("12:00-14:00", (time(12, 0), time(14, 0))),  # a range within one day
    ("00:00-00:00", (time(0, 0), time(0, 0))),  # an empty range: no quiet hours
])
def test_quiet_hours_are_a_range_of_local_times(value, hours):
    assert Settings.from_mapping({"CARELOOP_QUIET_HOURS": value}).quiet_hours == hours


@pytest.mark.parametrize(("name", "value", "says"), [
    ("CARELOOP_TIMEZONE", "Mars/Olympus", "unknown time zone 'Mars/Olympus' (an IANA name such as Asia/Shanghai)"),
    ("CARELOOP_TIMEZONE", "../../etc/passwd", "unknown time zone"),
    ("CARELOOP_QUIET_HOURS", "21-8", "must be a range of local times HH:MM-HH:MM (such as 21:00-08:00)"),
    ("CARELOOP_QUIET_HOURS", "25:00-08:00", "HH:MM-HH:MM"),
    ("CARELOOP_QUIET_HOURS", "21:00", "HH:MM-HH:MM"),
    ("CARELOOP_REGION_NORTH", "maybe", "must be true or false (also yes/no, 1/0, on/off), not 'maybe'"),
    ("CARELOOP_URBAN", "城市", "must be true or false"),
    ("CARELOOP_CLINIC_PHONE", "call us", "must be a phone number"),
    ("CARELOOP_EMERGENCY_NUMBER", "one-two-oh", "must be the number to dial, 2 to 8 digits (such as 120)"),
    ("CARELOOP_SMS_SENDER_NAME", "【幸福里】", "without 【】"),
    ("WECHAT_TEMPLATE_FOLLOWUP", "bad id!", "must be a WeChat template id"),
    ("WECHAT_TEMPLATE_followup", "TPL1", "must be a name in capitals (FOLLOWUP, REMINDER, RESULT, ...)"),
])
def test_a_bad_clinic_setting_is_named_with_what_it_accepts(name, value, says):
    with pytest.raises(SettingsError) as raised:
        Settings.from_mapping({name: value})
    assert str(raised.value).startswith(name)
    assert says in str(raised.value)


def test_empty_values_count_as_unset():
    settings = Settings.from_mapping({"CARELOOP_TIMEZONE": " ", "CARELOOP_URBAN": "", "WECHAT_TEMPLATE_RESULT": ""})
    assert (settings.timezone, settings.urban, settings.wechat_templates) == ("Asia/Shanghai", None, {})
    assert "CARELOOP_TIMEZONE (default Asia/Shanghai)" in settings.unset_clinic_settings()


def test_the_unset_clinic_settings_are_named_with_their_defaults():
    unset = Settings.from_mapping({"CARELOOP_CLINIC_PHONE": "021-5550-0101", "WECHAT_TEMPLATE_FOLLOWUP": "T1"}) \
        .unset_clinic_settings()
    assert "CARELOOP_CLINIC_NAME (default Careloop 健康管理中心)" in unset
    assert "CARELOOP_QUIET_HOURS (default 21:00-08:00)" in unset
    assert "CARELOOP_EMERGENCY_NUMBER (default 120)" in unset
    assert "CARELOOP_SMS_SENDER_NAME (default the clinic's name)" in unset
    assert "CARELOOP_URBAN (default none: asked of each patient)" in unset
    assert not any(entry.startswith(("CARELOOP_CLINIC_PHONE", "WECHAT_TEMPLATE_")) for entry in unset)
    assert Settings.from_mapping(CLINIC_ENV | {"CARELOOP_REGION_NORTH": "1", "CARELOOP_URBAN": "1"}) \
        .unset_clinic_settings() == []


def test_the_bot_gets_the_clinic_its_clock_and_its_templates(settings, database, key_ring, clock):
    config = bot_config(Runtime(settings=with_clinic(settings), key_ring=key_ring, db=database, clock=clock))
    assert config.clinic.name.en == "Xingfuli Health Centre"
    assert (config.clinic_phone, config.emergency_number) == ("021-5550-0101", "999")
    assert (config.timezone, config.quiet_start, config.quiet_end) == ("Asia/Urumqi", time(22, 30), time(7, 15))
    assert config.wechat_template("reminder") == "TPL-reminder-xfl"
    assert config.wechat_template("followup_invite") == "TPL-followup-xfl"  # a purpose of its own: FOLLOWUP's
