"""bot/channels/wechat/replies.py: the passive reply carries one message within WeChat's 5 seconds; what does not
fit (or all of it, when the turn took too long) goes out as customer-service messages through the outbox."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from bot.channels.wechat import settle_passive_reply
from bot.messages import InboundMessage, Reply
from bot.models import OutboxMessage
from bot.router import handle_inbound


def queued(db, patient):
    return [(row.channel, row.kind, row.purpose, row.address, row.payload["text"])
            for row in db.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)
                                  .order_by(OutboxMessage.idempotency_key))]


def message_from(patient, clock, key="several-1"):
    return InboundMessage(channel="wechat", provider_key=key, sender=patient.wechat_openid, kind="text",
                          text="你好", received_at=clock.now())


def test_a_single_text_in_time_is_the_passive_reply_and_nothing_is_queued(db, wechat_services, wechat_patient,
                                                                           clock):
    patient = wechat_patient()
    reply = Reply(texts=["只有一条"], patient_id=str(patient.id))
    settled = settle_passive_reply(db, wechat_services.config, message_from(patient, clock), reply,
                                   elapsed_seconds=0.1)
    assert settled == reply
    db.flush()
    assert queued(db, patient) == []


def test_in_time_the_first_text_is_the_passive_reply_and_the_rest_is_queued(db, wechat_services, wechat_patient,
                                                                           clock):
    patient = wechat_patient()
    reply = Reply(texts=["第一条", "第二条", "第三条"], patient_id=str(patient.id), deferred=1)
    settled = settle_passive_reply(db, wechat_services.config, message_from(patient, clock), reply,
                                   elapsed_seconds=0.1)
    assert (settled.texts, settled.deferred, settled.patient_id) == (["第一条"], 3, str(patient.id))
    db.flush()
    assert queued(db, patient) == [("wechat", "text", "reply", patient.wechat_openid, "第二条"),
                                   ("wechat", "text", "reply", patient.wechat_openid, "第三条")]


def test_a_late_turn_answers_with_nothing_and_queues_every_text(db, wechat_services, wechat_patient, clock):
    patient = wechat_patient()
    reply = Reply(texts=["第一条", "第二条"], patient_id=str(patient.id))
    late = wechat_services.config.passive_reply_seconds + 0.5
    settled = settle_passive_reply(db, wechat_services.config, message_from(patient, clock), reply,
                                   elapsed_seconds=late)
    assert (settled.texts, settled.deferred) == ([], 2)
    db.flush()
    assert [text for *_rest, text in queued(db, patient)] == ["第一条", "第二条"]


def test_a_reply_of_several_texts_passes_the_first_and_queues_the_rest(db, wechat_services, wechat_patient, clock):
    patient = wechat_patient()
    message = message_from(patient, clock)
    several = Reply(texts=["第一条", "第二条", "第三条"], patient_id=str(patient.id))

    def settle_after(seconds: float) -> Callable[[Reply], Reply]:
        # The turn's own reply is replaced by three texts, to see how a long turn is settled and kept.
        return lambda _reply: settle_passive_reply(db, wechat_services.config, message, several,
                                                   elapsed_seconds=seconds)

    settled = handle_inbound(db, wechat_services, message, settle=settle_after(0.1))
    assert settled.texts == ["第一条"]
    assert settled.deferred == 2
    assert [(kind, purpose, text) for _channel, kind, purpose, _address, text in queued(db, patient)] == [
        ("text", "reply", "第二条"), ("text", "reply", "第三条")]
    # The same delivery again: the kept reply, unchanged (not settled again), and nothing more queued.
    again = handle_inbound(db, wechat_services, message, settle=settle_after(9.0))
    assert again.texts == ["第一条"]
    assert again.deferred == 2
    assert db.scalar(select(func.count()).select_from(OutboxMessage)
                     .where(OutboxMessage.patient_id == patient.id)) == 2
