"""A runtime with WeChat live against the fake WeChat API, for the turns whose answer depends on the channel."""

from __future__ import annotations

from tests.webhooks.conftest import (
    wechat_bot,
    wechat_extra,
    wechat_fake,
    wechat_patient,
    wechat_runtime,
    wechat_services,
    wechat_templates,
)

__all__ = ["wechat_bot", "wechat_extra", "wechat_fake", "wechat_patient", "wechat_runtime", "wechat_services",
           "wechat_templates"]
