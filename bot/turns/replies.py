"""Fitting a turn's reply to its channel: what the channel's answer carries, and what follows by the outbox.

SMS, voice and the console answer with every text. WeChat's passive reply holds one message and
must leave within WeChat's 5 seconds: short texts are joined into it, a long turn's first text
is the reply and the rest follow as customer-service messages, and a turn that took too long
answers with nothing and sends every text that way (WeChat has given up on the answer by then).
Every text that follows a reply is queued under one key scheme, ``reply:<receipt id>:<n>``, so a
redelivery of the same message, which gets the receipt's kept reply, never queues them twice.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session

from bot.messages import InboundMessage, Reply
from bot.outbox.queue import enqueue
from care.models import Patient

logger = logging.getLogger("careloop.bot")

# WeChat text messages are limited to 2048 bytes; a passive reply longer than this is split.
PASSIVE_REPLY_CHARS = 600
PASSIVE_CHANNELS = frozenset({"wechat"})


def split_reply(channel: str, texts: list[str], *, late: bool = False) -> tuple[list[str], list[str]]:
    """The texts that go in the answer on ``channel`` and those that must follow it through the outbox."""
    if channel not in PASSIVE_CHANNELS or not texts:
        return texts, []
    joined = "\n\n".join(texts)
    parts = [joined] if len(joined) <= PASSIVE_REPLY_CHARS or len(texts) == 1 else texts
    return ([], parts) if late else (parts[:1], parts[1:])


def reply_key(receipt_id: uuid.UUID, index: int) -> str:
    """The outbox key of the ``index``-th text that follows the reply to delivery ``receipt_id``."""
    return f"reply:{receipt_id}:{index}"


def fit_reply(session: Session, message: InboundMessage, reply: Reply, *, receipt_id: uuid.UUID,
              late: bool) -> Reply:
    """``reply`` as the channel answers it; what does not fit is queued (purpose ``reply``) to the sender."""
    kept, overflow = split_reply(message.channel, reply.texts, late=late)
    if not overflow:
        return reply if kept == reply.texts else Reply(texts=kept, patient_id=reply.patient_id,
                                                       session_id=reply.session_id, deferred=reply.deferred,
                                                       voice=reply.voice)
    patient = session.get(Patient, uuid.UUID(reply.patient_id)) if reply.patient_id else None
    conversation_id = uuid.UUID(reply.session_id) if reply.session_id else None
    for index, text in enumerate(overflow):
        enqueue(session, idempotency_key=reply_key(receipt_id, index), channel=message.channel, kind="text",
                purpose="reply", address=message.sender, payload={"text": text}, patient=patient,
                session_id=conversation_id)
    if late:
        logger.warning("%s reply past its deadline; sent as %d message(s) by the outbox", message.channel,
                       len(overflow))
    return Reply(texts=kept, patient_id=reply.patient_id, session_id=reply.session_id,
                 deferred=reply.deferred + len(overflow), voice=reply.voice)
