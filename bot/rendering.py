"""Turning the engine's neutral outputs into what a channel shows or says."""

from __future__ import annotations

from collections.abc import Sequence

from flows.outputs import Output
from flows.render import render


def render_text(outputs: Sequence[Output], lang: str) -> list[str]:
    """One text message per output, with numbered choices and a short instruction."""
    return [render(output, "text", lang).text for output in outputs]


# A WeChat passive reply holds one message; longer than this and the rest goes out as
# customer-service messages (WeChat text messages are limited to 2048 bytes).
PASSIVE_REPLY_CHARS = 600


def split_reply(channel: str, texts: list[str]) -> tuple[list[str], list[str]]:
    """The texts that go in the reply on ``channel`` and those that must follow it through the outbox.

    SMS and voice answer with every text; WeChat joins short ones into its single passive reply
    and sends the rest of a long turn as customer-service messages.
    """
    if channel != "wechat":
        return texts, []
    joined = "\n\n".join(texts)
    if len(joined) <= PASSIVE_REPLY_CHARS or len(texts) <= 1:
        return ([joined] if joined else []), []
    return texts[:1], texts[1:]
