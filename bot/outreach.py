"""What the clinic's own messages to a patient share: when the patient last wrote on a channel, and the
payload of a WeChat template message (outside the 48-hour window only a template may start a conversation)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.config import BotConfig
from bot.models import ConversationMessage, Direction
from care.models import Patient


def last_inbound_at(session: Session, patient: Patient, channel: str) -> datetime | None:
    query = select(func.max(ConversationMessage.created_at)).where(
        ConversationMessage.patient_id == patient.id, ConversationMessage.channel == channel,
        ConversationMessage.direction == Direction.IN.value,
    )
    return session.scalar(query)


def template_payload(config: BotConfig, patient: Patient, template: str, text: str) -> dict[str, Any]:
    """A WeChat template message's payload: ``text`` first, the clinic's name in the patient's language."""
    clinic = config.clinic_name.in_language(patient.language)
    return {"template_id": template, "text": text,
            "data": {"first": {"value": text}, "keyword1": {"value": clinic}}}
