"""The console channel: for the demo and the admin simulator; messages stay in the conversation log."""

from __future__ import annotations

from bot.channels.base import ChannelAdapter, ChannelEnvironment, OutgoingMessage, SendResult, register_channel


class ConsoleAdapter:
    """Delivers by doing nothing: the conversation log already holds what was said."""

    name = "console"
    kind = "text"
    looks_up = True

    def send(self, message: OutgoingMessage) -> SendResult:
        return SendResult("sent", provider_id=f"console-{message.id}")

    def reconcile(self, message: OutgoingMessage) -> SendResult:
        return SendResult("sent", provider_id=f"console-{message.id}")


@register_channel("console")
def make_console(_environment: ChannelEnvironment) -> ChannelAdapter:
    return ConsoleAdapter()
