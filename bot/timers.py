"""Reminders and expiry of conversations waiting for the patient."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.consent import channel_usable, in_quiet_hours, quiet_hours_end
from bot.conversations import BotServices, fire_timer, lock_patient
from bot.followups import REMINDER_TEMPLATE, neutral_notice
from bot.models import ConversationSession, SessionStatus
from bot.outbox.queue import enqueue
from bot.rendering import render_text
from bot.texts import say
from care.models import Patient
from security.audit import Actor
from security.dialects import claim_rows
from security.fields import clock_of

TIMERS = Actor("system", "timers")
TEXT_CHANNELS = ("wechat", "sms", "console")


def due_timers(session: Session, services: BotServices, *, limit: int = 100) -> int:
    """Fire the reminders and expiries that fell due; return how many conversations were handled."""
    now = clock_of(session).now()
    query = (
        select(ConversationSession)
        .where(ConversationSession.status == SessionStatus.WAITING.value, ConversationSession.next_timer_at <= now)
        .order_by(ConversationSession.next_timer_at).limit(limit)
    )
    query = claim_rows(session, query)
    handled = 0
    for conversation in list(session.scalars(query)):
        patient = session.get(Patient, conversation.patient_id)
        if patient is None:
            continue
        if not lock_patient(session, patient, wait=False):
            # A message of the patient's is being handled: its transaction holds the patient and
            # will write this conversation, which this query has locked. Waiting here could
            # deadlock with it; the timer fires at a later tick if it is still due.
            continue
        turn = fire_timer(session, services, conversation, actor=TIMERS)
        handled += 1
        channel = conversation.channel
        if (not turn.outputs or channel not in TEXT_CHANNELS
                or not channel_usable(session, patient, channel, "expiry" if turn.ended else "reminder")):
            continue  # nothing to say, or the call is over, or the patient opted out meanwhile
        not_before = quiet_hours_end(services.config, patient, now) if in_quiet_hours(services.config, patient,
                                                                                    now) else None
        stamp = now.strftime("%Y%m%d%H%M%S")
        kind, address, notice = neutral_notice(session, services, patient, channel, conversation,
                                               template_purpose=REMINDER_TEMPLATE)
        if turn.ended:
            texts = [say("session_expired", patient.language, channel=channel)] if kind == "text" else []
        elif services.config.minimum_disclosure or kind != "text":
            # A message the clinic starts carries no health content: a neutral nudge (a template
            # message outside WeChat's 48-hour window); the question follows the patient's reply.
            enqueue(session, idempotency_key=f"timer:{conversation.id}:{stamp}", channel=channel, kind=kind,
                    purpose="reminder", address=address, payload=notice, patient=patient,
                    session_id=conversation.id, not_before=not_before)
            continue
        else:
            texts = render_text(turn.outputs, turn.lang)
        for index, text in enumerate(texts):
            enqueue(session, idempotency_key=f"timer:{conversation.id}:{stamp}:{index}", channel=channel,
                    kind="text", purpose="expiry" if turn.ended else "reminder", address=address,
                    payload={"text": text}, patient=patient, session_id=conversation.id, not_before=not_before)
    return handled
