"""Fixtures for conversations over the console channel (no provider needed)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from bot.conversations import BotServices
from bot.messages import InboundMessage, Reply
from bot.outbox.dispatcher import Dispatcher, RateLimiter
from bot.router import handle_inbound
from careloop import migrate
from careloop.bot_runtime import BotRuntime, bot_for
from careloop.runtime import Runtime, build_runtime
from security.clock import FixedClock
from tests.bot.scripted import ScriptedProvider

T = TypeVar("T")


@pytest.fixture
def provider() -> ScriptedProvider:
    """An SMS provider answering from its script ('sent' by default)."""
    return ScriptedProvider()


@pytest.fixture
def dispatcher(db, provider, clock, services) -> Dispatcher:
    @contextmanager
    def unit_of_work():
        yield db
        db.flush()

    config = replace(services.config, outbox_lease_seconds=60, retry_base_seconds=30)
    return Dispatcher(unit_of_work, {"sms": provider}, config, worker_id="w1",
                      limiter=RateLimiter({}, sleep=lambda _s: None))


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


# -- two transactions of one patient at once, on a database of their own --------------------------------
@pytest.fixture
def live_runtime(fresh_settings) -> Iterator[Runtime]:
    runtime = build_runtime(fresh_settings, clock=FixedClock(datetime(2026, 11, 29, 2, 0, tzinfo=UTC)),
                            create_key=True)
    migrate.upgrade(runtime.db.engine)
    yield runtime
    runtime.close()


def wait_until_blocked(runtime: Runtime, worker: threading.Thread) -> None:
    """Until the other transaction waits for the patient's lock (PostgreSQL), or a moment (SQLite's writer lock)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and worker.is_alive():
        if runtime.db.dialect != "postgresql":
            time.sleep(0.5)
            return
        with runtime.db.engine.connect() as connection:
            waiting = connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                              "AND datname = current_database()")).scalar()
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the second transaction never waited for the first")


def while_held(runtime: Runtime, first: Callable[[Session], T], second: Callable[[], None]) -> T:
    """Do ``first`` in a transaction left open, start ``second`` in a thread of its own, and once it
    waits for the first's locks commit the first; return what ``first`` returned."""
    session = runtime.db.sessions()
    try:
        done = first(session)
        worker = threading.Thread(target=second)
        worker.start()
        wait_until_blocked(runtime, worker)
        session.commit()
    finally:
        session.close()
    worker.join(timeout=30)
    assert not worker.is_alive()
    return done
