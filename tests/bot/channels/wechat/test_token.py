"""bot/channels/wechat/token.py: the access_token every process shares through ``provider_credentials``,
refreshed by one process at a time, before it expires, at most once per rejected generation."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.channels.wechat import SharedAccessToken, WeChatAdapter, WeChatApiError
from bot.models import ProviderCredential
from careloop import migrate
from careloop.runtime import build_runtime
from security.clock import FixedClock
from tests.bot.channels.conftest import outgoing
from tests.bot.channels.wechat.conftest import OPENID
from tests.webhooks.conftest import wechat_settings_for


class StableToken:
    """WeChat's ``/cgi-bin/stable_token`` as the token store sees it: counts its calls, fails when told."""

    def __init__(self) -> None:
        self.calls: list[bool] = []
        self.failures: list[Exception] = []

    def __call__(self, force: bool) -> tuple[str, int]:
        self.calls.append(force)
        if self.failures:
            raise self.failures.pop(0)
        return f"token-{len(self.calls)}", 7200


@pytest.fixture
def stable_token() -> StableToken:
    return StableToken()


@pytest.fixture
def shared(runtime, clock, stable_token):
    """A token store as one process holds it; call it again for another process on the same database."""

    def make(**options) -> SharedAccessToken:
        return SharedAccessToken(runtime.db.sessions, clock, stable_token, name="wechat_access_token:test",
                                 sleep=lambda _seconds: None, **options)

    return make


def test_the_token_is_stored_encrypted_and_reused(db, adapter, wechat_fake):
    for _ in range(3):
        assert adapter.send(outgoing("wechat", OPENID)).outcome == "sent"
    assert len(wechat_fake.calls("stable_token")) == 1
    row = db.scalars(select(ProviderCredential)).one()
    assert row.value == wechat_fake.calls("stable_token")[0].answer["access_token"]
    raw = db.execute(select(ProviderCredential.__table__.c.value)).scalar_one()
    assert row.value.encode() not in raw


def test_a_token_is_refreshed_before_it_expires(adapter, wechat_fake, clock):
    adapter.send(outgoing("wechat", OPENID))
    clock.advance(seconds=7200 - 240)  # inside the five-minute margin
    adapter.send(outgoing("wechat", OPENID))
    assert len(wechat_fake.calls("stable_token")) == 2


def test_a_second_process_seeing_40001_uses_the_token_the_first_one_refreshed(adapter, another_adapter, wechat_fake):
    other = another_adapter()
    adapter.send(outgoing("wechat", OPENID))
    other.send(outgoing("wechat", OPENID))  # reads the shared token, fetches none
    stale = other.api.tokens.current()
    wechat_fake.reject_token_once()
    adapter.send(outgoing("wechat", OPENID))  # 40001: refreshes (generation 2)
    assert other.api.tokens.after_rejection(stale).generation == stale.generation + 1
    assert len(wechat_fake.calls("stable_token")) == 2  # the second process did not refresh again


def test_two_processes_needing_a_token_at_once_make_one_stable_token_call(fresh_settings, wechat_fake):
    from bot.channels.base import ChannelEnvironment
    from careloop.bot_runtime import bot_config
    from tests.webhooks.conftest import WECHAT_APPID, WECHAT_SECRET

    clock = FixedClock(datetime(2026, 11, 29, 2, 0, tzinfo=UTC))
    runtimes = [build_runtime(wechat_settings_for(fresh_settings, wechat_fake), clock=clock, create_key=True)
                for _ in range(2)]
    migrate.upgrade(runtimes[0].db.engine)
    adapters = [WeChatAdapter(ChannelEnvironment(config=bot_config(runtime), clock=clock,
                                                 open_session=runtime.db.sessions,
                                                 settings={"wechat_appid": WECHAT_APPID,
                                                           "wechat_secret": WECHAT_SECRET,
                                                           "wechat_api_base": wechat_fake.base_url}))
                for runtime in runtimes for _ in range(2)]  # two "processes" with two threads each
    wechat_fake.stable_token_delay = 0.3  # the first fetch is still under way when the others ask
    barrier = threading.Barrier(len(adapters))
    results = []

    def send(adapter: WeChatAdapter) -> None:
        barrier.wait()
        results.append(adapter.send(outgoing("wechat", OPENID)).outcome)

    threads = [threading.Thread(target=send, args=(adapter,)) for adapter in adapters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for runtime in runtimes:
        runtime.close()
    assert results == ["sent"] * 4
    assert len(wechat_fake.calls("stable_token")) == 1
    assert len(wechat_fake.calls("message/custom/send")) == 4


def test_a_failed_fetch_gives_the_refresh_lease_back_at_once(shared, stable_token):
    tokens = shared(max_wait_seconds=-1)  # waiting for somebody else's lease fails at once
    stable_token.failures.append(WeChatApiError("stable_token unreachable (ConnectTimeout)"))
    with pytest.raises(WeChatApiError, match="unreachable"):
        tokens.current()
    assert tokens.current().value == "token-2"  # not "another process holds the refresh lease"


def test_while_another_process_refreshes_a_token_still_valid_is_used(db, shared, stable_token, clock):
    first = shared().current()
    clock.advance(seconds=7200 - 60)  # inside the margin, not yet expired
    db.execute(update(ProviderCredential).values(refreshing_until=clock.now() + timedelta(seconds=30)))
    db.flush()
    assert shared(max_wait_seconds=-1).current() == first
    assert stable_token.calls == [False]


def test_with_no_valid_token_and_the_lease_held_elsewhere_the_caller_is_told(db, shared, stable_token, clock):
    shared().current()
    clock.advance(seconds=7200)  # expired
    db.execute(update(ProviderCredential).values(refreshing_until=clock.now() + timedelta(seconds=30)))
    db.flush()
    with pytest.raises(WeChatApiError, match="another process holds the refresh lease"):
        shared(max_wait_seconds=-1).current()
    assert stable_token.calls == [False]


def test_a_rejected_token_is_refreshed_forcibly_and_the_generation_moves_on(shared, stable_token):
    tokens = shared()
    first = tokens.current()
    second = tokens.after_rejection(first)
    assert (second.value, second.generation) == ("token-2", first.generation + 1)
    assert stable_token.calls == [False, True]
    assert tokens.current() == second  # cached: no third fetch
