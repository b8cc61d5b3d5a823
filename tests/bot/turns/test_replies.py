"""bot/turns/replies.py: each channel's answer carries what it can; on WeChat what does not fit the passive reply
(or all of it, when the turn took too long) follows as customer-service messages, queued once under one key scheme."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from bot.messages import InboundMessage, Reply
from bot.models import OutboxMessage
from bot.router import handle_inbound
from bot.turns.replies import PASSIVE_REPLY_CHARS, fit_reply, reply_key, split_reply


def queued(db, patient):
    return [(row.idempotency_key, row.channel, row.kind, row.purpose, row.address, row.payload["text"])
            for row in db.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)
                                  .order_by(OutboxMessage.idempotency_key))]


def message_from(patient, clock, key="several-1", text="你好"):
    return InboundMessage(channel="wechat", provider_key=key, sender=patient.wechat_openid, kind="text",
                          text=text, received_at=clock.now())


@pytest.mark.parametrize(("channel", "texts", "late", "kept", "overflow"), [
    ("sms", ["一", "二"], False, ["一", "二"], []),
    ("sms", ["一", "二"], True, ["一", "二"], []),  # only WeChat has a deadline for its answer
    ("voice", ["一"], False, ["一"], []),
    ("console", [], False, [], []),
    ("wechat", [], False, [], []),
    ("wechat", ["一", "二"], False, ["一\n\n二"], []),  # short texts share the one passive reply
    ("wechat", ["一", "二"], True, [], ["一\n\n二"]),
    ("wechat", ["长" * PASSIVE_REPLY_CHARS, "二", "三"], False, ["长" * PASSIVE_REPLY_CHARS], ["二", "三"]),
    ("wechat", ["长" * (PASSIVE_REPLY_CHARS + 50)], False, ["长" * (PASSIVE_REPLY_CHARS + 50)], []),
])
def test_each_channel_answers_with_what_it_can_carry(channel, texts, late, kept, overflow):
    assert split_reply(channel, texts, late=late) == (kept, overflow)


def test_a_short_reply_in_time_is_the_passive_reply_and_nothing_is_queued(db, wechat_services, wechat_patient,
                                                                           clock):
    patient = wechat_patient()
    reply = Reply(texts=["只有一条"], patient_id=str(patient.id))
    fitted = fit_reply(db, message_from(patient, clock), reply, receipt_id=uuid.uuid4(), late=False)
    assert fitted == reply
    db.flush()
    assert queued(db, patient) == []


def test_in_time_the_first_text_is_the_passive_reply_and_the_rest_is_queued(db, wechat_services, wechat_patient,
                                                                           clock):
    patient = wechat_patient()
    receipt = uuid.uuid4()
    reply = Reply(texts=["长" * PASSIVE_REPLY_CHARS, "第二条", "第三条"], patient_id=str(patient.id))
    fitted = fit_reply(db, message_from(patient, clock), reply, receipt_id=receipt, late=False)
    assert (fitted.texts, fitted.deferred, fitted.patient_id) == (["长" * PASSIVE_REPLY_CHARS], 2, str(patient.id))
    db.flush()
    assert queued(db, patient) == [
        (reply_key(receipt, 0), "wechat", "text", "reply", patient.wechat_openid, "第二条"),
        (reply_key(receipt, 1), "wechat", "text", "reply", patient.wechat_openid, "第三条")]


def test_a_late_turn_answers_with_nothing_and_queues_every_text(db, wechat_services, wechat_patient, clock):
    patient = wechat_patient()
    reply = Reply(texts=["长" * PASSIVE_REPLY_CHARS, "第二条"], patient_id=str(patient.id))
    fitted = fit_reply(db, message_from(patient, clock), reply, receipt_id=uuid.uuid4(), late=True)
    assert (fitted.texts, fitted.deferred) == ([], 2)
    db.flush()
    assert [text for *_rest, text in queued(db, patient)] == ["长" * PASSIVE_REPLY_CHARS, "第二条"]


def test_a_late_turn_is_answered_by_the_outbox_once_and_a_redelivery_gets_the_kept_reply(
        db, wechat_services, wechat_patient, clock):
    patient = wechat_patient()
    message = message_from(patient, clock, text="菜单")
    fitted = handle_inbound(db, wechat_services, message, late=lambda: True)
    assert fitted.texts == []
    assert fitted.deferred == 1
    db.flush()
    first = queued(db, patient)
    assert [(purpose, key.startswith("reply:")) for key, _channel, _kind, purpose, _address, _text in first] == [
        ("reply", True)]
    # The same delivery again, in time now: the kept reply, unchanged, and nothing more queued.
    again = handle_inbound(db, wechat_services, message, late=lambda: False)
    assert (again.texts, again.deferred) == ([], 1)
    db.flush()
    assert db.scalar(select(func.count()).select_from(OutboxMessage)
                     .where(OutboxMessage.patient_id == patient.id)) == 1
