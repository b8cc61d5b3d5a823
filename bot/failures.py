"""When a turn fails: a short apology to the patient, a task for the staff, an answer the provider accepts.

A failure inside a turn (a bug, a flow whose action cannot be applied, a broken record) must not
become an HTTP 500: WeChat and Twilio would redeliver the same poisoned message again and again,
and the patient would hear nothing. The turn's own work is rolled back by the caller; this module
writes what replaces it, in the same transaction as the delivery's claim, so a redelivery gets the
same apology and nothing is processed twice. The log line names the failure's type and where it
happened, never the message or anything of the record (the traceback's frames, not its values).
"""

from __future__ import annotations

import logging
import traceback
import uuid

from sqlalchemy.orm import Session

from bot import identity
from bot.conversations import BotServices, close
from bot.messages import InboundMessage, Reply
from bot.models import ConversationSession, Direction, SessionStatus
from bot.texts import say
from bot.turns.effects import log_message
from bot.turns.scene import Scene
from care.models import Patient
from care.tasks import create_task
from security.audit import Actor

logger = logging.getLogger("careloop.bot")

FAILED_STATUS = "failed"
TASK_KIND = "turn_failed"


def log_failure(failure: BaseException, *, channel: str, what: str) -> None:
    """Log ``failure`` by type and code location only (exception messages may quote what the patient sent)."""
    frames = "".join(traceback.format_tb(failure.__traceback__))
    logger.error("%s failed on %s: %s\n%s", what, channel, type(failure).__name__, frames)


def apologise(session: Session, services: BotServices, message: InboundMessage, receipt_id: uuid.UUID) -> Reply:
    """Write what a failed turn leaves behind and return the apology (empty for an unknown sender)."""
    patient, conversation = identity.find_correspondent(session, message.channel, message.sender)
    if patient is None:
        return Reply()
    details: dict[str, object] = {"message": message.text[:1000], "receipt_id": str(receipt_id)}
    text = leave_failed_turn(session, services, patient, conversation, message.channel, details,
                             source_ref=str(receipt_id))
    return Reply(texts=[text], patient_id=str(patient.id))


def leave_failed_turn(session: Session, services: BotServices, patient: Patient,
                      conversation: ConversationSession | None, channel: str, details: dict[str, object], *,
                      source_ref: str) -> str:
    """End the conversation as ``failed``, queue a high task for the staff, log and return the apology.

    The conversation ends so that the patient's next message starts afresh rather than failing at
    the same step again; the task holds what the patient said and where the flow stood.
    """
    actor = Actor("system", "bot", channel)
    details = {"channel": channel, **details}
    if conversation is not None:
        details.update(flow_id=conversation.flow_id, session_id=str(conversation.id))
        if conversation.status != SessionStatus.ENDED.value:
            close(session, conversation, FAILED_STATUS)
    create_task(session, patient, kind=TASK_KIND, priority="high", reason=TASK_KIND, details=details,
                source_ref=source_ref, actor=actor)
    config = services.config
    text = say("turn_failed", patient.language, channel=channel, **config.clinic.placeholders())
    log_message(Scene.of(session, patient.id), conversation_id=None, channel=channel, direction=Direction.OUT,
                text=text)
    return text
