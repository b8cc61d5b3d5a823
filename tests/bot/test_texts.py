"""Every text the bot says outside flows, on every channel, in both languages: filled, and naming no
channel it cannot be read on (a WeChat message never says 短信/SMS; an SMS never says 微信/WeChat)."""

from __future__ import annotations

import re
import string

import pytest

from bot.texts import CHANNEL_TEXTS, TEXTS, say
from careloop.settings import Settings
from tests.clinic import CLINIC_ENV

CHANNELS = ("console", "wechat", "sms", "voice")
LANGUAGES = ("zh", "en")
CLINIC = Settings.from_mapping(CLINIC_ENV).clinic
# The values a text's own placeholders take where it is said (bot/identity.py, bot/router.py, bot/calls.py).
OWN_VALUES = {"tail": "0101", "code": "482913", "name": "王芳", "sid": "RE0123"}
FORBIDDEN = {
    "wechat": re.compile(r"短信|\bSMS\b|text message", re.IGNORECASE),
    "sms": re.compile(r"微信|\bWeChat\b|公众号", re.IGNORECASE),
}
CASES = [(key, channel, lang) for key in TEXTS for channel in CHANNELS for lang in LANGUAGES]


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def template_of(key: str, channel: str, lang: str) -> str:
    return (CHANNEL_TEXTS.get(channel, {}).get(key) or TEXTS[key])[lang]


@pytest.mark.parametrize(("key", "channel", "lang"), CASES)
def test_every_text_is_filled_and_names_no_other_channel(key, channel, lang):
    text = say(key, lang, channel=channel, **CLINIC.placeholders(), **OWN_VALUES)
    for leftover in ("{", "}", "None", "Localised", "Clinic("):
        assert leftover not in text
    rule = FORBIDDEN.get(channel)
    if rule is not None:
        assert rule.search(text) is None, (key, channel, lang, text)
    for name in placeholders(template_of(key, channel, lang)):
        value = CLINIC.placeholders().get(name, OWN_VALUES.get(name))
        shown = value.in_language(lang) if hasattr(value, "in_language") else str(value)
        assert shown in text


@pytest.mark.parametrize("key", sorted(TEXTS))
def test_both_languages_say_the_same_things(key):
    variants = [TEXTS[key], *(texts[key] for texts in CHANNEL_TEXTS.values() if key in texts)]
    for variant in variants:
        assert set(variant) == set(LANGUAGES)
        assert placeholders(variant["zh"]) == placeholders(variant["en"])


def test_a_channel_variant_is_of_a_known_text_and_channel():
    for channel, texts in CHANNEL_TEXTS.items():
        assert channel in CHANNELS
        assert set(texts) <= set(TEXTS)


@pytest.mark.parametrize(("lang", "name", "other"), [("zh", "幸福里健康管理中心", "Xingfuli"),
                                                      ("en", "Xingfuli Health Centre", "幸福里健康管理中心")])
def test_the_clinic_is_named_in_the_patients_language(lang, name, other):
    text = say("help", lang, **CLINIC.placeholders())
    assert name in text
    assert other not in text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_an_sms_the_clinic_starts_opens_with_its_signature(lang):
    for key in ("followup_invite", "bind_code_sms"):
        text = say(key, lang, channel="sms", **CLINIC.placeholders(), **OWN_VALUES)
        assert text.startswith(("【幸福里健康】", "[幸福里健康]")), text


def test_without_a_signature_an_sms_opens_with_the_clinics_name():
    clinic = Settings.from_mapping({}).clinic
    assert say("followup_invite", "zh", channel="sms", **clinic.placeholders()).startswith("【Careloop 健康管理中心】")
    assert say("followup_invite", "en", channel="sms", **clinic.placeholders()).startswith("[Careloop Health Centre]")
