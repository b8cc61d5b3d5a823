"""The WeChat channel outward: customer-service and template messages, the shared access_token, errors,
the 48-hour window, minimum disclosure and unsubscribe, all counted at the fake WeChat API."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bot.channels.base import ChannelEnvironment, OutgoingMessage
from bot.channels.wechat import WeChatAdapter
from bot.followups import due_followups
from bot.models import OutboxMessage, ProviderCredential
from bot.outbox import enqueue
from bot.timers import due_timers
from care.followups import schedule_followup
from careloop import migrate
from careloop.bot_runtime import bot_config
from careloop.runtime import build_runtime
from security.audit import AuditEntry
from security.clock import FixedClock
from tests.conftest import TEST_ACTOR
from tests.webhooks.conftest import WECHAT_APPID, WECHAT_SECRET, WECHAT_TEMPLATE_ID, wechat_settings_for

HEALTH_WORDS = ["PHQ", "问卷", "心情", "抑郁", "做事时", "情绪", "phq9", "血压", "血糖"]


def outgoing(openid: str, *, kind: str = "text", payload=None, purpose: str = "test") -> OutgoingMessage:
    return OutgoingMessage(id=uuid.uuid4(), idempotency_key=f"test:{uuid.uuid4()}", channel="wechat", kind=kind,
                           purpose=purpose, address=openid, payload=payload or {"text": "您好"}, attempts=1,
                           sending_started_at=None, patient_id=None)


@pytest.fixture
def adapter(wechat_bot) -> WeChatAdapter:
    return wechat_bot.services.adapters["wechat"]


def dispatch(wechat_bot) -> int:
    return wechat_bot.dispatcher.tick()


# -- sending ---------------------------------------------------------------------------------------------
def test_a_text_goes_out_as_a_customer_service_message_with_a_fetched_token(adapter, wechat_fake):
    result = adapter.send(outgoing("oOpenIdOfSomebody000000000001", payload={"text": "您好，测试"}))
    assert result.outcome == "sent"
    (token_call,) = wechat_fake.calls("stable_token")
    assert token_call.body == {"grant_type": "client_credential", "appid": WECHAT_APPID, "secret": WECHAT_SECRET,
                               "force_refresh": False}
    (call,) = wechat_fake.calls("message/custom/send")
    assert call.body == {"touser": "oOpenIdOfSomebody000000000001", "msgtype": "text",
                         "text": {"content": "您好，测试"}}
    assert call.query["access_token"] == token_call.answer["access_token"]


def test_the_token_is_stored_encrypted_and_reused(db, adapter, wechat_fake):
    for _ in range(3):
        assert adapter.send(outgoing("oOpenIdOfSomebody000000000001")).outcome == "sent"
    assert len(wechat_fake.calls("stable_token")) == 1
    row = db.scalars(select(ProviderCredential)).one()
    assert row.value == wechat_fake.calls("stable_token")[0].answer["access_token"]
    raw = db.execute(select(ProviderCredential.__table__.c.value)).scalar_one()
    assert row.value.encode() not in raw


def test_a_token_is_refreshed_before_it_expires(adapter, wechat_fake, clock):
    adapter.send(outgoing("oOpenIdOfSomebody000000000001"))
    clock.advance(seconds=7200 - 240)  # inside the five-minute margin
    adapter.send(outgoing("oOpenIdOfSomebody000000000001"))
    assert len(wechat_fake.calls("stable_token")) == 2


def test_a_40001_causes_exactly_one_refresh_and_one_resend(adapter, wechat_fake):
    adapter.send(outgoing("oOpenIdOfSomebody000000000001"))
    wechat_fake.reject_token_once()
    result = adapter.send(outgoing("oOpenIdOfSomebody000000000002"))
    assert result.outcome == "sent"
    tokens = wechat_fake.calls("stable_token")
    assert len(tokens) == 2
    assert tokens[1].body["force_refresh"] is True
    sends = [call for call in wechat_fake.calls("message/custom/send")
             if call.body["touser"] == "oOpenIdOfSomebody000000000002"]
    assert [call.answer["errcode"] for call in sends] == [40001, 0]
    assert sends[1].query["access_token"] == tokens[1].answer["access_token"]


def test_an_expired_token_42001_is_refreshed_once(adapter, wechat_fake):
    adapter.send(outgoing("oOpenIdOfSomebody000000000001"))
    wechat_fake.expire_tokens()
    assert adapter.send(outgoing("oOpenIdOfSomebody000000000001")).outcome == "sent"
    assert len(wechat_fake.calls("stable_token")) == 2
    assert [call.answer["errcode"] for call in wechat_fake.calls("message/custom/send")] == [0, 42001, 0]


def test_a_second_process_seeing_40001_uses_the_token_the_first_one_refreshed(adapter, wechat_runtime, wechat_fake):
    other = WeChatAdapter(ChannelEnvironment(config=bot_config(wechat_runtime), clock=wechat_runtime.clock,
                                             open_session=wechat_runtime.db.sessions,
                                             settings={"wechat_appid": WECHAT_APPID, "wechat_secret": WECHAT_SECRET,
                                                       "wechat_api_base": wechat_fake.base_url}))
    adapter.send(outgoing("oOpenIdOfSomebody000000000001"))
    other.send(outgoing("oOpenIdOfSomebody000000000001"))  # reads the shared token, fetches none
    stale = other.api.tokens.current()
    wechat_fake.reject_token_once()
    adapter.send(outgoing("oOpenIdOfSomebody000000000001"))  # 40001: refreshes (generation 2)
    assert other.api.tokens.after_rejection(stale).generation == stale.generation + 1
    assert len(wechat_fake.calls("stable_token")) == 2  # the second process did not refresh again


def test_two_processes_needing_a_token_at_once_make_one_stable_token_call(fresh_settings, wechat_fake):
    clock = FixedClock(datetime(2026, 11, 29, 2, 0, tzinfo=UTC))
    runtimes = [build_runtime(wechat_settings_for(fresh_settings, wechat_fake), clock=clock, create_key=True)
                for _ in range(2)]
    migrate.upgrade(runtimes[0].db.engine)
    adapters = [WeChatAdapter(ChannelEnvironment(config=bot_config(runtime), clock=clock,
                                                 open_session=runtime.db.sessions,
                                                 settings={"wechat_appid": WECHAT_APPID,
                                                           "wechat_secret": WECHAT_SECRET,
                                                           "wechat_api_base": wechat_fake.base_url}))
                for runtime in runtimes for _ in range(2)]  # two "processes" with two threads each
    wechat_fake.stable_token_delay = 0.3  # the first fetch is still under way when the others ask
    barrier = threading.Barrier(len(adapters))
    results = []

    def send(adapter: WeChatAdapter) -> None:
        barrier.wait()
        results.append(adapter.send(outgoing("oOpenIdOfSomebody000000000001")).outcome)

    threads = [threading.Thread(target=send, args=(adapter,)) for adapter in adapters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for runtime in runtimes:
        runtime.close()
    assert results == ["sent"] * 4
    assert len(wechat_fake.calls("stable_token")) == 1
    assert len(wechat_fake.calls("message/custom/send")) == 4


# -- errors ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("failure", "outcome", "code", "opted_out"), [
    ({"errcode": 45015}, "failed", "45015", False),   # outside the 48-hour window
    ({"errcode": 43004}, "failed", "43004", True),    # unsubscribed
    ({"errcode": 40003}, "failed", "40003", False),   # bad openid
    ({"errcode": -1}, "retry", "-1", False),          # system busy
    ({"errcode": 45009}, "retry", "45009", False),    # API quota
    ({"status": 502}, "retry", "http_502", False),
    ({"status": 503}, "retry", "http_503", False),
])
def test_errors_map_to_the_dispatchers_outcomes(adapter, wechat_fake, failure, outcome, code, opted_out):
    adapter.send(outgoing("oOpenIdOfSomebody000000000001"))  # a token first
    wechat_fake.fail_next("message/custom/send", **failure)
    result = adapter.send(outgoing("oOpenIdOfSomebody000000000001"))
    assert (result.outcome, result.error_code, result.opted_out) == (outcome, code, opted_out)


def test_a_timeout_after_the_request_left_is_unknown(wechat_runtime, wechat_fake):
    environment = ChannelEnvironment(config=bot_config(wechat_runtime), clock=wechat_runtime.clock,
                                     open_session=wechat_runtime.db.sessions, http_timeout=0.3,
                                     settings={"wechat_appid": WECHAT_APPID, "wechat_secret": WECHAT_SECRET,
                                               "wechat_api_base": wechat_fake.base_url})
    adapter = WeChatAdapter(environment)
    adapter.send(outgoing("oOpenIdOfSomebody000000000001"))
    wechat_fake.fail_next("message/custom/send", delay=1.0)
    assert adapter.send(outgoing("oOpenIdOfSomebody000000000001")).outcome == "unknown"


def test_a_connection_refused_before_the_request_left_is_retried(wechat_runtime):
    environment = ChannelEnvironment(config=bot_config(wechat_runtime), clock=wechat_runtime.clock,
                                     open_session=wechat_runtime.db.sessions, http_timeout=0.5,
                                     settings={"wechat_appid": WECHAT_APPID, "wechat_secret": WECHAT_SECRET,
                                               "wechat_api_base": "http://127.0.0.1:9"})
    result = WeChatAdapter(environment).send(outgoing("oOpenIdOfSomebody000000000001"))
    assert result.outcome == "retry"


def test_an_unknown_outcome_cannot_be_looked_up_at_wechat(adapter, wechat_fake):
    result = adapter.reconcile(outgoing("oOpenIdOfSomebody000000000001"))
    assert (result.outcome, result.error_code) == ("unconfirmed", "no_lookup")
    assert wechat_fake.requests == []  # nothing asked, nothing sent: the dispatcher applies the guarantee


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


@pytest.mark.parametrize(("wechat_templates", "purpose", "used"), [
    (PER_PURPOSE, "result", "TPL-result-own"),
    (PER_PURPOSE, "reminder", "TPL-reminder-own"),
    ({"FOLLOWUP": "TPL-followup-own"}, "result", "TPL-followup-own"),
])
def test_a_template_message_without_an_id_takes_its_purposes_template(adapter, wechat_fake, purpose, used):
    result = adapter.send(outgoing("oOpenIdOfSomebody000000000001", kind="template", purpose=purpose,
                                   payload={"text": "您有一份新的报告。"}))
    assert result.outcome == "sent"
    (call,) = wechat_fake.calls("message/template/send")
    assert call.body["template_id"] == used


@pytest.mark.parametrize("wechat_templates", [{}])
def test_a_template_message_without_any_template_configured_fails_plainly(adapter, wechat_fake):
    result = adapter.send(outgoing("oOpenIdOfSomebody000000000001", kind="template", purpose="result",
                                   payload={"text": "您有一份新的报告。"}))
    assert (result.outcome, result.error_code) == ("failed", "template")
    assert wechat_fake.calls("message/template/send") == []


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
