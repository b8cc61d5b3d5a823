"""bot/channels/wechat/adapter.py: customer-service texts and template messages, counted at the fake WeChat API."""

from __future__ import annotations

import pytest

from tests.bot.channels.conftest import outgoing
from tests.bot.channels.wechat.conftest import OPENID
from tests.webhooks.conftest import WECHAT_APPID, WECHAT_SECRET, WECHAT_TEMPLATE_ID


def test_a_text_goes_out_as_a_customer_service_message_with_a_fetched_token(adapter, wechat_fake):
    result = adapter.send(outgoing("wechat", OPENID, payload={"text": "您好，测试"}))
    assert result.outcome == "sent"
    (token_call,) = wechat_fake.calls("stable_token")
    assert token_call.body == {"grant_type": "client_credential", "appid": WECHAT_APPID, "secret": WECHAT_SECRET,
                               "force_refresh": False}
    (call,) = wechat_fake.calls("message/custom/send")
    assert call.body == {"touser": OPENID, "msgtype": "text", "text": {"content": "您好，测试"}}
    assert call.query["access_token"] == token_call.answer["access_token"]


def test_a_template_message_goes_out_with_its_data_and_link_and_keeps_its_msgid(adapter, wechat_fake):
    data = {"first": {"value": "您有一项健康随访，回复1开始。"}}
    result = adapter.send(outgoing("wechat", OPENID, kind="template", payload={
        "template_id": WECHAT_TEMPLATE_ID, "data": data, "url": "https://clinic.example.test/r"}))
    (call,) = wechat_fake.calls("message/template/send")
    assert (call.body["touser"], call.body["template_id"], call.body["data"], call.body["url"]) == (
        OPENID, WECHAT_TEMPLATE_ID, data, "https://clinic.example.test/r")
    assert (result.outcome, result.provider_id) == ("sent", str(call.answer["msgid"]))


@pytest.mark.parametrize(("wechat_templates", "purpose", "used"), [
    ({"FOLLOWUP": "TPL-followup-own", "REMINDER": "TPL-reminder-own", "RESULT": "TPL-result-own"},
     "result", "TPL-result-own"),
    ({"FOLLOWUP": "TPL-followup-own", "REMINDER": "TPL-reminder-own"}, "reminder", "TPL-reminder-own"),
    ({"FOLLOWUP": "TPL-followup-own"}, "result", "TPL-followup-own"),
])
def test_a_template_message_without_an_id_takes_its_purposes_template(adapter, wechat_fake, purpose, used):
    result = adapter.send(outgoing("wechat", OPENID, kind="template", purpose=purpose,
                                   payload={"text": "您有一份新的报告。"}))
    assert result.outcome == "sent"
    (call,) = wechat_fake.calls("message/template/send")
    assert call.body["template_id"] == used
    assert call.body["data"] == {"first": {"value": "您有一份新的报告。"}}


@pytest.mark.parametrize("wechat_templates", [{}])
def test_a_template_message_without_any_template_configured_fails_plainly(adapter, wechat_fake):
    result = adapter.send(outgoing("wechat", OPENID, kind="template", purpose="result",
                                   payload={"text": "您有一份新的报告。"}))
    assert (result.outcome, result.error_code) == ("failed", "template")
    assert wechat_fake.calls("message/template/send") == []


def test_a_kind_wechat_cannot_send_fails_and_nothing_reaches_wechat(adapter, wechat_fake):
    result = adapter.send(outgoing("wechat", OPENID, kind="call", payload={"session_id": "x"}))
    assert (result.outcome, result.error_code) == ("failed", "kind")
    assert wechat_fake.requests == []


def test_an_unknown_outcome_cannot_be_looked_up_at_wechat(adapter, wechat_fake):
    result = adapter.reconcile(outgoing("wechat", OPENID))
    assert (result.outcome, result.error_code) == ("unconfirmed", "no_lookup")
    assert wechat_fake.requests == []  # nothing asked, nothing sent: the dispatcher applies the guarantee
