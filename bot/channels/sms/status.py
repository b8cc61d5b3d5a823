"""What Twilio reports back about a text message: its delivery status, and a STOP that opts the patient out."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import consent
from bot.channels.twilio_rest import OPTED_OUT
from bot.followups import invitation_failed
from bot.models import OutboxMessage, OutboxStatus
from bot.outbox.queue import advance_delivery
from care.models import Patient
from security.audit import Actor
from security.fields import clock_of

logger = logging.getLogger("careloop.channels.twilio")

MESSAGE_FAILED_STATUSES = ("failed", "undelivered")
STATUS_ACTOR = Actor("system", "twilio", "sms")


def message_status(session: Session, *, message_sid: str, status: str, error_code: str | None,
                   outbox_id: uuid.UUID | None) -> OutboxMessage | None:
    """Apply a message status callback: delivery state moves forward only; 21610 opts the channel out.

    ``outbox_id`` (from the callback URL we gave Twilio) finds a row whose SID we have not recorded
    yet: Twilio may call back before the dispatcher has written down what it sent.
    """
    if outbox_id is not None:
        row = session.get(OutboxMessage, outbox_id)
        if row is not None and row.provider_id is None and row.channel == "sms":
            row.provider_id = message_sid
    before = session.scalars(select(OutboxMessage.status).where(OutboxMessage.provider_id == message_sid)).first()
    row = advance_delivery(session, message_sid, status.lower(), error_code=error_code,
                           at=clock_of(session).now())
    if row is None:
        logger.info("status %s for unknown message %s", status, message_sid)
        return None
    failed = status.lower() in MESSAGE_FAILED_STATUSES
    opted_out = failed and error_code == str(OPTED_OUT)
    if opted_out and row.patient_id is not None:
        patient = session.get(Patient, row.patient_id)
        if patient is not None:
            consent.opt_out(session, patient, "sms", actor=STATUS_ACTOR, reason=f"provider:{error_code}")
    if failed and before != OutboxStatus.FAILED.value and row.status == OutboxStatus.FAILED.value:
        fail_invitation(session, row, retryable=not opted_out)
    return row


def fail_invitation(session: Session, row: OutboxMessage, *, retryable: bool) -> bool:
    """Tell the follow-up behind ``row`` that its invitation did not reach the patient.

    Only while that very invitation is the follow-up's current one: a late report about an older
    attempt must not disturb the attempt under way. Returns whether the follow-up was told.
    """
    if row.followup_id is None or row.session_id is None:
        return False
    return invitation_failed(session, row.followup_id, retryable=retryable, invitation=row.session_id)

