"""Fixtures for conversations over the console channel (no provider needed)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from bot.conversations import BotServices
from bot.messages import InboundMessage, Reply
from bot.router import handle_inbound
from careloop.bot_runtime import BotRuntime, bot_for
from careloop.runtime import Runtime
from security.clock import FixedClock


@pytest.fixture
def bot(runtime: Runtime) -> BotRuntime:
    return bot_for(runtime)


@pytest.fixture
def services(bot: BotRuntime) -> BotServices:
    return bot.services


@pytest.fixture
def say_as(db: Session, services: BotServices, clock: FixedClock) -> Callable[..., Reply]:
    """Send a console message as the patient with card number ``card``; returns the reply."""

    def send(card: str, text: str, *, key: str | None = None, channel: str = "console") -> Reply:
        message = InboundMessage(channel=channel, provider_key=key or f"test:{uuid.uuid4()}", sender=card,
                                 kind="text", text=text, received_at=clock.now())
        reply = handle_inbound(db, services, message)
        db.flush()
        return reply

    return send
