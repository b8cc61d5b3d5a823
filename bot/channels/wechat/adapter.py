"""The WeChat channel's outbound adapter: customer-service and template messages.

Outbox rows of ``kind="text"`` go out as customer-service messages (``message/custom/send``, only
inside the 48-hour window after the patient's last message: ``bot.followups`` decides the kind),
``kind="template"`` as template messages (``message/template/send``; the returned ``msgid`` is kept
as the row's provider id, so the ``TEMPLATESENDJOBFINISH`` event can mark it delivered)::

    {"channel": "wechat", "kind": "text", "address": "<openid>", "payload": {"text": "..."}}
    {"channel": "wechat", "kind": "template", "address": "<openid>",
     "payload": {"template_id": "...", "data": {"first": {"value": "..."}}, "url": "https://..."}}

**Reconciling an unknown outcome.** WeChat offers no way to look a sent customer-service or
template message up. For a row whose outcome is unknown (the worker died after the call started,
or the answer timed out after the request left) ``reconcile`` therefore answers ``unconfirmed``,
and the dispatcher applies the purpose's delivery guarantee (:mod:`bot.outbox.queue`): the clinic's own
messages (invitations, reminders, results, staff messages) are resent once after the lease unless
the patient has written since; replies inside a conversation are never resent. Either way the row
says ``unconfirmed`` when its fate stays unknown, never ``failed``, so a follow-up does not fall
back to another channel (and invite the same patient twice) because of a crash.
"""

from __future__ import annotations

import requests
from wechatpy.exceptions import WeChatClientException

from bot.channels.base import ChannelAdapter, ChannelEnvironment, OutgoingMessage, SendResult, register_channel
from bot.channels.wechat.client import WeChatApi
from bot.channels.wechat.errors import WeChatApiError, send_result_of


class WeChatAdapter:
    """Customer-service and template messages through the official account's API."""

    name = "wechat"
    kind = "text"
    looks_up = False  # WeChat offers no look-up of a sent message

    def __init__(self, environment: ChannelEnvironment) -> None:
        self.config = environment.config
        self.api = WeChatApi(environment)

    def send(self, message: OutgoingMessage) -> SendResult:
        if message.kind not in ("text", "template"):
            return SendResult("failed", error_code="kind", error=f"WeChat cannot send {message.kind!r} messages")
        template_id = message.payload.get("template_id") or self.config.wechat_template(message.purpose)
        if message.kind == "template" and not template_id:
            return SendResult("failed", error_code="template", error="no WeChat template id configured")
        try:
            if message.kind == "template":
                data = message.payload.get("data") or {"first": {"value": str(message.payload.get("text", ""))}}
                result = self.api.call(lambda client: client.message.send_template(
                    message.address, template_id, data, url=message.payload.get("url")))
                return SendResult("sent", provider_id=str(result.get("msgid") or "") or None)
            self.api.call(lambda client: client.message.send_text(message.address, str(message.payload.get("text"))))
        except (WeChatClientException, WeChatApiError, requests.RequestException) as error:
            return send_result_of(error)
        return SendResult("sent")

    def reconcile(self, message: OutgoingMessage) -> SendResult:
        """WeChat cannot look a message up: its fate stays unknown (see the module's docstring)."""
        return SendResult("unconfirmed", error_code="no_lookup", error="WeChat has no message lookup")


@register_channel("wechat")
def make_wechat(environment: ChannelEnvironment) -> ChannelAdapter:
    return WeChatAdapter(environment)

