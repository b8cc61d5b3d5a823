"""The providers' fixtures (the fake WeChat and Twilio servers, a runtime with each channel live) for
the channels' own tests; they are the webhooks' fixtures, shared."""

from __future__ import annotations

import uuid

from bot.channels.base import OutgoingMessage
from tests.webhooks.conftest import (
    dispatch,
    twilio_bot,
    twilio_fake,
    twilio_runtime,
    twilio_services,
    wechat_bot,
    wechat_extra,
    wechat_fake,
    wechat_patient,
    wechat_runtime,
    wechat_services,
    wechat_templates,
)

__all__ = ["dispatch", "outgoing", "twilio_bot", "twilio_fake", "twilio_runtime", "twilio_services", "wechat_bot",
           "wechat_extra", "wechat_fake", "wechat_patient", "wechat_runtime", "wechat_services", "wechat_templates"]


def outgoing(channel: str, address: str, *, kind: str = "text", payload=None, purpose: str = "test",
             sending_started_at=None, patient_id=None, message_id=None) -> OutgoingMessage:
    """The snapshot of an outbox row the dispatcher hands an adapter."""
    return OutgoingMessage(id=message_id or uuid.uuid4(), idempotency_key=f"test:{uuid.uuid4()}", channel=channel,
                           kind=kind, purpose=purpose, address=address, payload=payload or {"text": "您好"},
                           attempts=1, sending_started_at=sending_started_at, patient_id=patient_id)
