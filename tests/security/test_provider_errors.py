"""What a provider says when a send fails is not kept: the outbox and the recordings keep codes and our words.

WeChat's ``errmsg`` carries hints (``invalid openid hint: [o6_bmjrPTlm6_2sgVt7hMZOPfL2M] rid: ...``),
Twilio's messages name the number (``The 'To' number +8613912345678 is not a valid phone number``), a
failed download names the URL of the recording. ``outbox.last_error`` and ``recordings.last_error``
are plain columns, so what they hold is in every copy of the database: they hold the provider's
error code and a sentence of ours, never the provider's text.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.models import OutboxMessage
from bot.outbox.queue import enqueue
from care.models import Recording
from tests.security.wechat.conftest import *  # noqa: F403 - the webhooks' fixtures (providers, runtimes)
from tests.webhooks.test_twilio_voice import (
    callback_query,
    consenting,
    place_call,
    recording_callback,
    recording_job,
)

__all__ = ["place_call", "recording_job"]

PHONE_DIGITS = "13912345678"


def drain(bot) -> None:
    while bot.dispatcher.tick() > 0:
        pass


@pytest.mark.parametrize(("errcode", "status"), [
    (45009, "queued"),   # over the API quota: retried
    (40001, "queued"),   # the token was refused (twice): retried
    (47001, "failed"),   # a refusal we have no words of our own for
    (40003, "failed"),   # a bad openid
])
def test_a_wechat_refusal_keeps_its_code_not_its_errmsg(db, wechat_bot, wechat_fake, wechat_patient, errcode,
                                                        status):
    patient = wechat_patient()
    openid = patient.wechat_openid
    errmsg = f"invalid openid hint: [{openid}] rid: 6650e1f2-{PHONE_DIGITS}"
    row = enqueue(db, idempotency_key=f"t-{errcode}", channel="wechat", kind="text", purpose="reply",
                  address=openid, payload={"text": "您好"}, patient=patient)
    db.flush()
    wechat_fake.fail_next("message/custom/send", errcode=errcode, errmsg=errmsg, times=2)
    drain(wechat_bot)
    db.expire_all()
    row = db.scalars(select(OutboxMessage).where(OutboxMessage.id == row.id)).one()
    assert (row.status, row.error_code) == (status, str(errcode))
    assert row.last_error
    assert openid not in row.last_error
    assert PHONE_DIGITS not in row.last_error
    assert "rid" not in row.last_error
    assert "hint" not in row.last_error


def test_a_twilio_refusal_keeps_its_code_not_the_number(db, make_patient, dispatch, twilio_fake):
    patient = make_patient()
    row = enqueue(db, idempotency_key="bad-number", channel="sms", kind="text", purpose="reminder",
                  address="86" + PHONE_DIGITS, payload={"text": "您好"}, patient=patient)
    db.flush()
    dispatch()
    db.refresh(row)
    assert (row.status, row.error_code) == ("failed", "21211")
    assert row.last_error
    assert PHONE_DIGITS not in row.last_error


def test_a_failed_recording_download_keeps_the_kind_of_failure_not_the_url(db, make_patient, place_call, twilio_post,
                                                                           twilio_fake, recording_job):
    patient = consenting(db, make_patient())
    call = place_call(patient)
    call.answer()
    [recording_sid] = twilio_fake.end_call(call.sid)
    recording_callback(twilio_post, call, recording_sid, callback_query(twilio_fake, call, recording_sid))
    twilio_fake.stop()  # Twilio cannot be reached: the download fails with requests' long message
    recording_job.tick()
    row = db.scalars(select(Recording).where(Recording.patient_id == patient.id)).one()
    db.refresh(row)
    assert row.status == "pending"
    assert row.last_error == "download: ConnectionError"
