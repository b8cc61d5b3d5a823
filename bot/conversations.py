"""Running a flow with a patient: start, answer, timers; one open conversation per patient.

State lives in ``conversation_sessions`` (encrypted, pinned to the flow version). Each call here
runs one engine step, applies its events to the record and returns what to say; the caller (the
router, a worker job) decides how it goes out, and the entry point commits once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bot.config import BotConfig
from bot.models import ConversationSession, Direction, SessionStatus
from bot.turns.context import ConversationRow
from bot.turns.effects import EffectContext, Where, apply_events, log_message
from bot.turns.scene import Scene
from care.blobs import BlobStore
from care.followups import schedule_followup
from care.models import PROFILE_SECTIONS, FollowUp, FollowUpStatus, Patient
from care.observations import latest_values
from care.plans.service import event_happened
from care.tags import tags_of
from flows import engine
from flows.definition import FlowDefinition
from flows.facts import Facts
from flows.outputs import Output
from flows.registry import FlowLibrary, FlowNotFound
from security.audit import Actor
from security.clock import Clock
from security.dialects import has_row_locks
from security.fields import clock_of

#: A conversation as the functions here step it: an object of the session (a worker's, the admin's), or
#: the plain row a turn read (:class:`bot.turns.context.ConversationRow`), which the patient's scene writes.
Conversation = ConversationSession | ConversationRow


@dataclass
class BotServices:
    """What the bot needs beyond the database session: configuration, flows, adapters, blobs."""

    config: BotConfig
    library: FlowLibrary
    clock: Clock
    adapters: dict[str, Any] = field(default_factory=dict)
    blob_store: BlobStore | None = None


@dataclass
class Turn:
    """The result of one step of a conversation: what to say, in order."""

    conversation: Conversation
    outputs: list[Output]
    ended: bool
    lang: str


class ConversationError(Exception):
    """A conversation cannot do what was asked (unknown flow, one already open)."""


_LOCK = text("SELECT id FROM patients WHERE id = :id FOR UPDATE")
_LOCK_IF_FREE = text("SELECT id FROM patients WHERE id = :id FOR UPDATE SKIP LOCKED")


def lock_patient(session: Session, patient: Patient, *, wait: bool = True) -> bool:
    """Serialise work on one patient: a row lock on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises.

    Rows of the patient's read before the lock may predate the previous holder's commit: read
    them again (:func:`as_now`) before deciding anything by them. With ``wait=False`` the lock is
    only taken when no one holds it; returns whether it was taken.
    """
    if not has_row_locks(session):
        return True
    return session.execute(_LOCK if wait else _LOCK_IF_FREE, {"id": patient.id}).first() is not None


def as_now(session: Session, conversation: ConversationSession) -> ConversationSession:
    """``conversation`` read again, as committed by whoever held the patient's lock before (call after taking it)."""
    session.refresh(conversation)
    return conversation


def gather_facts(session: Session, patient: Patient, lang: str | None = None) -> dict[str, Any]:
    """What flows may know about the patient (age, sex, language, tags, latest readings, profile), as JSON."""
    today = clock_of(session).now().date()
    age = patient.age_on(today) if isinstance(patient.birth_date, date) else None
    observations = {code: obs.value for code, obs in latest_values(session, patient).items() if obs.value is not None}
    profile: dict[str, Any] = {}
    stored_profile = patient.profile
    if stored_profile is not None:
        for section in PROFILE_SECTIONS:
            for key, value in (getattr(stored_profile, section) or {}).items():
                profile[key] = value
    sex = {"M": "male", "F": "female"}.get(patient.gender or "")
    return {"age": age, "sex": sex, "language": lang or patient.language, "tags": sorted(tags_of(session, patient)),
            "observations": observations, "profile": profile}


def facts_from(snapshot: dict[str, Any]) -> Facts:
    return Facts.build(age=snapshot.get("age"), sex=snapshot.get("sex"), language=snapshot.get("language", "zh"),
                       tags=snapshot.get("tags") or (), observations=snapshot.get("observations") or {},
                       profile=snapshot.get("profile") or {})


def _conversation_facts(session: Session, conversation: Conversation) -> Facts:
    snapshot = conversation.facts
    if not snapshot:
        snapshot = gather_facts(session, record_of(session, conversation), conversation.lang)
        conversation.facts = snapshot
    return facts_from(snapshot)


def record_of(session: Session, conversation: Conversation) -> Patient:
    """The record of the conversation's patient (from the session's identity map when it is loaded already)."""
    patient = session.get(Patient, conversation.patient_id)
    if patient is None:
        raise ConversationError("the conversation's patient is gone")
    return patient


def open_conversation(session: Session, patient: Patient) -> ConversationSession | None:
    query = select(ConversationSession).where(ConversationSession.active_patient_id == patient.id)
    # A pending patient is flushed too: the conversation a caller opens next must follow its row,
    # and no relationship tells the unit of work so.
    return session.scalars(query).one_or_none()


def _definition(services: BotServices, flow_id: str, version: int | None = None) -> FlowDefinition:
    try:
        return services.library.get(flow_id, version)
    except FlowNotFound as missing:
        raise ConversationError(f"no installed flow {flow_id!r}" + (f" v{version}" if version else "")) from missing


def invite(session: Session, services: BotServices, patient: Patient, flow_id: str, *, channel: str,
           followup: FollowUp | None = None, open_now: ConversationSession | None | Literal["ask"] = "ask",
           ) -> ConversationSession:
    """Open a conversation that starts when the patient replies (the clinic's first message is neutral).

    ``open_now``: the patient's open conversation as the caller read it under the patient's lock (a
    worker's batch), or ``"ask"`` to look it up here.
    """
    definition = _definition(services, flow_id)
    now = clock_of(session).now()
    current = open_conversation(session, patient) if open_now == "ask" else open_now
    if current is not None:
        raise ConversationError("the patient already has an open conversation")
    conversation = ConversationSession(
        patient_id=patient.id, active_patient_id=patient.id, flow_id=definition.id, flow_version=definition.version,
        lang=patient.language, channel=channel, status=SessionStatus.INVITED.value, state={},
        next_timer_at=None, expires_at=None, followup_id=followup.id if followup else None, started_at=now,
        updated_at=now,
    )
    session.add(conversation)
    return conversation


def begin(session: Session, services: BotServices, patient: Patient, flow_id: str, *, channel: str, actor: Actor,
          conversation: Conversation | None = None) -> Turn:
    """Start the flow now (a keyword, or the reply to an invitation) and return its first prompts."""
    now = clock_of(session).now()
    if conversation is None:
        definition = _definition(services, flow_id)
        if open_conversation(session, patient) is not None:
            raise ConversationError("the patient already has an open conversation")
        # The record is read before the new conversation joins the session, so that reading it does
        # not flush the conversation half-made (an INSERT now, an UPDATE of its timers at commit).
        snapshot = gather_facts(session, patient, patient.language)
        conversation = ConversationSession(
            patient_id=patient.id, active_patient_id=patient.id, flow_id=definition.id,
            flow_version=definition.version, lang=patient.language, channel=channel,
            status=SessionStatus.WAITING.value, state={}, started_at=now, updated_at=now,
        )
        session.add(conversation)
    else:
        definition = _definition(services, conversation.flow_id, conversation.flow_version)
        conversation.channel = channel
        snapshot = gather_facts(session, patient, conversation.lang)
    conversation.facts = snapshot
    facts = facts_from(snapshot)
    result = engine.start(definition, facts, lang=conversation.lang, now=now)
    conversation.lang = str(result.state.get("lang", conversation.lang))
    return _finish_step(session, services, conversation, result, actor, patient=patient)


def answer(session: Session, services: BotServices, conversation: Conversation, reply: str,
           *, actor: Actor) -> Turn:
    """Feed the patient's message to their open conversation.

    The patient's record is loaded only if the step needs it (an invitation's first question, facts
    not yet gathered, events that change the profile, tags or follow-ups): a plain answer reads and
    writes the conversation's own rows only.
    """
    if conversation.status == SessionStatus.INVITED.value:
        # Any reply to a neutral invitation is the go-ahead; the flow's first question comes next.
        return begin(session, services, record_of(session, conversation), conversation.flow_id,
                     channel=conversation.channel, actor=actor, conversation=conversation)
    definition = _definition(services, conversation.flow_id, conversation.flow_version)
    facts = _conversation_facts(session, conversation)
    result = engine.step(definition, dict(conversation.state or {}), facts, engine.TextInput(reply),
                         now=clock_of(session).now())
    return _finish_step(session, services, conversation, result, actor)


def fire_timer(session: Session, services: BotServices, conversation: ConversationSession, *, actor: Actor) -> Turn:
    """Run the reminder or the expiry that fell due."""
    now = clock_of(session).now()
    if conversation.status == SessionStatus.INVITED.value:
        close(session, conversation, "expired")
        return Turn(conversation, [], True, conversation.lang)
    state = dict(conversation.state or {})
    expires = conversation.expires_at
    kind: Literal["reminder", "expiry"] = "expiry" if expires is not None and now >= expires else "reminder"
    definition = _definition(services, conversation.flow_id, conversation.flow_version)
    facts = _conversation_facts(session, conversation)
    result = engine.step(definition, state, facts, engine.Timer(kind), now=now)
    if not result.outputs and not result.events:
        # Nothing was due after all (answered meanwhile): look again at the next expiry.
        conversation.next_timer_at = expires if expires is not None and expires > now else None
        return Turn(conversation, [], False, conversation.lang)
    return _finish_step(session, services, conversation, result, actor)


def close(session: Session, conversation: Conversation, status: str) -> None:
    now = clock_of(session).now()
    conversation.status = SessionStatus.ENDED.value
    conversation.end_status = status
    conversation.active_patient_id = None
    conversation.next_timer_at = None
    conversation.ended_at = now
    conversation.updated_at = now
    if conversation.followup_id is not None:
        followup = session.get(FollowUp, conversation.followup_id)
        if followup is not None and followup.status not in (FollowUpStatus.COMPLETED.value,):
            followup.status = (FollowUpStatus.COMPLETED.value if status in ("completed", "handed_off", "skipped")
                               else FollowUpStatus.UNANSWERED.value)
            followup.completed_at = now
            followup.next_action_at = None
    if status == "completed":
        # A finished questionnaire may start a plan (``enrol_on_events: [questionnaire_finished:phq9]``).
        event_happened(session, conversation.patient_id, f"questionnaire_finished:{conversation.flow_id}")


def _finish_step(session: Session, services: BotServices, conversation: Conversation,
                 result: engine.StepResult, actor: Actor, *, patient: Patient | None = None) -> Turn:
    """Apply the step's events and move the conversation: rows of the turn's scene, written once when the
    turn ends (:func:`bot.turns.scene.write_scenes`, else at commit), the conversation's changes with them."""
    where = Where(conversation.id, conversation.flow_id, conversation.flow_version, conversation.channel)
    scene = Scene.of(session, conversation.patient_id)
    scene.track(conversation)
    context = EffectContext(scene=scene, conversation=where, actor=actor, patient=patient)
    apply_events(context, list(result.events))
    if context.timers is not None:
        conversation.expires_at, conversation.next_timer_at = context.timers
    now = clock_of(session).now()
    conversation.state = result.state
    conversation.updated_at = now
    outputs = list(result.outputs)
    if conversation.status == SessionStatus.INVITED.value:
        conversation.status = SessionStatus.WAITING.value
        if conversation.followup_id is not None:
            followup = session.get(FollowUp, conversation.followup_id)
            if followup is not None:
                followup.status = FollowUpStatus.IN_PROGRESS.value
    if result.ended:
        close(session, conversation, context.ended or str(result.state.get("end_status") or "completed"))
        if context.flows_to_start:
            # The closed conversation frees the patient's one open slot for the next flow, and the next
            # flow's facts see what this one recorded.
            scene.write()
            session.flush()
            first, *rest = context.flows_to_start
            record = context.record()
            follow_on = begin(session, services, record, first, channel=conversation.channel, actor=actor)
            outputs.extend(follow_on.outputs)
            for flow_id in rest:
                schedule_followup(session, record, flow_id=flow_id, due_at=now,
                                  channel_order=[conversation.channel], source="flow", actor=actor)
            return Turn(follow_on.conversation, outputs, follow_on.ended, conversation.lang)
        return Turn(conversation, outputs, True, conversation.lang)
    return Turn(conversation, outputs, False, conversation.lang)


def log_inbound(session: Session, patient_id: uuid.UUID, conversation: Conversation | None, channel: str,
                message_text: str) -> None:
    """Log what the patient said (written with the turn's scene)."""
    log_message(Scene.of(session, patient_id), conversation_id=conversation.id if conversation else None,
                channel=channel, direction=Direction.IN, text=message_text)


__all__ = [
    "BotConfig",
    "BotServices",
    "Conversation",
    "ConversationError",
    "Turn",
    "answer",
    "as_now",
    "begin",
    "close",
    "fire_timer",
    "invite",
    "lock_patient",
    "log_inbound",
    "open_conversation",
    "record_of",
]
