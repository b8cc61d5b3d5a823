"""bot/channels/wechat/errors.py: what each way a WeChat call fails means to the dispatcher."""

from __future__ import annotations

import pytest

from bot.channels.wechat import WeChatApiError, send_result_of
from tests.bot.channels.conftest import outgoing
from tests.bot.channels.wechat.conftest import OPENID


@pytest.mark.parametrize(("failure", "outcome", "code", "opted_out"), [
    ({"errcode": 45015}, "failed", "45015", False),   # outside the 48-hour window
    ({"errcode": 43004}, "failed", "43004", True),    # unsubscribed
    ({"errcode": 43101}, "failed", "43101", True),    # refused template messages
    ({"errcode": 40003}, "failed", "40003", False),   # bad openid
    ({"errcode": -1}, "retry", "-1", False),          # system busy
    ({"errcode": 45009}, "retry", "45009", False),    # API quota
    ({"status": 502}, "retry", "http_502", False),
    ({"status": 503}, "retry", "http_503", False),
    ({"status": 429}, "retry", "http_429", False),
    ({"status": 400}, "failed", "http_400", False),
])
def test_errors_map_to_the_dispatchers_outcomes(adapter, wechat_fake, failure, outcome, code, opted_out):
    adapter.send(outgoing("wechat", OPENID))  # a token first
    wechat_fake.fail_next("message/custom/send", **failure)
    result = adapter.send(outgoing("wechat", OPENID))
    assert (result.outcome, result.error_code, result.opted_out) == (outcome, code, opted_out)


def test_a_timeout_after_the_request_left_is_unknown(another_adapter, wechat_fake):
    adapter = another_adapter(http_timeout=0.3)
    adapter.send(outgoing("wechat", OPENID))
    wechat_fake.fail_next("message/custom/send", delay=1.0)
    assert adapter.send(outgoing("wechat", OPENID)).outcome == "unknown"


def test_a_connection_refused_before_the_request_left_is_retried(another_adapter):
    result = another_adapter(api_base="http://127.0.0.1:9", http_timeout=0.5).send(outgoing("wechat", OPENID))
    assert result.outcome == "retry"


def test_no_token_to_be_had_is_retried_under_its_errcode():
    assert send_result_of(WeChatApiError("stable_token refused: 40125", errcode=40125)).error_code == "40125"
    result = send_result_of(WeChatApiError("no access_token: another process holds the refresh lease"))
    assert (result.outcome, result.error_code) == ("retry", "token")


def test_an_error_that_is_none_of_wechats_is_raised_again():
    with pytest.raises(KeyError):
        send_result_of(KeyError("a bug of ours"))
