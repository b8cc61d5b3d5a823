"""The neutral shapes that cross the edge between a channel and the bot."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class InboundMessage:
    """One thing a patient (or the provider on their behalf) sent us, whatever the channel.

    ``provider_key`` is the provider's id for this delivery (MsgId, MessageSid, CallSid + step, or
    FromUserName + CreateTime for WeChat events); a repeated delivery carries the same key.
    ``kind`` is ``text`` (also speech and keypad input), ``event`` (subscribe, unsubscribe, SCAN,
    CLICK, template results) or ``media`` (a voice note or picture we do not read).
    """

    channel: str
    provider_key: str
    sender: str
    kind: str
    received_at: datetime
    text: str = ""
    event: str | None = None
    event_key: str | None = None
    recipient: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reply:
    """What to answer on the same channel: text messages in order (a channel may join or split them).

    ``deferred`` messages did not fit the passive reply and were queued in the outbox.
    """

    texts: list[str] = field(default_factory=list)
    patient_id: str | None = None
    session_id: str | None = None
    deferred: int = 0
    # Voice: the neutral prompt the caller must hear next (rendered to TwiML by the webhook).
    voice: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"texts": self.texts, "patient_id": self.patient_id, "session_id": self.session_id,
                "deferred": self.deferred, "voice": self.voice}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        return cls(texts=list(data.get("texts") or []), patient_id=data.get("patient_id"),
                   session_id=data.get("session_id"), deferred=int(data.get("deferred") or 0),
                   voice=data.get("voice"))
