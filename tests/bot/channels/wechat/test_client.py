"""bot/channels/wechat/client.py: every call made with the shared token; a rejected token refreshed once
and the call repeated once; ``stable_token`` refusals told plainly."""

from __future__ import annotations

import pytest
from wechatpy.exceptions import WeChatClientException

from bot.channels.wechat import WeChatApiError
from tests.bot.channels.conftest import outgoing
from tests.bot.channels.wechat.conftest import OPENID

OTHER = "oOpenIdOfSomebody000000000002"


def send_text(api, openid: str = OPENID):
    return api.call(lambda client: client.message.send_text(openid, "您好"))


def test_a_40001_causes_exactly_one_refresh_and_one_resend(adapter, wechat_fake):
    adapter.send(outgoing("wechat", OPENID))
    wechat_fake.reject_token_once()
    result = adapter.send(outgoing("wechat", OTHER))
    assert result.outcome == "sent"
    tokens = wechat_fake.calls("stable_token")
    assert len(tokens) == 2
    assert tokens[1].body["force_refresh"] is True
    sends = [call for call in wechat_fake.calls("message/custom/send") if call.body["touser"] == OTHER]
    assert [call.answer["errcode"] for call in sends] == [40001, 0]
    assert sends[1].query["access_token"] == tokens[1].answer["access_token"]


def test_an_expired_token_42001_is_refreshed_once(adapter, wechat_fake):
    adapter.send(outgoing("wechat", OPENID))
    wechat_fake.expire_tokens()
    assert adapter.send(outgoing("wechat", OPENID)).outcome == "sent"
    assert len(wechat_fake.calls("stable_token")) == 2
    assert [call.answer["errcode"] for call in wechat_fake.calls("message/custom/send")] == [0, 42001, 0]


def test_a_token_rejected_twice_is_not_refreshed_a_second_time(adapter, wechat_fake):
    send_text(adapter.api)
    wechat_fake.fail_next("message/custom/send", errcode=40001, times=2)
    with pytest.raises(WeChatClientException):
        send_text(adapter.api)
    assert len(wechat_fake.calls("stable_token")) == 2  # the first token, and one refresh
    assert len(wechat_fake.calls("message/custom/send")) == 3


def test_an_error_that_is_not_about_the_token_is_not_retried(adapter, wechat_fake):
    send_text(adapter.api)
    wechat_fake.fail_next("message/custom/send", errcode=45015)
    with pytest.raises(WeChatClientException):
        send_text(adapter.api)
    assert len(wechat_fake.calls("stable_token")) == 1
    assert len(wechat_fake.calls("message/custom/send")) == 2


def test_a_refused_stable_token_is_an_api_error_and_nothing_is_sent(another_adapter, wechat_fake):
    api = another_adapter(secret="not-the-secret").api
    with pytest.raises(WeChatApiError, match="stable_token refused") as refused:
        send_text(api)
    assert refused.value.errcode == 40125
    assert wechat_fake.calls("message/custom/send") == []


def test_an_unreachable_stable_token_is_an_api_error(another_adapter):
    api = another_adapter(api_base="http://127.0.0.1:9", http_timeout=0.5).api
    with pytest.raises(WeChatApiError, match="stable_token unreachable"):
        send_text(api)
