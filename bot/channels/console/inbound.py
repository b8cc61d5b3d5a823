"""Speaking for a patient over the console channel: the admin simulator and ``careloop console``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from bot.conversations import BotServices
from bot.messages import InboundMessage, Reply
from bot.router import handle_inbound
from care.errors import NotFoundError
from care.models import PatientStatus
from care.patients import find_by_card
from security.audit import Actor, log

CHANNEL = "console"


def send_as_patient(session: Session, services: BotServices, *, card_no: str, text: str, speaker: Actor,
                    at: datetime) -> Reply:
    """Hand ``text`` to the bot as if the patient with ``card_no`` sent it, and return the reply.

    The bot audits what the conversation changes, as the patient; an entry here says who spoke for them.

    Raises:
        NotFoundError: no active patient has this card number.
    """
    patient = find_by_card(session, card_no)
    if patient is None or patient.status != PatientStatus.ACTIVE.value:
        raise NotFoundError("no active patient with this card number")
    message = InboundMessage(channel=CHANNEL, provider_key=f"console:{uuid.uuid4()}", sender=patient.card_no or card_no,
                             kind="text", text=text, received_at=at)
    reply = handle_inbound(session, services, message)
    # Written after the turn: a turn that fails rolls back what the session holds, and this entry must stay.
    log(session, actor=speaker, action="simulator.message", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"channel": CHANNEL})
    return reply
