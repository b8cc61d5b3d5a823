"""bot/channels/wechat/binding_qr.py: a 30-day QR code per unbound patient, made at the fake WeChat API and kept
on the patient's one-time binding token; the worker's job that keeps every unbound patient's code live."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import select

from bot.channels.wechat import BindingQrJob, WeChatApiError, keep_binding_qr, request_binding_qr
from bot.channels.wechat.binding_qr import QR_EXPIRE_SECONDS, IssuedQr
from bot.consent import opt_out
from bot.models import BindingToken
from tests.conftest import TEST_ACTOR


@pytest.fixture
def unit_of_work(db):
    """The job's transactions, in the test's (flushed, never committed); ``entered`` counts them."""

    @contextmanager
    def enter():
        enter.entered += 1
        for hook in enter.before.pop(enter.entered, []):
            hook()
        yield db
        db.flush()

    enter.entered = 0
    enter.before = {}
    return enter


def test_wechat_is_asked_for_a_30_day_string_scene_code_carrying_a_one_time_bind_scene(adapter, wechat_fake):
    issued = request_binding_qr(adapter)
    (call,) = wechat_fake.calls("qrcode/create")
    assert call.body["action_name"] == "QR_STR_SCENE"
    assert call.body["expire_seconds"] == QR_EXPIRE_SECONDS == 30 * 24 * 3600
    scene = call.body["action_info"]["scene"]["scene_str"]
    assert scene.startswith("bind:")
    assert len(scene) > len("bind:") + 20
    assert (issued.scene, issued.ticket, issued.expire_seconds) == (scene, call.answer["ticket"], QR_EXPIRE_SECONDS)
    assert request_binding_qr(adapter).scene != scene  # every code its own scene


def test_a_refused_code_is_an_api_error_with_wechats_code(adapter, wechat_fake):
    request_binding_qr(adapter)  # a token first
    wechat_fake.fail_next("qrcode/create", errcode=45009)
    with pytest.raises(WeChatApiError) as refused:
        request_binding_qr(adapter)
    assert refused.value.errcode == 45009


def test_a_kept_code_is_the_patients_binding_token_with_its_ticket_and_link(db, make_patient, clock):
    patient = make_patient()
    qr = keep_binding_qr(db, patient, IssuedQr(scene="bind:some-scene-of-our-own", ticket="gQH/ticket+1==",
                                               expire_seconds=3600))
    db.flush()
    (token,) = db.scalars(select(BindingToken).where(BindingToken.patient_id == patient.id))
    assert token.qr_ticket == "gQH/ticket+1=="
    assert qr.url == "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=" + quote("gQH/ticket+1==", safe="")
    assert qr.expires_at == token.expires_at == clock.now() + timedelta(seconds=3600)  # WeChat's life, if shorter


def test_every_unbound_patient_gets_a_binding_qr_code_once(db, wechat_bot, wechat_fake, make_patient, clock,
                                                           unit_of_work):
    job = BindingQrJob(wechat_bot.services.adapters["wechat"], unit_of_work)
    waiting = make_patient()
    make_patient(wechat_openid="o-already-bound")
    refused = make_patient()
    opt_out(db, refused, "wechat", actor=TEST_ACTOR, reason="test")
    db.flush()
    assert job.tick() == 1
    tokens = list(db.scalars(select(BindingToken)))
    assert [token.patient_id for token in tokens] == [waiting.id]
    assert tokens[0].qr_ticket
    assert job.tick() == 0  # a live code is not made again
    clock.advance(days=28)  # within three days of its 30-day end: renewed
    assert job.tick() == 1
    assert len(wechat_fake.calls("qrcode/create")) == 2


def test_a_refusal_stops_the_batch_and_nothing_is_kept(db, wechat_bot, wechat_fake, make_patient, unit_of_work):
    job = BindingQrJob(wechat_bot.services.adapters["wechat"], unit_of_work)
    make_patient()
    make_patient()
    db.flush()
    wechat_fake.fail_next("qrcode/create", errcode=-1)
    assert job.tick() == 0
    assert len(wechat_fake.calls("qrcode/create")) == 1  # the second patient waits for the next tick
    assert list(db.scalars(select(BindingToken))) == []
    assert job.tick() == 2


def test_a_code_made_for_a_patient_bound_meanwhile_is_not_kept(db, wechat_bot, make_patient, unit_of_work):
    job = BindingQrJob(wechat_bot.services.adapters["wechat"], unit_of_work)
    patient = make_patient()
    db.flush()

    def bind() -> None:
        patient.wechat_openid = "o-bound-while-the-code-was-made"
        db.flush()

    unit_of_work.before[2] = [bind]  # the job's second transaction, after WeChat made the code
    assert job.tick() == 0
    assert list(db.scalars(select(BindingToken))) == []
