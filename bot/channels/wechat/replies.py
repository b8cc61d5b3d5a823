"""WeChat's passive reply: the one message a webhook answer may carry, within WeChat's 5 seconds."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session

from bot.config import BotConfig
from bot.messages import InboundMessage, Reply
from bot.outbox import enqueue
from care.models import Patient

logger = logging.getLogger("careloop.wechat")


def settle_passive_reply(session: Session, config: BotConfig, message: InboundMessage, reply: Reply,
                         elapsed_seconds: float) -> Reply:
    """Fit a new reply into WeChat's passive response; what does not fit goes out as customer-service messages.

    The passive response holds one message and must leave within WeChat's 5 seconds. If handling
    took longer than ``config.passive_reply_seconds`` the webhook answers "success" and every text
    is queued (WeChat has given up on the response by then); otherwise the first text is the
    passive reply and the rest is queued. The router keeps the settled reply on the delivery's
    receipt, so a repeated delivery is answered the same way.
    """
    late = elapsed_seconds > config.passive_reply_seconds
    keep = [] if late else reply.texts[:1]
    overflow = reply.texts[len(keep):]
    if not overflow:
        return reply
    patient = session.get(Patient, uuid.UUID(reply.patient_id)) if reply.patient_id else None
    for index, text in enumerate(overflow):
        enqueue(session, idempotency_key=f"wechat-reply:{message.provider_key}:{index}"[:160], channel="wechat",
                kind="text", purpose="reply", address=message.sender, payload={"text": text}, patient=patient,
                session_id=uuid.UUID(reply.session_id) if reply.session_id else None)
    if late:
        logger.warning("wechat reply took %.1f s; sent as %d customer-service message(s)", elapsed_seconds,
                       len(overflow))
    return Reply(texts=keep, patient_id=reply.patient_id, session_id=reply.session_id,
                 deferred=reply.deferred + len(overflow), voice=reply.voice)

