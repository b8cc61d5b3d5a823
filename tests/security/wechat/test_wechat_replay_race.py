"""One captured plain-mode signature raced with several bodies at once, to a real threaded server on a
fresh database: the database's unique (timestamp, nonce) lets exactly one body in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bot.models import InboundReceipt, WeChatNonce
from care.patients import EnrolmentRequest, enroll
from careloop import migrate
from careloop.runtime import Runtime, build_runtime
from security.clock import FixedClock
from tests.conftest import TEST_ACTOR
from tests.fakes.wechat_server import FakeWeChat, WeChatPeer
from tests.webhooks.conftest import WECHAT_APPID, WECHAT_TOKEN, wechat_settings_for
from tests.webhooks.test_wechat_concurrency import live_url, post  # noqa: F401 - the threaded server

OPENIDS = [f"oRacedPlainBody{n:014d}" for n in range(4)]


@pytest.fixture
def live_runtime(fresh_settings, wechat_fake: FakeWeChat) -> Iterator[Runtime]:
    """An account in plain mode on a database of its own."""
    clock = FixedClock(datetime(2026, 11, 29, 2, 0, tzinfo=UTC))
    runtime = build_runtime(wechat_settings_for(fresh_settings, wechat_fake, safe_mode=False), clock=clock,
                            create_key=True)
    migrate.upgrade(runtime.db.engine)
    yield runtime
    runtime.close()


def test_a_signature_raced_with_four_bodies_lets_one_in(live_runtime, live_url):  # noqa: F811 - fixture
    with live_runtime.db.unit_of_work() as session:
        for n, openid in enumerate(OPENIDS):
            enroll(session, EnrolmentRequest(card_no=f"C00001{n:02d}", name="重放测试", gender="F",
                                             birth_date=datetime(1958, 3, 2).date(), phone=f"+861390000{n:04d}",
                                             language="zh", wechat_openid=openid), actor=TEST_ACTOR)
    peer = WeChatPeer(WECHAT_TOKEN, WECHAT_APPID, now=lambda: live_runtime.clock.now().timestamp())
    query, _ = peer.signed(peer.text_xml(OPENIDS[0], "帮助"))
    bodies = [peer.text_xml(openid, "帮助").encode() for openid in OPENIDS]
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = []

    def deliver(body: bytes) -> None:
        barrier.wait()
        statuses.append(post(live_url, query, body)[0])

    threads = [threading.Thread(target=deliver, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(statuses) == [200, 403, 403, 403]
    with live_runtime.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(InboundReceipt)) == 1
        assert session.scalar(select(func.count()).select_from(WeChatNonce)) == 1
