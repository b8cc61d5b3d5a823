"""Reminders and expiry of conversations waiting for the patient."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.consent import channel_usable, in_quiet_hours, quiet_hours_end
from bot.conversations import BotServices, fire_timer, lock_patient
from bot.models import ConversationSession, SessionStatus
from bot.outbox import enqueue
from bot.rendering import render_text
from bot.texts import say
from care.models import Patient
from security.audit import Actor
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
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(session.scalars(query))
    for conversation in rows:
        patient = session.get(Patient, conversation.patient_id)
        if patient is None:
            continue
        lock_patient(session, patient)
        turn = fire_timer(session, services, patient, conversation, actor=TIMERS)
        channel = conversation.channel
        if not turn.outputs or channel not in TEXT_CHANNELS or not channel_usable(patient, channel):
            continue  # nothing to say, or the call is over, or the patient opted out meanwhile
        if services.config.minimum_disclosure and not turn.ended:
            # A message the clinic starts carries no health content: a neutral nudge, the question follows a reply.
            texts = [say("followup_invite", patient.language, clinic=services.config.clinic_name)]
        else:
            texts = render_text(turn.outputs, turn.lang)
        not_before = quiet_hours_end(services.config, patient, now) if in_quiet_hours(services.config, patient,
                                                                                    now) else None
        address = {"wechat": patient.wechat_openid, "sms": patient.phone}.get(channel) or str(patient.card_no)
        stamp = now.strftime("%Y%m%d%H%M%S")
        for index, text in enumerate(texts):
            enqueue(session, idempotency_key=f"timer:{conversation.id}:{stamp}:{index}", channel=channel,
                    kind="text", purpose="reminder" if not turn.ended else "expiry", address=address,
                    payload={"text": text}, patient=patient, session_id=conversation.id, not_before=not_before)
    return len(rows)
