"""A plan's occurrences as the follow-up worker meets them: stale or missed rows, caps, start modes, silence.

:func:`bot.followups.due_followups` handles plan rows and other follow-ups alike, a batch at a time
(what the rows need is read once per batch: :class:`bot.followup_batch.FollowUpBatch`); for a plan's
row it asks this module first:

* :func:`gate`: the enrolment ended (cancelled), the row is stale (its ``fire_version`` is older
  than the enrolment's: a no-op), or it is overdue past the grace (skipped as missed, never sent).
  The first time a row of a recurring step is acted on, its next occurrence is scheduled.
* :func:`hold_until`: when the next message must wait: the patient's caps (messages a day and a
  week across all plans, in their own time zone) and the channel's daily cap; a capped
  occurrence waits (``due``) until the next allowed time, out of quiet hours.
* :func:`busy`: the patient is in a conversation: ``wait`` (default) until it ends, ``skip`` this
  occurrence, or ``interrupt`` the conversation (closed as interrupted) and start.
* ``bot.followups._plan_silence``: an unanswered invitation: a reminder on the same channel (up to
  the step's attempts), then the next channel, then a staff call task, as the step's ``on_silence`` says.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from bot.config import BotConfig
from bot.consent import patient_zone, quiet_hours_end
from bot.conversations import close
from bot.followup_batch import FollowUpBatch
from care.models import FollowUp, FollowUpStatus, Patient, PlanEnrolment
from care.plans.service import schedule_next
from care.plans.timing import day_start
from care.tasks import create_task
from security.audit import Actor, log
from security.fields import clock_of

WORKER = Actor("system", "followups")
RETRY_WHEN_BUSY = timedelta(hours=2)
#: The purposes of the messages a follow-up sends (what the caps count).
PURPOSE = "followup_invite"


def grace_of(config: BotConfig) -> timedelta:
    return timedelta(hours=config.plan_grace_hours)


def _end(followup: FollowUp, status: FollowUpStatus, outcome: str) -> None:
    followup.status = status.value
    followup.outcome = outcome
    followup.next_action_at = None


def gate(session: Session, config: BotConfig, followup: FollowUp, now: datetime) -> bool:
    """Whether the plan's row goes on to be sent; when not, it was settled here (cancelled, stale, missed)."""
    enrolment = session.get(PlanEnrolment, followup.enrolment_id) if followup.enrolment_id else None
    if enrolment is None or enrolment.status != "active":
        _end(followup, FollowUpStatus.CANCELLED, "left")
        return False
    if followup.fire_version < enrolment.fire_version:
        _end(followup, FollowUpStatus.SKIPPED, "stale")
        return False
    first_time = followup.status == FollowUpStatus.SCHEDULED.value
    if followup.attempts == 0 and followup.next_action_at is not None \
            and now - followup.next_action_at > grace_of(config):
        _end(followup, FollowUpStatus.SKIPPED, "missed")
        if first_time:
            schedule_next(session, followup, grace=grace_of(config))
        log(session, actor=WORKER, action="followup.missed", resource_type="followup", resource_id=followup.id,
            patient_id=followup.patient_id, details={"plan": followup.plan_key})
        return False
    if first_time:
        followup.status = FollowUpStatus.DUE.value
        schedule_next(session, followup, grace=grace_of(config))
    return True


def hold_until(config: BotConfig, batch: FollowUpBatch, patient: Patient, channel: str,
               now: datetime) -> datetime | None:
    """When the patient's next follow-up message on ``channel`` may go if not now (None: now)."""
    zone = patient_zone(config, patient)
    today = now.astimezone(zone).date()
    day = day_start(today, zone)
    week = day_start(today - timedelta(days=today.weekday()), zone)
    later: datetime | None = None
    if batch.sent_since(patient, week) >= config.plan_weekly_cap:
        later = day_start(today + timedelta(days=7 - today.weekday()), zone)
    elif batch.sent_since(patient, day) >= config.plan_daily_cap:
        later = day_start(today + timedelta(days=1), zone)
    elif batch.channel_full(channel):
        later = batch.clinic_day_start(1)
    if later is None:
        return None
    return quiet_hours_end(config, patient, later.astimezone(UTC))


def busy(session: Session, batch: FollowUpBatch, followup: FollowUp, patient: Patient, now: datetime) -> bool:
    """Whether the patient's open conversation stops the row now (it waits, or is skipped); ``interrupt`` closes it."""
    current = batch.open_conversation(patient)
    if current is None:
        return False
    mode = followup.start_mode or "wait"
    if mode == "interrupt":
        close(session, current, "interrupted")
        session.flush()  # the closed conversation gives up its place (one open per patient) before the next
        log(session, actor=WORKER, action="conversation.interrupt", resource_type="conversation",
            resource_id=current.id, patient_id=patient.id, details={"followup": str(followup.id)})
        return False
    if mode == "skip" and followup.attempts == 0:
        _end(followup, FollowUpStatus.SKIPPED, "busy")
        return True
    followup.status = FollowUpStatus.DUE.value if followup.attempts == 0 else followup.status
    followup.next_action_at = now + RETRY_WHEN_BUSY
    return True


def end_unanswered(session: Session, followup: FollowUp, patient: Patient) -> None:
    """Every try went unanswered (or none could be made): no response / failed, and a staff call if the step says."""
    tried = followup.attempts > 0
    _end(followup, FollowUpStatus.UNANSWERED if tried else FollowUpStatus.FAILED,
         "no_response" if tried else "no_usable_channel")
    if "staff_call" in (followup.on_silence or ()):
        create_task(session, patient, kind="followup_call", priority="high", reason="followup_unanswered",
                    details={"flow_id": followup.flow_id, "plan": followup.plan_key or "",
                             "channels": ",".join(followup.channel_order or []), "followup_id": str(followup.id)},
                    source_ref=str(followup.id), actor=WORKER)


def close_invitation(session: Session, batch: FollowUpBatch, followup: FollowUp) -> None:
    conversation = batch.invitation(followup)
    if conversation is not None:
        conversation.followup_id = None
        close(session, conversation, "expired")


def clock_now(session: Session) -> datetime:
    return clock_of(session).now()
