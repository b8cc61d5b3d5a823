"""The same WeChat message delivered three times at once, to a real threaded server on a fresh database."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from bot.models import ConversationMessage, Direction, InboundReceipt
from care.models import FlowResult, Patient
from care.patients import EnrolmentRequest, enroll
from careloop import migrate
from careloop.app import create_app
from careloop.runtime import Runtime, build_runtime
from security.clock import FixedClock
from tests.conftest import TEST_ACTOR
from tests.fakes.wechat_server import FakeWeChat, WeChatPeer
from tests.webhooks.conftest import WECHAT_AES_KEY, WECHAT_APPID, WECHAT_TOKEN, wechat_settings_for

OPENID = "oConcurrentDeliveries00000001"


@pytest.fixture
def live_runtime(fresh_settings, wechat_fake: FakeWeChat) -> Iterator[Runtime]:
    clock = FixedClock(datetime(2026, 11, 29, 2, 0, tzinfo=UTC))
    runtime = build_runtime(wechat_settings_for(fresh_settings, wechat_fake), clock=clock, create_key=True)
    migrate.upgrade(runtime.db.engine)
    yield runtime
    runtime.close()


@pytest.fixture
def live_url(live_runtime: Runtime) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, create_app(runtime=live_runtime), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()


def post(address: str, query: dict[str, str], body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(address, timeout=30)
    try:
        connection.request("POST", "/webhooks/wechat?" + urlencode(query), body=body,
                           headers={"Content-Type": "text/xml"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_three_concurrent_deliveries_are_processed_once_and_answered_identically(live_runtime, live_url):
    with live_runtime.db.unit_of_work() as session:
        patient_id = enroll(session, EnrolmentRequest(card_no="C0000001", name="并发测试", gender="F",
                                                      birth_date=datetime(1958, 3, 2).date(), phone="+8613900000001",
                                                      language="zh", wechat_openid=OPENID), actor=TEST_ACTOR).patient.id
    peer = WeChatPeer(WECHAT_TOKEN, WECHAT_APPID, WECHAT_AES_KEY, now=lambda: live_runtime.clock.now().timestamp())
    status, started = post(live_url, *peer.signed(peer.text_xml(OPENID, "问卷")))
    assert status == 200
    assert "（1/9）" in peer.read_reply(started)["Content"]

    query, body = peer.signed(peer.text_xml(OPENID, "2", msg_id=6_000_000_000_000_001))
    barrier = threading.Barrier(3)
    answers: list[tuple[int, bytes]] = []

    def deliver() -> None:
        barrier.wait()
        answers.append(post(live_url, query, body))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert [status for status, _ in answers] == [200, 200, 200]
    replies = [peer.read_reply(content) for _, content in answers]
    assert all("（2/9）" in reply["Content"] for reply in replies)
    assert len({reply["Content"] for reply in replies}) == 1
    assert len({(reply["ToUserName"], reply["FromUserName"], reply["CreateTime"]) for reply in replies}) == 1
    with live_runtime.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(InboundReceipt).where(
            InboundReceipt.provider_key == "6000000000000001")) == 1
        patient = session.get(Patient, patient_id)
        assert patient is not None
        inbound = session.scalar(select(func.count()).select_from(ConversationMessage).where(
            ConversationMessage.patient_id == patient_id, ConversationMessage.direction == Direction.IN.value))
        assert inbound == 2  # "问卷" and one "2"
        assert session.scalar(select(func.count()).select_from(FlowResult).where(
            FlowResult.patient_id == patient_id, FlowResult.name == "phq9_q1")) == 1
