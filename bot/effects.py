"""Applying the flow engine's events to the record: one handler per event type.

The engine decides; these handlers write (in the caller's transaction). Sending happens later,
from the outbox, after commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.models import ConversationMessage, ConversationSession, Direction
from care.followups import schedule_followup
from care.models import Patient
from care.observations import record_observation, red_flag_of
from care.profiles import set_profile_field
from care.results import save_result
from care.tags import add_tag, remove_tag
from care.tasks import create_task
from flows.events import (
    Event,
    FlowError,
    FlowStarted,
    FollowupScheduled,
    MsgCreated,
    ObservationRecorded,
    ProfileFieldSet,
    ResultSaved,
    SessionEnded,
    SessionWaiting,
    StaffNotified,
    TagAdded,
    TagRemoved,
)
from security.audit import Actor
from security.fields import clock_of


@dataclass
class EffectContext:
    """Where the events of one step land."""

    session: Session
    patient: Patient
    conversation: ConversationSession
    actor: Actor
    flows_to_start: list[str] = field(default_factory=list)
    ended: str | None = None
    observed_codes: set[str] = field(default_factory=set)

    @property
    def now(self) -> datetime:
        return clock_of(self.session).now()


Handler = Callable[[EffectContext, Any], None]
HANDLERS: dict[str, Handler] = {}


def handles(event_type: type[Event]) -> Callable[[Handler], Handler]:
    def decorator(handler: Handler) -> Handler:
        HANDLERS[event_type.type] = handler
        return handler

    return decorator


def apply_events(context: EffectContext, events: list[Event]) -> None:
    """Apply every event of one step, in order. Unknown event types are ignored (they carry no writes)."""
    # Observations first, so a scored result with the same code does not record it twice.
    context.observed_codes = {event.code for event in events if isinstance(event, ObservationRecorded)}
    for event in events:
        handler = HANDLERS.get(event.type)
        if handler is not None:
            handler(context, event)


def log_message(session: Session, *, patient: Patient, conversation_id: uuid.UUID | None, channel: str,
                direction: Direction, text: str) -> None:
    session.add(ConversationMessage(patient_id=patient.id, session_id=conversation_id, channel=channel,
                                    direction=direction.value, text=text, created_at=clock_of(session).now()))


@handles(MsgCreated)
def _message(context: EffectContext, event: MsgCreated) -> None:
    log_message(context.session, patient=context.patient, conversation_id=context.conversation.id,
                channel=context.conversation.channel, direction=Direction.OUT, text=event.text)


@handles(ResultSaved)
def _result(context: EffectContext, event: ResultSaved) -> None:
    conversation = context.conversation
    save_result(
        context.session, context.patient, flow_id=conversation.flow_id, flow_version=conversation.flow_version,
        name=event.name, value=event.value, category=event.category, label=event.label, code=event.code,
        unit=event.unit, session_id=conversation.id, actor=context.actor,
    )
    if becomes_observation(event, context.observed_codes):
        record_observation(context.session, context.patient, actor=context.actor,
                           **result_observation(event, conversation.flow_id, conversation.id, context.now))


def result_observation(event: ResultSaved, flow_id: str, conversation_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """The observation a coded result becomes (see :func:`becomes_observation`): code, value, unit, time, source."""
    return {"code": str(event.code), "value": float(event.value), "unit": event.unit or "{score}", "effective_at": now,
            "source": f"flow:{flow_id}", "source_ref": str(conversation_id)}


def becomes_observation(event: ResultSaved, observed_codes: set[str]) -> bool:
    """Whether a saved result is also recorded as an observation (unless the step recorded its code itself).

    A coded quantity (PHQ-9 total 44261-6 in {score}) is an observation too, so it trends; single
    answers (unit-less item results) stay results only.
    """
    numeric = isinstance(event.value, int | float) and not isinstance(event.value, bool)
    return bool(event.code and event.unit and numeric and event.code not in observed_codes)


@handles(ObservationRecorded)
def _observation(context: EffectContext, event: ObservationRecorded) -> None:
    effective = context.now
    if event.observed_at:
        try:
            parsed = datetime.fromisoformat(event.observed_at)
            effective = parsed if parsed.tzinfo else effective
        except ValueError:
            effective = context.now
    record_observation(
        context.session, context.patient, code=event.code, value=event.value, unit=event.unit, effective_at=effective,
        source=f"flow:{context.conversation.flow_id}", source_ref=str(context.conversation.id), actor=context.actor,
    )


@handles(ProfileFieldSet)
def _profile(context: EffectContext, event: ProfileFieldSet) -> None:
    set_profile_field(context.session, context.patient, event.field, event.value, actor=context.actor)


@handles(TagAdded)
def _tag_added(context: EffectContext, event: TagAdded) -> None:
    add_tag(context.session, context.patient, event.tag, source=f"flow:{context.conversation.flow_id}",
            actor=context.actor)


@handles(TagRemoved)
def _tag_removed(context: EffectContext, event: TagRemoved) -> None:
    remove_tag(context.session, context.patient, event.tag, actor=context.actor)


@handles(StaffNotified)
def _staff(context: EffectContext, event: StaffNotified) -> None:
    create_task(
        context.session, context.patient, kind="flow_alert", priority=event.priority, reason=event.reason,
        details={**dict(event.details), "session_id": str(context.conversation.id)},
        source_ref=str(context.conversation.id), actor=context.actor,
    )


@handles(FlowError)
def _flow_error(context: EffectContext, event: FlowError) -> None:
    create_task(
        context.session, context.patient, kind="flow_error", priority="normal", reason="flow_error",
        details={"flow_id": context.conversation.flow_id, "node_id": event.node_id, "error": event.reason},
        source_ref=str(context.conversation.id), actor=context.actor,
    )


@handles(FlowStarted)
def _flow_started(context: EffectContext, event: FlowStarted) -> None:
    context.flows_to_start.append(event.flow_id)


@handles(FollowupScheduled)
def _followup(context: EffectContext, event: FollowupScheduled) -> None:
    channel = context.conversation.channel
    order = [channel] + [c for c in ("wechat", "sms", "voice") if c != channel]
    schedule_followup(
        context.session, context.patient, flow_id=event.flow_id, due_at=context.now + timedelta(days=event.in_days),
        channel_order=order, source=f"flow:{context.conversation.flow_id}", actor=context.actor,
    )


@handles(SessionWaiting)
def _waiting(context: EffectContext, event: SessionWaiting) -> None:
    conversation = context.conversation
    conversation.expires_at, conversation.next_timer_at = waiting_times(event)


def waiting_times(event: SessionWaiting) -> tuple[datetime, datetime]:
    """When a waiting conversation expires, and when its next timer (a reminder, else the expiry) fires."""
    expires = datetime.fromisoformat(event.expires_at)
    remind = datetime.fromisoformat(event.wait_until) if event.wait_until else None
    return expires, min(remind, expires) if remind else expires


@handles(SessionEnded)
def _ended(context: EffectContext, event: SessionEnded) -> None:
    context.ended = event.status


def touch_only_the_conversation(events: list[Event]) -> bool:
    """Whether applying ``events`` writes nothing but the conversation's own rows.

    That is its log (:class:`MsgCreated`), its timers (:class:`SessionWaiting`) and its results
    (:class:`ResultSaved`, with the observation a coded score becomes); events without a handler
    write nothing. Such a step can be written without loading the patient's record (see
    :mod:`bot.plain_turns`). A result that becomes a red-flag reading (a low glucose) is not plain:
    recording it opens an urgent staff task (:func:`care.observations.record_observation`).
    """
    for event in events:
        handler = HANDLERS.get(event.type)
        if handler is _result and _red_flag_result(event):
            return False
        if handler is None or handler is _message or handler is _waiting or handler is _result:
            continue
        return False
    return True


def _red_flag_result(event: Event) -> bool:
    """Whether a saved result becomes an observation that is a red-flag reading."""
    if not isinstance(event, ResultSaved) or not becomes_observation(event, set()):
        return False
    # The code, value and unit the observation gets (see result_observation).
    return red_flag_of(str(event.code), float(event.value), event.unit or "{score}") is not None
