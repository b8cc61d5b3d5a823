"""Binding a WeChat user by card number, as an attacker with only a WeChat account tries it.

The attacker cannot learn whether a card number exists (the answers and what follows are the same),
cannot read digits of the phone on file, cannot have a code texted to a number that opted out of
SMS, cannot guess codes or cards beyond a few tries a day, and cannot use a code after 10 minutes.
Everything goes through the webhook in safe mode, with wechatpy's real crypto.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from bot.config import BotConfig
from bot.consent import opt_out
from bot.identity import continue_binding
from bot.models import OutboxMessage
from bot.texts import TEXTS, say
from care.models import StaffTask
from tests.conftest import TEST_ACTOR

ATTACKER = "oAttackerOpenId00000000000001"
CLINIC_VALUES = {"clinic": "Careloop 健康管理中心", "phone": "400-000-0000"}


def codes_texted(db, patient=None):
    """The binding codes queued for SMS (to ``patient`` if given), oldest first."""
    db.expire_all()
    query = select(OutboxMessage).where(OutboxMessage.purpose == "binding_code").order_by(OutboxMessage.created_at)
    rows = [row for row in db.scalars(query) if patient is None or row.patient_id == patient.id]
    return [re.search(r"\d{6}", row.payload["text"]).group() for row in rows]


def binding_tasks(db, patient):
    db.expire_all()
    return db.scalar(select(func.count()).select_from(StaffTask).where(
        StaffTask.patient_id == patient.id, StaffTask.kind == "wechat_binding"))


def bound_openid(db, patient):
    db.expire_all()
    db.refresh(patient)
    return patient.wechat_openid


def test_a_card_that_exists_and_one_that_does_not_get_the_same_answers(db, make_patient, wechat_say):
    patient = make_patient()
    real = [wechat_say("oAskerOfARealCard00000000001", patient.card_no),
            wechat_say("oAskerOfARealCard00000000001", "000000")]
    made_up = [wechat_say("oAskerOfAMadeUpCard000000001", "T9999999"),
               wechat_say("oAskerOfAMadeUpCard000000001", "000000")]
    assert real == made_up
    assert real == [say("bind_code_sent", "zh", **CLINIC_VALUES), say("bind_code_wrong", "zh")]
    assert len(codes_texted(db)) == 1  # only the real card's phone got a code


def test_the_answer_shows_no_digit_of_the_phone_on_file(db, make_patient, wechat_say):
    patient = make_patient(phone="+8613912345678")
    reply = wechat_say(ATTACKER, patient.card_no)
    assert codes_texted(db, patient)
    national = "13912345678"
    assert not any(national[i:i + 3] in reply for i in range(len(national) - 2))
    assert "{tail}" not in TEXTS["bind_code_sent"]["zh"] + TEXTS["bind_code_sent"]["en"]


def test_no_code_is_texted_to_a_number_that_opted_out_of_sms(db, make_patient, wechat_say):
    patient = make_patient()
    opt_out(db, patient, "sms", actor=TEST_ACTOR, reason="keyword:stop")
    db.flush()
    reply = wechat_say(ATTACKER, patient.card_no)
    assert reply == say("bind_code_sent", "zh", **CLINIC_VALUES)
    assert codes_texted(db) == []
    assert wechat_say(ATTACKER, "123456") == say("bind_code_wrong", "zh")
    assert bound_openid(db, patient) is None


def test_the_right_code_binds_and_a_code_older_than_ten_minutes_does_not(db, make_patient, wechat_say, clock):
    early, late = make_patient(), make_patient()
    wechat_say("oQuickToAnswer00000000000001", early.card_no)
    wechat_say("oSlowToAnswer000000000000001", late.card_no)
    [early_code], [late_code] = codes_texted(db, early), codes_texted(db, late)
    clock.advance(minutes=9, seconds=59)
    assert "绑定成功" in wechat_say("oQuickToAnswer00000000000001", early_code)
    clock.advance(seconds=2)  # 10 minutes and 1 second after the code was sent
    assert wechat_say("oSlowToAnswer000000000000001", late_code) == say("bind_code_expired", "zh")
    assert bound_openid(db, early) == "oQuickToAnswer00000000000001"
    assert bound_openid(db, late) is None


def test_one_wechat_user_gets_five_tries_a_day_then_the_care_team_is_asked_to_help(db, make_patient, wechat_say,
                                                                                     clock):
    patient = make_patient()
    for guess in range(5):
        assert wechat_say(ATTACKER, f"T88{guess:05d}") == say("bind_code_sent", "zh", **CLINIC_VALUES)
    reply = wechat_say(ATTACKER, patient.card_no)
    assert reply == say("bind_limited", "zh", **CLINIC_VALUES)
    assert "医护团队" in reply
    assert codes_texted(db) == []
    assert binding_tasks(db, patient) == 1
    clock.advance(days=1, seconds=1)  # a day later the user may try again
    assert wechat_say(ATTACKER, patient.card_no) == say("bind_code_sent", "zh", **CLINIC_VALUES)
    assert len(codes_texted(db, patient)) == 1


def test_one_card_gets_five_tries_a_day_from_all_wechat_users_together(db, make_patient, wechat_say):
    patient = make_patient()
    for attacker in range(5):
        wechat_say(f"oOneOfManyAttackers{attacker:010d}", patient.card_no)
    assert wechat_say("oOneOfManyAttackers9999999999", patient.card_no) == say("bind_limited", "zh",
                                                                                **CLINIC_VALUES)
    assert len(codes_texted(db, patient)) == 5
    assert binding_tasks(db, patient) == 1
    wechat_say("oOneOfManyAttackers9999999998", patient.card_no)
    assert binding_tasks(db, patient) == 1  # one task while it is open


def test_wrong_codes_count_as_tries_and_the_right_code_is_refused_past_the_limit(db, make_patient, wechat_say):
    patient = make_patient()
    wechat_say(ATTACKER, patient.card_no)
    [code] = codes_texted(db, patient)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert [wechat_say(ATTACKER, wrong) for _ in range(3)] == [say("bind_code_wrong", "zh")] * 3
    assert wechat_say(ATTACKER, wrong) == say("bind_limited", "zh", **CLINIC_VALUES)  # the fifth try
    assert wechat_say(ATTACKER, code) == say("bind_limited", "zh", **CLINIC_VALUES)
    assert bound_openid(db, patient) is None
    assert binding_tasks(db, patient) == 1


@pytest.mark.parametrize("limit", [1, 3])
def test_the_daily_limit_is_a_setting(db, make_patient, wechat_services, limit):
    config = replace(wechat_services.config, binding_attempts_per_day=limit)
    patient = make_patient()
    steps = [continue_binding(db, config, ATTACKER, f"T77{n:05d}", actor=TEST_ACTOR).reply_key for n in range(limit)]
    assert steps == ["bind_code_sent"] * limit
    assert continue_binding(db, config, ATTACKER, patient.card_no, actor=TEST_ACTOR).reply_key == "bind_limited"


def test_a_greeting_is_not_counted_as_a_card_number(db, wechat_say):
    for _ in range(6):
        assert "卡号" in wechat_say(ATTACKER, "你好")
    assert wechat_say(ATTACKER, "T1234567") == say("bind_code_sent", "zh", **CLINIC_VALUES)


def test_the_texts_of_binding_exist_in_both_languages():
    for key in ("bind_code_sent", "bind_code_wrong", "bind_code_expired", "bind_limited", "bind_code_sms"):
        assert set(TEXTS[key]) == {"zh", "en"}
    assert BotConfig.__dataclass_fields__["binding_code_minutes"].default == 10  # the texts say 10 minutes
