"""Applying the flow engine's events to the record: one handler per event type.

The engine decides; these handlers write. What a turn writes most (its log, results,
observations, staff tasks and their audit entries) become rows of the turn's
:class:`~bot.turns.scene.Scene`, written once at the end of the turn; the rarer writes (profile
fields, tags, follow-ups, the next flow) go through the care services in the same transaction.
Sending happens later, from the outbox, after commit.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.models import ConversationMessage, Direction
from bot.turns.scene import Scene
from care.followups import schedule_followup
from care.models import FlowResult, Observation, Patient, StaffTask
from care.observations import Reading, observation_audit, observation_record, red_flag_tasks
from care.profiles import set_profile_field
from care.reevaluation import request_at_commit
from care.results import result_audit, result_record
from care.tags import add_tag, remove_tag
from care.tasks import task_audit, task_record
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


@dataclass(frozen=True)
class Where:
    """The conversation a step belongs to, as its events need it."""

    id: uuid.UUID
    flow_id: str
    flow_version: int
    channel: str


@dataclass
class EffectContext:
    """Where the events of one step land, and what they leave for the caller to do with the conversation."""

    scene: Scene
    conversation: Where
    actor: Actor
    patient: Patient | None = None  # loaded only by steps whose events need the record (profile, tags, ...)
    flows_to_start: list[str] = field(default_factory=list)
    ended: str | None = None
    observed_codes: set[str] = field(default_factory=set)
    # The conversation's timers, when a step leaves it waiting (see :func:`waiting_times`).
    timers: tuple[datetime, datetime] | None = None

    @property
    def session(self) -> Session:
        return self.scene.session

    @property
    def now(self) -> datetime:
        return self.scene.now

    def record(self) -> Patient:
        """The patient's record, for the services that change more than the conversation's own rows."""
        if self.patient is None:
            self.patient = self.session.get(Patient, self.scene.patient_id)
            if self.patient is None:
                raise LookupError(f"patient {self.scene.patient_id} vanished")
        return self.patient


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
    if any(isinstance(event, CHANGES_FACTS) for event in events):
        # The patient's tag rules run again on what this turn recorded (one mark at commit, after the scene).
        request_at_commit(context.session, context.scene.patient_id, reason="answer")


#: The events after which a patient's tag rules are evaluated again: a reading, a profile fact, a
#: tag, and the end of a conversation (its results: a questionnaire's total is saved as it ends).
CHANGES_FACTS = (ObservationRecorded, ProfileFieldSet, TagAdded, TagRemoved, SessionEnded)


def log_message(scene: Scene, *, conversation_id: uuid.UUID | None, channel: str, direction: Direction,
                text: str) -> None:
    """Add one line of the conversation log (what the patient said, or what we said) to the turn."""
    scene.add(ConversationMessage, {"id": uuid.uuid4(), "patient_id": scene.patient_id, "session_id": conversation_id,
                                    "channel": channel, "direction": direction.value, "text": text,
                                    "created_at": scene.now})


@handles(MsgCreated)
def _message(context: EffectContext, event: MsgCreated) -> None:
    log_message(context.scene, conversation_id=context.conversation.id, channel=context.conversation.channel,
                direction=Direction.OUT, text=event.text)


@handles(ResultSaved)
def _result(context: EffectContext, event: ResultSaved) -> None:
    conversation, scene = context.conversation, context.scene
    record = result_record(scene.patient_id, flow_id=conversation.flow_id, flow_version=conversation.flow_version,
                           name=event.name, value=event.value, category=event.category, label=event.label,
                           code=event.code, unit=event.unit, session_id=conversation.id, now=scene.now)
    scene.add(FlowResult, record)
    scene.audit(actor=context.actor, **result_audit(record))
    if becomes_observation(event, context.observed_codes):
        _observe(context, result_observation(event, conversation.flow_id, conversation.id, scene.now))


def _observe(context: EffectContext, values: dict[str, Any]) -> None:
    """Add an observation (and the urgent task of a red-flag reading) to the turn."""
    scene = context.scene
    record = observation_record(scene.patient_id, now=scene.now, **values)
    scene.add(Observation, record)
    scene.audit(actor=context.actor, **observation_audit(record))
    for task in red_flag_tasks(context.session, [Reading.of(record)]):
        _task(context, task)


def _task(context: EffectContext, record: dict[str, Any]) -> None:
    context.scene.add(StaffTask, record)
    context.scene.audit(actor=context.actor, **task_audit(record))


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
    _observe(context, {"code": event.code, "value": event.value, "unit": event.unit, "effective_at": effective,
                       "source": f"flow:{context.conversation.flow_id}", "source_ref": str(context.conversation.id)})


@handles(ProfileFieldSet)
def _profile(context: EffectContext, event: ProfileFieldSet) -> None:
    set_profile_field(context.session, context.record(), event.field, event.value, actor=context.actor)


@handles(TagAdded)
def _tag_added(context: EffectContext, event: TagAdded) -> None:
    add_tag(context.session, context.record(), event.tag, source=f"flow:{context.conversation.flow_id}",
            actor=context.actor)


@handles(TagRemoved)
def _tag_removed(context: EffectContext, event: TagRemoved) -> None:
    remove_tag(context.session, context.record(), event.tag, actor=context.actor)


@handles(StaffNotified)
def _staff(context: EffectContext, event: StaffNotified) -> None:
    where = str(context.conversation.id)
    record = task_record(context.scene.patient_id, kind="flow_alert", priority=event.priority, reason=event.reason,
                         details={**dict(event.details), "session_id": where}, source_ref=where, now=context.now)
    due = event.details.get("due_at")  # a flow's own due time (notify_staff due_in_hours), else the priority's
    if isinstance(due, str):
        with contextlib.suppress(ValueError):  # a malformed one leaves the priority's
            record["due_at"] = datetime.fromisoformat(due)
    _task(context, record)


@handles(FlowError)
def _flow_error(context: EffectContext, event: FlowError) -> None:
    details = {"flow_id": context.conversation.flow_id, "node_id": event.node_id, "error": event.reason}
    _task(context, task_record(context.scene.patient_id, kind="flow_error", priority="normal", reason="flow_error",
                               details=details, source_ref=str(context.conversation.id), now=context.now))


@handles(FlowStarted)
def _flow_started(context: EffectContext, event: FlowStarted) -> None:
    context.flows_to_start.append(event.flow_id)


@handles(FollowupScheduled)
def _followup(context: EffectContext, event: FollowupScheduled) -> None:
    channel = context.conversation.channel
    order = [channel] + [c for c in ("wechat", "sms", "voice") if c != channel]
    schedule_followup(
        context.session, context.record(), flow_id=event.flow_id, due_at=context.now + timedelta(days=event.in_days),
        channel_order=order, source=f"flow:{context.conversation.flow_id}", actor=context.actor,
    )


@handles(SessionWaiting)
def _waiting(context: EffectContext, event: SessionWaiting) -> None:
    context.timers = waiting_times(event)


def waiting_times(event: SessionWaiting) -> tuple[datetime, datetime]:
    """When a waiting conversation expires, and when its next timer (a reminder, else the expiry) fires."""
    expires = datetime.fromisoformat(event.expires_at)
    remind = datetime.fromisoformat(event.wait_until) if event.wait_until else None
    return expires, min(remind, expires) if remind else expires


@handles(SessionEnded)
def _ended(context: EffectContext, event: SessionEnded) -> None:
    context.ended = event.status
