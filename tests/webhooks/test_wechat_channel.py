"""The WeChat channel through the dispatcher and the webhook: an opt-out at send, a template's delivery report,
the 48-hour window, minimum disclosure and unsubscribe, all counted at the fake WeChat API. The adapter, its
client, token, errors, QR codes and passive replies have their own tests in tests/bot/channels/wechat/."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.followups import due_followups
from bot.models import OutboxMessage
from bot.outbox.queue import enqueue
from bot.timers import due_timers
from care.followups import schedule_followup
from security.audit import AuditEntry
from tests.conftest import TEST_ACTOR
from tests.webhooks.conftest import WECHAT_TEMPLATE_ID

HEALTH_WORDS = ["PHQ", "问卷", "心情", "抑郁", "做事时", "情绪", "phq9", "血压", "血糖"]


def dispatch(wechat_bot) -> int:
    return wechat_bot.dispatcher.tick()


# -- errors ------------------------------------------------------------------------------------------------
def test_a_43004_from_the_dispatcher_opts_the_patient_out(db, wechat_bot, wechat_fake, wechat_patient):
    patient = wechat_patient()
    wechat_fake.unsubscribed_openids.add(patient.wechat_openid)
    enqueue(db, idempotency_key="t-43004", channel="wechat", kind="text", purpose="reply",
            address=patient.wechat_openid, payload={"text": "您好"}, patient=patient)
    db.flush()
    dispatch(wechat_bot)
    db.expire_all()
    assert db.scalars(select(OutboxMessage).where(OutboxMessage.idempotency_key == "t-43004")).one().status == "failed"
    assert patient.consent_for("wechat").opted_out


# -- templates and their send results ------------------------------------------------------------------------
def test_a_template_message_records_its_msgid_and_the_job_finish_event_marks_it_delivered(
        db, wechat_bot, wechat_fake, wechat_patient, wechat_post, wechat_peer):
    patient = wechat_patient()
    enqueue(db, idempotency_key="t-template", channel="wechat", kind="template", purpose="followup_invite",
            address=patient.wechat_openid, payload={"template_id": WECHAT_TEMPLATE_ID,
                                                    "data": {"first": {"value": "您有一项健康随访，回复1开始。"}}},
            patient=patient)
    db.flush()
    dispatch(wechat_bot)
    (call,) = wechat_fake.calls("message/template/send")
    assert call.body["template_id"] == WECHAT_TEMPLATE_ID
    assert call.body["touser"] == patient.wechat_openid
    row = db.scalars(select(OutboxMessage).where(OutboxMessage.idempotency_key == "t-template")).one()
    db.refresh(row)
    assert row.status == "sent"
    assert row.provider_id == str(call.answer["msgid"])
    event = wechat_peer.event_xml(patient.wechat_openid, "TEMPLATESENDJOBFINISH", MsgID=call.answer["msgid"],
                                  Status="success")
    response = wechat_post(event)
    assert response.get_data(as_text=True) == "success"
    db.refresh(row)
    assert row.status == "delivered"


# -- follow-ups: the 48-hour window and minimum disclosure ----------------------------------------------------
def invite(db, wechat_bot, patient) -> None:
    schedule_followup(db, patient, flow_id="phq9", due_at=db.info["clock"].now(), channel_order=["wechat"],
                      actor=TEST_ACTOR)
    db.flush()
    assert due_followups(db, wechat_bot.services) == 1
    db.flush()
    dispatch(wechat_bot)


def test_a_followup_inside_the_48_hour_window_goes_out_as_a_customer_service_text(
        db, wechat_bot, wechat_fake, wechat_patient, wechat_say, clock):
    patient = wechat_patient()
    wechat_say(patient.wechat_openid, "你好")
    clock.advance(hours=47)
    invite(db, wechat_bot, patient)
    assert wechat_fake.calls("message/template/send") == []
    (text,) = [content for openid, content in wechat_fake.sent_texts() if openid == patient.wechat_openid]
    assert "回复1开始" in text


@pytest.mark.parametrize("spoke_hours_ago", [49, None])
def test_a_followup_outside_the_48_hour_window_goes_out_as_a_template_message(
        db, wechat_bot, wechat_fake, wechat_patient, wechat_say, clock, spoke_hours_ago):
    patient = wechat_patient()
    if spoke_hours_ago is not None:
        wechat_say(patient.wechat_openid, "你好")
        clock.advance(hours=spoke_hours_ago)
    invite(db, wechat_bot, patient)
    assert wechat_fake.calls("message/custom/send") == []
    (call,) = wechat_fake.calls("message/template/send")
    assert call.body["touser"] == patient.wechat_openid
    assert call.body["template_id"] == WECHAT_TEMPLATE_ID


# -- the clinic's template per purpose (WECHAT_TEMPLATE_<PURPOSE>) ------------------------------------------------
PER_PURPOSE = {"FOLLOWUP": "TPL-followup-own", "REMINDER": "TPL-reminder-own", "RESULT": "TPL-result-own"}


@pytest.mark.parametrize("wechat_templates", [PER_PURPOSE])
def test_an_invitation_outside_the_window_uses_the_followup_template(db, wechat_bot, wechat_fake, wechat_patient):
    invite(db, wechat_bot, wechat_patient())
    (call,) = wechat_fake.calls("message/template/send")
    assert call.body["template_id"] == "TPL-followup-own"


@pytest.mark.parametrize(("wechat_templates", "used"), [
    (PER_PURPOSE, "TPL-reminder-own"),
    ({"FOLLOWUP": "TPL-followup-own"}, "TPL-followup-own"),  # no REMINDER template: FOLLOWUP's
])
def test_a_reminder_outside_the_window_uses_the_reminder_template(db, wechat_bot, wechat_fake, wechat_patient,
                                                                   clock, used):
    from bot.conversations import begin

    patient = wechat_patient()
    begin(db, wechat_bot.services, patient, "phq9", channel="wechat", actor=TEST_ACTOR)
    db.flush()
    clock.advance(hours=49)  # the reminder fell due at 24 h; the patient has not written for 49
    assert due_timers(db, wechat_bot.services) == 1
    db.flush()
    dispatch(wechat_bot)
    (call,) = wechat_fake.calls("message/template/send")
    assert call.body["template_id"] == used


def test_what_reaches_wechat_for_a_followup_carries_no_health_content(
        db, wechat_bot, wechat_fake, wechat_patient, wechat_say, clock):
    patient = wechat_patient()
    wechat_say(patient.wechat_openid, "你好")
    invite(db, wechat_bot, patient)  # the invitation
    reply = wechat_say(patient.wechat_openid, "1")  # the patient opens the conversation: now questions may come
    assert "（1/9）" in reply
    clock.advance(hours=25)
    assert due_timers(db, wechat_bot.services) == 1  # the reminder after a day of silence
    db.flush()
    dispatch(wechat_bot)
    outward = [call.body for call in wechat_fake.requests if call.path.startswith("/cgi-bin/message/")]
    assert len(outward) == 2
    for body in outward:
        for word in HEALTH_WORDS:
            assert word not in str(body), (word, body)
        assert patient.name not in str(body)


# -- unsubscribe ------------------------------------------------------------------------------------------------
def test_unsubscribe_turns_the_channel_off_audited_and_nothing_is_sent_on_it_afterwards(
        db, wechat_bot, wechat_fake, wechat_patient, wechat_post, wechat_peer):
    patient = wechat_patient()
    enqueue(db, idempotency_key="t-queued", channel="wechat", kind="text", purpose="reminder",
            address=patient.wechat_openid, payload={"text": "您好"}, patient=patient)
    db.flush()
    response = wechat_post(wechat_peer.event_xml(patient.wechat_openid, "unsubscribe"))
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "success"
    db.expire_all()
    assert patient.consent_for("wechat").opted_out
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "consent.opt_out", AuditEntry.patient_id == patient.id)) == 1
    invite_attempted = schedule_followup(db, patient, flow_id="phq9", due_at=db.info["clock"].now(),
                                         channel_order=["wechat"], actor=TEST_ACTOR)
    db.flush()
    due_followups(db, wechat_bot.services)
    db.flush()
    dispatch(wechat_bot)
    assert [call for call in wechat_fake.requests if call.path.startswith("/cgi-bin/message/")] == []
    assert db.scalars(select(OutboxMessage).where(OutboxMessage.idempotency_key == "t-queued")).one().status == \
        "cancelled"
    assert invite_attempted.status == "unanswered"  # no usable channel: it went to the staff queue


def test_a_subscribe_with_a_known_openid_turns_the_channel_back_on(db, wechat_patient, wechat_post, wechat_peer,
                                                                  clock):
    patient = wechat_patient()
    wechat_post(wechat_peer.event_xml(patient.wechat_openid, "unsubscribe"))
    clock.advance(seconds=30)
    response = wechat_post(wechat_peer.event_xml(patient.wechat_openid, "subscribe"))
    assert "血压" in wechat_peer.read_reply(response.data)["Content"]  # the menu
    db.expire_all()
    assert not patient.consent_for("wechat").opted_out


def test_a_repeated_event_is_processed_once(db, wechat_patient, wechat_post, wechat_peer):
    patient = wechat_patient()
    event = wechat_peer.event_xml(patient.wechat_openid, "unsubscribe", create_time=wechat_peer.now() - 10)
    for _ in range(3):
        assert wechat_post(event).get_data(as_text=True) == "success"
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "consent.opt_out", AuditEntry.patient_id == patient.id)) == 1
