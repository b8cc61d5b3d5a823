"""The WeChat adapter of a runtime with the channel live against the fake WeChat API, and a second one
standing for another process of the same clinic (its API base, timeout and secret changeable)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.channels.base import ChannelEnvironment
from bot.channels.wechat import WeChatAdapter
from careloop.bot_runtime import bot_config
from careloop.runtime import Runtime
from tests.fakes.wechat_server import FakeWeChat
from tests.webhooks.conftest import WECHAT_APPID, WECHAT_SECRET

OPENID = "oOpenIdOfSomebody000000000001"


@pytest.fixture
def adapter(wechat_bot) -> WeChatAdapter:
    return wechat_bot.services.adapters["wechat"]


@pytest.fixture
def another_adapter(wechat_runtime: Runtime, wechat_fake: FakeWeChat) -> Callable[..., WeChatAdapter]:
    """A WeChat adapter of its own on the same database (another process)."""

    def make(*, api_base: str | None = None, http_timeout: float = 10.0, secret: str = WECHAT_SECRET) -> WeChatAdapter:
        environment = ChannelEnvironment(
            config=bot_config(wechat_runtime), clock=wechat_runtime.clock, open_session=wechat_runtime.db.sessions,
            http_timeout=http_timeout,
            settings={"wechat_appid": WECHAT_APPID, "wechat_secret": secret,
                      "wechat_api_base": api_base or wechat_fake.base_url})
        return WeChatAdapter(environment)

    return make
