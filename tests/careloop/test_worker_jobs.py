"""Every job of ``careloop worker --once`` does its work on a real database (SQLite in WAL mode, or
PostgreSQL) with WeChat and Twilio live against the local fakes, and none waits for a lock.

On SQLite every transaction begins IMMEDIATE (it holds the database's one write lock), so a job that
opened a second connection while its own transaction was open (the binding-QR job fetching the
WeChat access_token did) would wait for itself until the busy timeout (15 s) and fail with
"database is locked": the run would exit 1 saying so, after at least that long.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import select, text

from bot.conversations import begin
from bot.models import BindingToken, ConversationSession, InboundReceipt, OutboxMessage
from bot.outbox.queue import enqueue
from bot.recordings import recording_completed
from care.followups import schedule_followup
from care.models import FollowUp, Patient, Recording
from care.patients import EnrolmentRequest, enroll
from careloop.bot_runtime import bot_for
from careloop.runtime import Runtime, build_runtime
from careloop.settings import Settings
from security.crypto import DataKey
from tests.careloop.workers import careloop_command, daytime_zone, worker_env
from tests.conftest import TEST_ACTOR
from tests.fakes.twilio_server import FakeTwilio
from tests.fakes.wechat_server import FakeWeChat
from tests.webhooks.conftest import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM, WECHAT_APPID, WECHAT_SECRET

JOBS = ("due_followups", "conversation_timers", "dispatch_outbox", "prune_receipts", "store_recordings",
        "binding_qr_codes", "rewrap_keys", "seal_audit")


@pytest.fixture
def wechat() -> Iterator[FakeWeChat]:
    # Tokens that live less than the refresh margin (5 min): every job that calls WeChat has to go to
    # the shared token store for one, as a job does whenever the token is due for its refresh.
    with FakeWeChat(WECHAT_APPID, WECHAT_SECRET, token_ttl=240) as fake:
        yield fake


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM) as fake:
        yield fake


def _enrol(session, number: int, **extra) -> Patient:
    patient = enroll(session, EnrolmentRequest(
        card_no=f"J{number:07d}", name=f"测试{number}", gender="M", birth_date=date(1955, 3, 1),
        phone=f"+8613900{number:06d}", **extra), actor=TEST_ACTOR).patient
    session.flush()
    return patient


@pytest.fixture
def clinic(run_cli, fresh_settings: Settings, twilio: FakeTwilio) -> Iterator[Runtime]:
    """A database where every job has something due, committed, as an operator's clinic would have."""
    code, _out, err = run_cli("init")
    assert code == 0, err
    runtime = build_runtime(fresh_settings)
    services = bot_for(runtime).services
    zone = daytime_zone()
    with runtime.db.unit_of_work() as session:
        now = runtime.clock.now()
        invited = _enrol(session, 1, wechat_openid="oJobsTestOpenId0000000000001")
        invited.timezone = zone
        schedule_followup(session, invited, flow_id="phq9", due_at=now - timedelta(minutes=1), actor=TEST_ACTOR,
                          channel_order=["wechat", "sms"])
        waiting = _enrol(session, 2)
        waiting.timezone = zone
        begin(session, services, waiting, "phq9", channel="sms", actor=TEST_ACTOR)
        session.flush()
        conversation = session.scalars(select(ConversationSession).where(
            ConversationSession.patient_id == waiting.id)).one()
        conversation.next_timer_at = now - timedelta(minutes=1)
        called = _enrol(session, 3)
        call = begin(session, services, called, "phq9", channel="voice", actor=TEST_ACTOR).conversation
        call.call_sid = "CA" + uuid.uuid4().hex
        session.flush()
        recording_sid, _url = twilio.add_recording(call.call_sid)
        recording_completed(session, recording_sid=recording_sid, call_sid=call.call_sid, session_id=call.id,
                            purpose="call", duration_seconds=4, source_url=None)
        _enrol(session, 4)  # enrolled, not bound on WeChat: gets a binding QR code
        reader = _enrol(session, 5, wechat_openid="oJobsTestOpenId0000000000005")
        for channel, kind, address in (("wechat", "text", reader.wechat_openid), ("sms", "text", reader.phone),
                                       ("voice", "call", reader.phone)):
            enqueue(session, idempotency_key=f"jobs:{channel}", channel=channel, kind=kind, purpose="reminder",
                    address=address, payload={"text": "您好，这是一条提醒。"}, patient=reader)
        session.add(InboundReceipt(channel="sms", provider_key="SM-old-receipt", patient_id=reader.id,
                                   received_at=now - timedelta(days=30)))
    code, _out, err = run_cli("keys", "rotate")
    assert code == 0, err
    yield runtime
    runtime.close()


def test_every_job_of_worker_once_does_its_work_without_waiting_for_a_lock(clinic, fresh_settings, wechat, twilio,
                                                                           dialect_name, tmp_path):
    reopened = build_runtime(fresh_settings)
    rotated = reopened.key_ring.primary  # the version `keys rotate` made primary
    reopened.close()
    env = worker_env(fresh_settings, channels="console,wechat,sms,voice", wechat_base=wechat.base_url,
                     twilio_base=twilio.base_url)
    done = subprocess.run(careloop_command("worker", "--once"), env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "database is locked" not in output
    assert "Traceback" not in output
    handled = {name: int(count) for name, count in re.findall(r"^(\w+): (\d+)$", done.stdout, re.MULTILINE)}
    assert set(handled) >= set(JOBS), done.stdout
    assert all(handled[name] >= 1 for name in JOBS), handled

    with clinic.db.unit_of_work() as session:
        if dialect_name == "sqlite":
            assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        followup = session.scalars(select(FollowUp)).one()
        assert (followup.status, followup.current_channel) == ("invited", "wechat")
        outbox = {row.idempotency_key: row.status for row in session.scalars(select(OutboxMessage))}
        assert {outbox[f"jobs:{channel}"] for channel in ("wechat", "sms", "voice")} == {"sent"}
        assert [status for key, status in outbox.items() if key.startswith("followup:")] == ["sent"]
        assert session.scalars(select(Recording)).one().status == "deleted"
        assert session.scalars(select(InboundReceipt)).first() is None
        assert session.scalars(select(BindingToken).where(BindingToken.qr_ticket.column().is_not(None))).first()
        assert {row.kek_version for row in session.scalars(select(DataKey))} == {rotated}
        assert session.execute(text("SELECT count(*) FROM audit_log WHERE seq IS NULL")).scalar() == 0
    assert wechat.calls("qrcode/create")
    assert len(wechat.calls("message/custom/send")) == 2  # the reminder and the follow-up's invitation
    assert twilio.requests_for("messages.create")
    assert twilio.requests_for("calls.create")
    assert twilio.deleted_recordings
