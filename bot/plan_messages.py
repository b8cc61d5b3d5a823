"""A plan's message step as the follow-up worker meets it: one education message, sent as it is.

:func:`bot.followups.due_followups` hands a row with a ``content_key`` (an intervention's education
message, or any plan's ``message`` step) to :func:`send_message` once the plan's gate let it through
(:func:`bot.plan_followups.gate`: the enrolment ended, a stale row, a missed one). Like an
invitation, it goes on the first channel of its order that is live, consented, not opted out and
reachable; it waits out quiet hours, the patient's and the channel's caps (it counts in them) and an
open conversation (``wait``; ``skip`` drops it). Nobody answers it: once queued in the outbox
(same transaction) the row is ``completed`` with the outcome ``sent`` and the channel it took; no
usable channel: ``failed`` (``no_usable_channel``), and no staff call.

On WeChat the text goes as a customer-service message inside the 48-hour window after the
patient's last message, else as the clinic's ``EDUCATION`` template (falling back to FOLLOWUP's).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.consent import channel_usable, in_quiet_hours, quiet_hours_end
from bot.conversations import BotServices
from bot.followup_batch import FollowUpBatch
from bot.outbox.queue import enqueue
from bot.outreach import template_payload
from bot.plan_followups import busy, hold_until
from care.interventions.content import message_text
from care.models import FollowUp, FollowUpStatus, Patient
from security.audit import Actor, log

WORKER = Actor("system", "followups")
#: The outbox purpose of an education message (at-least-once, as the clinic's own messages are).
PURPOSE = "education"
TEMPLATE = "EDUCATION"


def _payload(services: BotServices, patient: Patient, channel: str, text: str, now: datetime,
             last_inbound: datetime | None) -> tuple[str, str, dict[str, Any]]:
    config = services.config
    if channel == "wechat":
        window = timedelta(hours=config.wechat_window_hours)
        inside_window = last_inbound is not None and now - last_inbound < window
        template = config.wechat_template(TEMPLATE)
        if inside_window or not template:
            return "text", patient.wechat_openid or "", {"text": text}
        return "template", patient.wechat_openid or "", template_payload(config, patient, template, text)
    if channel == "sms":
        return "text", patient.phone or "", {"text": text}
    return "text", str(patient.card_no), {"text": text}


def send_message(session: Session, services: BotServices, batch: FollowUpBatch, followup: FollowUp) -> None:
    """Send the row's education message now, or say when to look again (see the module docstring); what
    the row's patient needs was read with the worker's batch (:class:`bot.followup_batch.FollowUpBatch`)."""
    now = batch.now
    patient = batch.patient(followup)
    text = message_text(followup.content_key or "", patient.language if patient is not None else None)
    if patient is None or text is None:
        followup.status = FollowUpStatus.CANCELLED.value
        followup.outcome = "no_patient" if patient is None else "no_such_message"
        followup.next_action_at = None
        return
    order = list(followup.channel_order or [])
    while followup.channel_index < len(order):
        channel = order[followup.channel_index]
        if channel not in services.adapters or not channel_usable(session, patient, channel, PURPOSE,
                                                                   decisions=batch.decisions):
            followup.channel_index += 1
            continue
        followup.status = FollowUpStatus.DUE.value
        if in_quiet_hours(services.config, patient, now):
            followup.next_action_at = quiet_hours_end(services.config, patient, now)
            return
        later = hold_until(services.config, batch, patient, channel, now)
        if later is not None:
            followup.next_action_at = later
            return
        if busy(session, batch, followup, patient, now):
            return
        last = batch.last_inbound(patient) if channel == "wechat" else None
        kind, address, payload = _payload(services, patient, channel, text, now, last)
        batch.queued(enqueue(session, idempotency_key=f"education:{followup.id}", channel=channel, kind=kind,
                             purpose=PURPOSE, address=address, payload=payload, patient=patient,
                             followup_id=followup.id, known_keys=batch.keys))
        followup.status = FollowUpStatus.COMPLETED.value
        followup.outcome = "sent"
        followup.current_channel = channel
        followup.attempts = 1
        followup.invited_at = followup.completed_at = now
        followup.next_action_at = None
        log(session, actor=WORKER, action="followup.message", resource_type="followup", resource_id=followup.id,
            patient_id=patient.id, details={"channel": channel, "content": followup.content_key,
                                            "plan": followup.plan_key})
        return
    followup.status = FollowUpStatus.FAILED.value
    followup.outcome = "no_usable_channel"
    followup.next_action_at = None
