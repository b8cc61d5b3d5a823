"""Speaking for a patient over the console channel: the admin simulator and ``careloop console``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from bot.conversations import BotServices
from bot.messages import InboundMessage, Reply
from bot.router import handle_inbound
from care.care_teams import check_access
from care.errors import NotFoundError
from care.models import Patient, PatientStatus, User
from care.patients import find_by_card
from care.test_patients import own_test_patient, require_test_patient
from security.audit import Actor, log

CHANNEL = "console"


def send_as_patient(session: Session, services: BotServices, *, card_no: str, text: str, speaker: Actor,
                    at: datetime) -> Reply:
    """Hand ``text`` to the bot as if the patient with ``card_no`` sent it, and return the reply.

    The operator's ``careloop console``; the panel's simulator goes through :func:`simulate`.
    The bot audits what the conversation changes, as the patient; an entry here says who spoke for them.

    Raises:
        NotFoundError: no active patient has this card number.
    """
    patient = find_by_card(session, card_no)
    if patient is None or patient.status != PatientStatus.ACTIVE.value:
        raise NotFoundError("no active patient with this card number")
    return _speak_as(session, services, patient, text=text, speaker=speaker, at=at)


@dataclass(frozen=True)
class Simulated:
    """The bot's reply to a simulated message, and the test patient it was sent as."""

    reply: Reply
    patient: Patient


def simulate(session: Session, services: BotServices, *, staff: User, text: str, speaker: Actor, at: datetime,
             card_no: str | None = None, patient_id: uuid.UUID | None = None, language: str = "zh") -> Simulated:
    """Hand ``text`` to the bot as a test patient, for a staff member trying a flow in the simulator.

    Without ``card_no`` or ``patient_id`` it is the staff member's own test patient (made now, in
    ``language``, the first time). A patient named must be an active test patient the staff member
    may see. Nothing is written when the request is refused.

    Raises:
        NotFoundError: no active patient has this card number or id.
        NotATestPatientError: the patient named is a real patient (the simulator never speaks for one).
        OutsideCareTeamError: it is a test patient outside the staff member's care teams (another's).
    """
    if card_no is None and patient_id is None:
        patient = own_test_patient(session, staff, actor=speaker, language=language,
                                   timezone=services.config.timezone)
    else:
        found = session.get(Patient, patient_id) if patient_id is not None else find_by_card(session, card_no or "")
        if found is None or found.status != PatientStatus.ACTIVE.value:
            raise NotFoundError("no active patient with this card number")
        require_test_patient(found)
        check_access(session, staff, found)
        patient = found
    return Simulated(_speak_as(session, services, patient, text=text, speaker=speaker, at=at), patient)


def _speak_as(session: Session, services: BotServices, patient: Patient, *, text: str, speaker: Actor,
              at: datetime) -> Reply:
    session.flush()  # a test patient made just now must be in the database before the bot looks it up
    message = InboundMessage(channel=CHANNEL, provider_key=f"console:{uuid.uuid4()}", sender=patient.card_no or "",
                             kind="text", text=text, received_at=at)
    reply = handle_inbound(session, services, message)
    # Written after the turn: a turn that fails rolls back what the session holds, and this entry must stay.
    log(session, actor=speaker, action="simulator.message", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"channel": CHANNEL})
    return reply
