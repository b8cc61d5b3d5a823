"""From one inbound message to the reply: dedupe, identify, opt-out words, the conversation, the menu.

A turn: claim the delivery and lock the patient (:mod:`bot.turns.delivery`), read what the turn
needs of them (:mod:`bot.turns.context`), step the conversation (:mod:`bot.conversations`), apply
the engine's events as the turn's rows (:mod:`bot.turns.effects`), fit the reply to the channel and
write the rows once, the conversation's changes and the receipt's reply with them (:mod:`bot.turns.scene`);
the entry point commits.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import consent, failures, free_text, identity
from bot.conversations import (
    BotServices,
    ConversationError,
    Turn,
    answer,
    begin,
    log_inbound,
    open_conversation,
)
from bot.messages import InboundMessage, Reply
from bot.models import Direction, UnknownSender
from bot.outbox.queue import advance_delivery
from bot.rendering import render_text
from bot.texts import say
from bot.turns.context import TurnContext, load_turn
from bot.turns.delivery import claim_and_lock, claim_delivery
from bot.turns.effects import log_message
from bot.turns.replies import fit_reply
from bot.turns.scene import Scene, write_scenes
from care.models import Patient
from security.audit import Actor
from security.dialects import GuardFailedError
from security.fields import cipher_of, clock_of

logger = logging.getLogger("careloop.bot")

CONSENT_WORDS = consent.STOP_WORDS | consent.START_WORDS | consent.HELP_WORDS


def _never() -> bool:
    return False


def handle_inbound(session: Session, services: BotServices, message: InboundMessage, *,
                   late: Callable[[], bool] = _never) -> Reply:
    """Process one inbound text or event once and return the reply for the same channel.

    A new reply is fitted to its channel (:func:`bot.turns.replies.fit_reply`) before it is kept on
    the delivery's receipt; ``late`` says whether the channel's deadline for answering has passed
    (WeChat's 5 seconds), and then every text follows by the outbox. A repeated delivery gets the
    kept reply as it is.
    """
    try:
        try:
            return _handle(session, services, message, late, early_read=True)
        except GuardFailedError:
            # Another message of the patient's was committed while this one waited for the lock.
            session.rollback()
            return _handle(session, services, message, late, early_read=False)
    except Exception as failure:  # noqa: BLE001 - a failed turn is answered, never turned into a redelivery
        session.rollback()
        failures.log_failure(failure, channel=message.channel, what="a turn")
        return _after_failure(session, services, message, late)


def _after_failure(session: Session, services: BotServices, message: InboundMessage,
                   late: Callable[[], bool]) -> Reply:
    """Claim the delivery again (the failed turn's claim was rolled back) and answer it with the apology."""
    receipt, previous = claim_delivery(session, message)
    if receipt is None:
        assert previous is not None  # noqa: S101 - a claim holds one or the other
        return previous
    reply = fit_reply(session, message, failures.apologise(session, services, message, receipt.id),
                      receipt_id=receipt.id, late=late())
    receipt.patient_id = uuid.UUID(reply.patient_id) if reply.patient_id else None
    receipt.reply = reply.to_dict()
    write_scenes(session)
    return reply


def _handle(session: Session, services: BotServices, message: InboundMessage, late: Callable[[], bool], *,
            early_read: bool) -> Reply:
    """One turn: claim and lock, read the turn's context, answer, fit the reply, write the scene once.

    ``early_read``: a text that only a waiting conversation answers may use what the claim's
    statement read of the patient (see :func:`bot.turns.context.load_turn`).
    """
    claimed = claim_and_lock(session, message)
    delivery, patient_id = claimed.delivery, claimed.patient_id
    if delivery is None:
        assert claimed.previous is not None  # noqa: S101 - a claim holds one or the other
        return claimed.previous
    if message.kind == "media":
        # WeChat transcribes voice notes when the account enables it; that text is an answer like any other.
        recognised = str(message.extra.get("recognition") or "").strip()
        if recognised:
            message = replace(message, kind="text", text=recognised)
    context = None
    if patient_id is not None:
        early = early_read and message.kind == "text" and consent.keyword(message.text) not in CONSENT_WORDS
        context = load_turn(session, patient_id, message.channel, claimed.read if early else None)
    actor = Actor("patient", str(patient_id) if patient_id else "unknown", message.channel)
    if message.kind == "event":
        reply = _event(session, services, message, context.record() if context else None, actor)
    elif message.kind == "media":
        lang = context.record().language if context else "zh"
        reply = Reply(texts=[say("media_unsupported", lang)], patient_id=str(patient_id) if patient_id else None)
    elif context is None:
        reply = _stranger(session, services, message, actor)
    else:
        reply = _from_patient(session, services, message, context, actor)
    reply = fit_reply(session, message, reply, receipt_id=delivery.id, late=late())
    delivery.keep(session, reply, patient_id)
    write_scenes(session)
    return reply


def _from_patient(session: Session, services: BotServices, message: InboundMessage, context: TurnContext,
                  actor: Actor) -> Reply:
    config = services.config
    word = consent.keyword(message.text)
    patient_id = context.patient_id
    if word in consent.STOP_WORDS:
        patient = context.record()
        consent.opt_out(session, patient, message.channel, actor=actor, reason=f"keyword:{word}")
        log_inbound(session, patient_id, None, message.channel, message.text)
        return _texts(session, patient, message.channel, [say("opted_out", patient.language)])
    if word in consent.START_WORDS:
        patient = context.record()
        consent.opt_in(session, patient, message.channel, actor=actor)
        return _texts(session, patient, message.channel, [say("opted_in", patient.language)])
    if word in consent.HELP_WORDS:
        patient = context.record()
        return _texts(session, patient, message.channel,
                      [say("help", patient.language, clinic=config.clinic_name, phone=config.clinic_phone)])
    if context.opted_out:
        # The patient opted out here; only START brings the channel back.
        return Reply(patient_id=str(patient_id))
    conversation = context.conversation
    log_inbound(session, patient_id, conversation, message.channel, message.text)
    turn: Turn | None = None
    try:
        if conversation is not None:
            conversation.channel = message.channel
            turn = answer(session, services, conversation, message.text, actor=actor)
        elif word in config.keywords:
            turn = begin(session, services, context.record(), config.keywords[word], channel=message.channel,
                         actor=actor)
    except ConversationError:
        logger.warning("conversation could not continue for patient %s", patient_id)
        turn = None
    if turn is None:
        patient = context.record()
        if conversation is None and word not in config.keywords and not free_text.wants_the_menu(message.text):
            texts = free_text.answer_free_text(session, config, patient, message.channel, message.text)
            return _texts(session, patient, message.channel, texts)
        return _texts(session, patient, message.channel, [say("menu", patient.language)])
    texts = render_text(turn.outputs, turn.lang)
    return Reply(texts=texts, patient_id=str(patient_id), session_id=str(turn.conversation.id))


def _texts(session: Session, patient: Patient, channel: str, texts: list[str]) -> Reply:
    for text in texts:
        log_message(Scene.of(session, patient.id), conversation_id=None, channel=channel, direction=Direction.OUT,
                    text=text)
    return Reply(texts=texts, patient_id=str(patient.id))


def _stranger(session: Session, services: BotServices, message: InboundMessage, actor: Actor) -> Reply:
    config = services.config
    if message.channel == "wechat":
        step = identity.continue_binding(session, config, message.sender, message.text, actor=actor)
        lang = step.patient.language if step.patient else "zh"
        reply = Reply(texts=[say(step.reply_key, lang, **step.values)])
        if step.patient is not None:
            reply.patient_id = str(step.patient.id)
            log_message(Scene.of(session, step.patient.id), conversation_id=None, channel="wechat",
                        direction=Direction.OUT, text=reply.texts[0])
        return reply
    if message.channel == "sms":
        index = cipher_of(session).blind_index("unknown_sender", f"{message.channel}:{message.sender}")
        seen = session.scalars(select(UnknownSender).where(
            UnknownSender.channel == message.channel, UnknownSender.address_index == index)).one_or_none()
        if seen is not None:
            return Reply()
        session.add(UnknownSender(channel=message.channel, address_index=index, first_seen_at=clock_of(session).now()))
        return Reply(texts=[say("not_registered", "zh", clinic=config.clinic_name, phone=config.clinic_phone)])
    return Reply()


def _event(session: Session, services: BotServices, message: InboundMessage, patient: Patient | None,
           actor: Actor) -> Reply:
    config = services.config
    event = (message.event or "").lower()
    if event in ("subscribe", "scan"):
        if message.event_key:
            bound = identity.bind_by_scene(session, message.sender, message.event_key, actor=actor)
            if bound is not None:
                return Reply(texts=[say("bound", bound.language, name=bound.name or "")], patient_id=str(bound.id))
        if patient is not None:
            consent.opt_in(session, patient, "wechat", actor=actor)
            return Reply(texts=[say("menu", patient.language)], patient_id=str(patient.id))
        if event == "subscribe":
            return Reply(texts=[say("welcome_bind", "zh", clinic=config.clinic_name, phone=config.clinic_phone)])
        return Reply()
    if event == "unsubscribe":
        if patient is not None:
            consent.opt_out(session, patient, "wechat", actor=actor, reason="wechat_unsubscribe")
        return Reply()
    if event == "click" and patient is not None and message.event_key:
        flow_id = config.keywords.get(message.event_key.lower())
        if flow_id is not None and open_conversation(session, patient) is None:
            turn = begin(session, services, patient, flow_id, channel="wechat", actor=actor)
            return Reply(texts=render_text(turn.outputs, turn.lang), patient_id=str(patient.id),
                         session_id=str(turn.conversation.id))
        return Reply(texts=[say("menu", patient.language)], patient_id=str(patient.id))
    if event == "templatesendjobfinish":
        status = str(message.extra.get("status", "")).lower()
        msg_id = str(message.extra.get("msg_id", ""))
        if msg_id:
            advance_delivery(session, msg_id, "delivered" if status == "success" else "failed",
                             error_code=status or None, at=clock_of(session).now())
        return Reply()
    return Reply()

