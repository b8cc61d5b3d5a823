"""A turn that fails inside is answered: an apology in the patient's language, a staff task, a log line
without PHI, and a 200 so the provider does not redeliver a poisoned message.

The failure is real: a flow (tests/webhooks/fixtures/failing_flows) writes text into a yes/no profile
field, which the record refuses when the answer is applied.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.followups import due_followups
from bot.models import ConversationSession, InboundReceipt
from care.followups import schedule_followup
from care.models import StaffTask
from careloop.bot_runtime import BotRuntime, build_bot
from tests.conftest import TEST_ACTOR
from tests.webhooks.test_twilio_voice import Call

FAILING_FLOWS = Path(__file__).parent / "fixtures" / "failing_flows"


@pytest.fixture
def wechat_bot(wechat_runtime) -> BotRuntime:
    wechat_runtime.bot = build_bot(wechat_runtime, flow_directories=(FAILING_FLOWS,))
    return wechat_runtime.bot


@pytest.fixture
def twilio_bot(twilio_runtime) -> BotRuntime:
    twilio_runtime.bot = build_bot(twilio_runtime, flow_directories=(FAILING_FLOWS,))
    return twilio_runtime.bot


def start_failing_flow(db, clock, services, patient, channel):
    schedule_followup(db, patient, flow_id="failing_effect", due_at=clock.now(), channel_order=[channel],
                      actor=TEST_ACTOR)
    db.flush()
    assert due_followups(db, services) == 1
    db.flush()


def tasks(db, patient):
    return list(db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)))


@pytest.mark.parametrize(("lang", "apology"), [("zh", "抱歉"), ("en", "Sorry")])
def test_a_failed_turn_over_wechat_is_answered_with_an_apology_and_a_task(
    db, clock, wechat_bot, wechat_patient, wechat_post, wechat_peer, caplog, lang, apology
):
    patient = wechat_patient(language=lang, name="失败测试")
    start_failing_flow(db, clock, wechat_bot.services, patient, "wechat")
    go = wechat_post(wechat_peer.text_xml(patient.wechat_openid, "好"))
    assert go.status_code == 200
    caplog.set_level(logging.INFO, logger="careloop")
    xml = wechat_peer.text_xml(patient.wechat_openid, "是的我抽烟", msg_id=880001)
    response = wechat_post(xml)
    db.expire_all()
    assert response.status_code == 200
    assert apology in wechat_peer.read_reply(response.data)["Content"]

    [task] = tasks(db, patient)
    assert (task.kind, task.priority) == ("turn_failed", "high")
    assert task.details["message"] == "是的我抽烟"
    assert task.details["flow_id"] == "failing_effect"
    conversation = db.scalars(select(ConversationSession).where(ConversationSession.patient_id == patient.id)).one()
    assert conversation.end_status == "failed"
    assert patient.profile is None or not patient.profile.lifestyle  # the failed turn changed nothing

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "ValidationFailedError" in logged
    for secret in ("是的我抽烟", "失败测试", patient.wechat_openid, "maybe"):
        assert secret not in logged

    again = wechat_post(xml)  # WeChat redelivers: the same answer, no second task
    db.expire_all()
    assert again.status_code == 200
    assert wechat_peer.read_reply(again.data)["Content"] == wechat_peer.read_reply(response.data)["Content"]
    assert len(tasks(db, patient)) == 1
    assert db.scalar(select(func.count()).select_from(InboundReceipt).where(
        InboundReceipt.provider_key.like("%880001%"))) == 1


def test_a_failed_turn_over_sms_is_answered_in_twiml(db, clock, twilio_bot, make_patient, twilio_sms):
    patient = make_patient(language="en")
    start_failing_flow(db, clock, twilio_bot.services, patient, "sms")
    twilio_sms(patient.phone, "OK")
    reply = twilio_sms(patient.phone, "yes", sid="SM" + "f" * 32)
    assert len(reply) == 1
    assert reply[0].startswith("Sorry")
    assert [task.kind for task in tasks(db, patient)] == ["turn_failed"]
    assert twilio_sms(patient.phone, "yes", sid="SM" + "f" * 32) == reply
    assert len(tasks(db, patient)) == 1
    # The next message is not stuck on the failed step: the conversation is over, the patient gets the menu.
    assert "HELP" in twilio_sms(patient.phone, "hello")[0]


def test_a_failed_step_of_a_call_says_sorry_and_hangs_up(db, clock, twilio_bot, make_patient, twilio_post, settings,
                                                         twilio_fake, dispatch):
    patient = make_patient(language="zh")
    start_failing_flow(db, clock, twilio_bot.services, patient, "voice")
    dispatch()
    call = Call(twilio_post, settings, twilio_fake, to=patient.phone)
    call.begin()  # answered, recording declined: the flow's question
    twiml = call.press("1")
    assert "抱歉" in call.says()
    assert twiml.find("Hangup") is not None
    assert [task.kind for task in tasks(db, patient)] == ["turn_failed"]
    conversation = db.scalars(select(ConversationSession).where(ConversationSession.patient_id == patient.id)).one()
    assert conversation.end_status == "failed"
