"""Follow-ups that run by themselves: invite on the first usable channel, fall back, escalate.

A due follow-up opens an *invited* conversation and sends a neutral invitation (minimum
disclosure: no health content until the patient answers) on the first channel of its order that
is consented, not opted out, reachable and live; quiet hours in the patient's own time zone make
it wait. Silence past the answer window moves it to the next channel; when every channel has been
tried it becomes a task on the staff work queue.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from bot.consent import channel_usable, in_quiet_hours, quiet_hours_end
from bot.conversations import BotServices, ConversationError, as_now, close, invite, lock_patient
from bot.followup_batch import FollowUpBatch
from bot.models import ConversationSession, OutboxMessage, SessionStatus
from bot.outbox.queue import enqueue
from bot.outreach import last_inbound_at, template_payload
from bot.plan_followups import busy, close_invitation, end_unanswered, gate, hold_until
from bot.plan_messages import send_message
from bot.texts import say
from care.models import FollowUp, FollowUpStatus, Patient
from care.tasks import create_task
from security.audit import Actor, AuditEntry, log, take_pending_entries
from security.dialects import claim_rows
from security.fields import clock_of

WORKER = Actor("system", "followups")
RETRY_WHEN_BUSY = timedelta(hours=2)

# The WeChat template (``WECHAT_TEMPLATE_<PURPOSE>``) each kind of message uses outside the 48-hour
# window; a purpose the clinic gave no template for falls back to FOLLOWUP's.
INVITATION_TEMPLATE = "FOLLOWUP"
REMINDER_TEMPLATE = "REMINDER"
RESULT_TEMPLATE = "RESULT"


#: The statuses of follow-ups the worker still acts on.
ACTIVE = (FollowUpStatus.SCHEDULED.value, FollowUpStatus.DUE.value, FollowUpStatus.INVITED.value)


def due_followups(session: Session, services: BotServices, *, limit: int = 100) -> int:
    """Act on every follow-up whose next action is due (a plan's occurrences too); return how many were handled.

    The rows are claimed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so workers running at once
    each take different rows; what deciding about them needs is read for the whole batch at once
    (:class:`bot.followup_batch.FollowUpBatch`), and what they write goes out at commit.
    """
    now = clock_of(session).now()
    query = (
        select(FollowUp)
        .where(FollowUp.status.in_(ACTIVE), FollowUp.next_action_at <= now)
        .order_by(FollowUp.next_action_at).limit(limit)
    )
    claimed = list(session.scalars(claim_rows(session, query)))
    batch = FollowUpBatch.load(session, services.config, claimed, now)
    handled = 0
    for followup in claimed:
        if batch.held(followup):
            # A message of the patient's (the reply to this invitation, perhaps) is being handled
            # and will write this follow-up, which this query has locked: waiting here could
            # deadlock with it. The follow-up is looked at again at a later tick.
            continue
        patient = batch.patient(followup)
        handled += 1
        if followup.plan_key is not None:
            if followup.status != FollowUpStatus.INVITED.value and followup.attempts == 0 \
                    and not gate(session, services.config, followup, now):
                continue
            if followup.content_key is not None:  # an education message: sent as it is, nobody answers
                send_message(session, services, batch, followup)
                continue
            if followup.status == FollowUpStatus.INVITED.value and patient is not None \
                    and _plan_silence(session, services, batch, followup, patient):
                continue
        if followup.status == FollowUpStatus.INVITED.value:
            _give_up_on_channel(session, batch, followup)
        attempt(session, services, batch, followup)
    # The batch's audit entries in one statement on either engine (as objects, SQLite would insert them one by
    # one: their ids are the database's); the rest goes out in the unit of work's flush.
    entries = take_pending_entries(session)
    if entries:
        session.execute(insert(AuditEntry), entries)
    return handled


def _plan_silence(session: Session, services: BotServices, batch: FollowUpBatch, followup: FollowUp,
                  patient: Patient) -> bool:
    """A plan's invitation went unanswered: remind, or end (no next channel); False: go to the next channel."""
    now = batch.now
    actions = followup.on_silence or []
    channel = followup.current_channel or ""
    conversation = batch.invitation(followup)
    if "reminder" in actions and conversation is not None \
            and batch.tries(followup, channel) < followup.max_attempts_per_channel \
            and channel_usable(session, patient, channel, "followup_invite", decisions=batch.decisions):
        if in_quiet_hours(services.config, patient, now):
            followup.next_action_at = quiet_hours_end(services.config, patient, now)
            return True
        later = hold_until(services.config, batch, patient, channel, now)
        if later is not None:
            followup.next_action_at = later
            return True
        kind, address, payload = neutral_notice(session, services, patient, channel, conversation,
                                                template_purpose=REMINDER_TEMPLATE,
                                                last_inbound=batch.last_inbound(patient))
        batch.queued(enqueue(
            session, idempotency_key=f"followup:{followup.id}:{followup.attempts + 1}:{channel}", channel=channel,
            kind=kind, purpose="followup_invite", address=address, payload=payload, patient=patient,
            session_id=conversation.id, followup_id=followup.id, known_keys=batch.keys))
        followup.attempts += 1
        followup.next_action_at = now + timedelta(hours=followup.answer_window_hours)
        log(session, actor=WORKER, action="followup.remind", resource_type="followup", resource_id=followup.id,
            patient_id=patient.id, details={"channel": channel})
        return True
    if "next_channel" in actions and followup.channel_index + 1 < len(followup.channel_order or []):
        return False
    close_invitation(session, batch, followup)
    end_unanswered(session, followup, patient)
    return True


def _give_up_on_channel(session: Session, batch: FollowUpBatch, followup: FollowUp) -> None:
    """The invitation on the current channel went unanswered: close it and move to the next channel."""
    conversation = batch.invitation(followup)
    if conversation is not None:
        conversation.followup_id = None  # the follow-up goes on; only this invitation expires
        close(session, conversation, "expired")
    followup.channel_index += 1
    followup.status = FollowUpStatus.SCHEDULED.value


def attempt(session: Session, services: BotServices, batch: FollowUpBatch, followup: FollowUp) -> None:
    """Invite over the first usable channel from ``channel_index`` on, or wait, or escalate.

    A plan's row also waits for the patient's and the channel's caps, and follows its start mode
    when the patient is in a conversation (:mod:`bot.plan_followups`).
    """
    now = batch.now
    patient = batch.patient(followup)
    if patient is None:
        followup.status = FollowUpStatus.CANCELLED.value
        return
    planned = followup.plan_key is not None
    order = list(followup.channel_order or [])
    while followup.channel_index < len(order):
        channel = order[followup.channel_index]
        if channel not in services.adapters or not channel_usable(session, patient, channel, "followup_invite",
                                                                   decisions=batch.decisions):
            followup.channel_index += 1
            continue
        if in_quiet_hours(services.config, patient, now):
            followup.next_action_at = quiet_hours_end(services.config, patient, now)
            return
        if planned:
            later = hold_until(services.config, batch, patient, channel, now)
            if later is not None:
                followup.next_action_at = later
                return
            if busy(session, batch, followup, patient, now):
                return
        elif batch.open_conversation(patient) is not None:
            followup.next_action_at = now + RETRY_WHEN_BUSY
            return
        try:
            conversation = invite(session, services, patient, followup.flow_id, channel=channel, followup=followup,
                                  open_now=batch.open_conversation(patient))
        except ConversationError:
            followup.status = (FollowUpStatus.FAILED if planned else FollowUpStatus.CANCELLED).value
            followup.outcome = "flow_unavailable" if planned else followup.outcome
            followup.next_action_at = None
            return
        batch.opened(conversation)
        kind, address, payload = neutral_notice(session, services, patient, channel, conversation,
                                                last_inbound=batch.last_inbound(patient))
        batch.queued(enqueue(
            session, idempotency_key=f"followup:{followup.id}:{followup.attempts + 1}:{channel}", channel=channel,
            kind=kind, purpose="followup_invite", address=address, payload=payload, patient=patient,
            session_id=conversation.id, followup_id=followup.id, known_keys=batch.keys))
        followup.status = FollowUpStatus.INVITED.value
        followup.current_channel = channel
        followup.session_id = conversation.id
        followup.attempts += 1
        followup.invited_at = now
        followup.next_action_at = now + timedelta(hours=followup.answer_window_hours)
        log(session, actor=WORKER, action="followup.invite", resource_type="followup", resource_id=followup.id,
            patient_id=patient.id, details={"channel": channel})
        return
    if planned:
        end_unanswered(session, followup, patient)
        return
    followup.status = FollowUpStatus.UNANSWERED.value
    followup.next_action_at = None
    create_task(session, patient, kind="followup_unanswered", priority="high", reason="followup_unanswered",
                details={"flow_id": followup.flow_id, "channels": ",".join(order), "followup_id": str(followup.id)},
                source_ref=str(followup.id), actor=WORKER)


#: ``neutral_notice`` looks the patient's last WeChat message up itself.
LOOK_UP: Literal["look up"] = "look up"


def neutral_notice(session: Session, services: BotServices, patient: Patient, channel: str,
                   conversation: ConversationSession, *, template_purpose: str = INVITATION_TEMPLATE,
                   last_inbound: datetime | None | Literal["look up"] = LOOK_UP,
                   ) -> tuple[str, str, dict[str, Any]]:
    """The clinic's neutral "you have a follow-up, reply 1" for ``channel``: (outbox kind, address, payload).

    It carries no health content (minimum disclosure). On WeChat it is a customer-service text
    inside the 48-hour window after the patient's last message, else a template message: the
    clinic's template for ``template_purpose`` (an invitation's FOLLOWUP, a reminder's REMINDER).
    ``last_inbound``: when the patient last wrote on WeChat, if the caller read it already (a batch).
    """
    config = services.config
    text = say("followup_invite", patient.language, channel=channel, **config.clinic.placeholders())
    if channel == "wechat":
        last = last_inbound_at(session, patient, "wechat") if last_inbound == LOOK_UP else last_inbound
        window = timedelta(hours=config.wechat_window_hours)
        inside_window = last is not None and clock_of(session).now() - last < window
        template = config.wechat_template(template_purpose)
        if inside_window or not template:
            return "text", patient.wechat_openid or "", {"text": text}
        # Outside the 48-hour customer-service window only a template message may start the conversation.
        return "template", patient.wechat_openid or "", template_payload(config, patient, template, text)
    if channel == "voice":
        voice = patient.consent_for("voice")
        return "call", patient.phone or "", {"record": bool(voice and voice.recording_consent),
                                             "session_id": str(conversation.id)}
    if channel == "sms":
        return "text", patient.phone or "", {"text": text}
    return "text", str(patient.card_no), {"text": text}


RETRY_SAME_CHANNEL_AFTER = timedelta(minutes=30)


def invitation_failed(session: Session, followup_id: object, *, retryable: bool,
                      invitation: uuid.UUID | None = None) -> bool:
    """An invitation could not reach the patient (send failed, call busy/unanswered/machine).

    ``retryable`` failures try the same channel again after a pause, up to the follow-up's
    ``max_attempts_per_channel``; then, or for permanent failures, the next channel is tried.
    Only while the follow-up still waits on that invitation (``invitation``: the conversation it
    opened, when known), as it stands once the patient's lock is taken: a reply to it may be under
    way. Returns whether the follow-up was moved on.
    """
    followup = session.get(FollowUp, followup_id)
    if followup is None:
        return False
    patient = session.get(Patient, followup.patient_id)
    if patient is not None:
        session.flush()  # the caller's own changes, kept when the follow-up is read again below
        lock_patient(session, patient)
        session.refresh(followup)
    if followup.status != FollowUpStatus.INVITED.value or (invitation is not None
                                                          and followup.session_id != invitation):
        return False
    now = clock_of(session).now()
    channel = followup.current_channel
    tries = session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.followup_id == followup.id, OutboxMessage.channel == channel))
    if followup.session_id is not None:
        conversation = session.get(ConversationSession, followup.session_id)
        if conversation is not None and as_now(session, conversation).status == SessionStatus.INVITED.value:
            conversation.followup_id = None
            close(session, conversation, "expired")
    followup.status = FollowUpStatus.SCHEDULED.value
    if retryable and int(tries or 0) < followup.max_attempts_per_channel:
        followup.next_action_at = now + RETRY_SAME_CHANNEL_AFTER
    else:
        followup.channel_index += 1
        followup.next_action_at = now
    return True
