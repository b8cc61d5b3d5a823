"""The follow-up record (随访记录): what one follow-up holds, gathered for staff and exports.

A follow-up's record is its answers (the results of its conversation), the messages exchanged, the
channel it ran on, the call recordings, and the staff part: who completed it, their notes and the
outcome code (:func:`care.followups.record_followup_outcome`). The conversation log is the bot's,
so the record is put together here rather than in ``care``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import ConversationMessage, ConversationSession
from care.models import FlowResult, FollowUp, Recording, User
from security.audit import Actor, log


@dataclass(frozen=True)
class Answer:
    name: str
    value: Any
    label: str | None
    category: str | None


@dataclass(frozen=True)
class Line:
    at: datetime
    direction: str
    channel: str
    text: str


@dataclass(frozen=True)
class FollowUpRecord:
    """One follow-up as staff read it (decrypted: its reading is audited)."""

    followup: FollowUp
    channel: str | None
    answers: list[Answer]
    messages: list[Line]
    recordings: list[Recording]
    staff_email: str | None


def followup_record(session: Session, followup: FollowUp, *, actor: Actor) -> FollowUpRecord:
    """The whole record of ``followup``; its reading is audited as a view of the patient's record."""
    conversations = [followup.session_id] if followup.session_id is not None else []
    conversations += list(session.scalars(select(ConversationSession.id).where(
        ConversationSession.followup_id == followup.id, ConversationSession.id.not_in(conversations))))
    answers: list[Answer] = []
    messages: list[Line] = []
    if conversations:
        results = session.scalars(select(FlowResult).where(FlowResult.session_id.in_(conversations))
                                  .order_by(FlowResult.recorded_at, FlowResult.id))
        answers = [Answer(row.name, row.value, row.label, row.category) for row in results]
        lines = session.scalars(select(ConversationMessage).where(ConversationMessage.session_id.in_(conversations))
                                .order_by(ConversationMessage.created_at, ConversationMessage.id))
        messages = [Line(row.created_at, row.direction, row.channel, row.text or "") for row in lines]
    recordings = list(session.scalars(select(Recording).where(Recording.followup_id == followup.id)
                                      .order_by(Recording.created_at)))
    staff = session.get(User, followup.staff_id) if followup.staff_id is not None else None
    log(session, actor=actor, action="patient.view", resource_type="followup", resource_id=followup.id,
        patient_id=followup.patient_id, details={"view": "followup_record"})
    return FollowUpRecord(followup, followup.current_channel, answers, messages, recordings,
                          staff.email if staff is not None else None)


__all__ = ["Answer", "FollowUpRecord", "Line", "followup_record"]
