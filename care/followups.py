"""Scheduling follow-ups (the automation issue adds plans that create them by rule)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from care.errors import Problem, ValidationFailedError
from care.models import Channel, FollowUp, FollowUpStatus, Patient
from security.audit import Actor, log
from security.fields import clock_of

DEFAULT_ORDER = (Channel.WECHAT.value, Channel.SMS.value, Channel.VOICE.value)
ORDERABLE = {Channel.WECHAT.value, Channel.SMS.value, Channel.VOICE.value, Channel.CONSOLE.value}


def schedule_followup(
    session: Session, patient: Patient, *, flow_id: str, due_at: datetime, actor: Actor,
    channel_order: Sequence[str] = DEFAULT_ORDER, source: str = "manual", max_attempts_per_channel: int = 2,
    answer_window_hours: int = 48,
) -> FollowUp:
    """Schedule ``flow_id`` for the patient at ``due_at`` over the first usable channel of ``channel_order``.

    A test patient's follow-ups run on the console channel only, whatever the order asked.
    """
    problems = []
    unknown = [channel for channel in channel_order if channel not in ORDERABLE]
    if unknown or not channel_order:
        problems.append(Problem("channel_order", f"must list channels among {', '.join(sorted(ORDERABLE))}"))
    if due_at.tzinfo is None:
        problems.append(Problem("due_at", "must carry a time zone"))
    if not flow_id:
        problems.append(Problem("flow_id", "is required"))
    if problems:
        raise ValidationFailedError(problems)
    if patient.is_test:
        channel_order = [Channel.CONSOLE.value]
    followup = FollowUp(
        patient_id=patient.id, flow_id=flow_id, due_at=due_at, channel_order=list(channel_order), channel_index=0,
        status=FollowUpStatus.SCHEDULED.value, attempts=0, max_attempts_per_channel=max_attempts_per_channel,
        answer_window_hours=answer_window_hours, next_action_at=due_at, source=source,
        created_at=clock_of(session).now(),
    )
    session.add(followup)
    log(session, actor=actor, action="followup.schedule", resource_type="followup", resource_id=followup.id,
        patient_id=patient.id, details={"flow": flow_id})
    return followup
