"""The outbox: every outbound message is a row, written with the state change that caused it.

Sending happens after commit (the dispatcher). A row moves forward only:
``queued -> sending -> sent -> delivered``, or ends ``unconfirmed``, ``failed`` or ``cancelled``.

**Claims, attempts and dead workers.** A worker claims a batch of due rows (``sending``, leased
to it) and sends them one by one; just before each provider call it writes the row's own
"attempt started" mark (``sending_started_at``) and the row's lease runs from there. Every worker
beats (``worker_heartbeats``, every ``worker_heartbeat_seconds``). When a worker falls silent for
``worker_dead_after_seconds`` it is dead, and:

- the rows it claimed but never attempted are claimable again at once (nothing was sent);
- a started attempt on a channel whose provider can be asked (SMS, voice) is reconciled as soon
  as the attempt is older than any live provider call (``outbox_attempt_seconds``): the provider
  says whether it has the message, and it is sent only if not;
- a started attempt on WeChat, which cannot be asked, waits out its lease (``outbox_lease_seconds``)
  and then follows the purpose's delivery guarantee.

**Delivery guarantee per purpose** (:data:`DELIVERY_BY_PURPOSE`). It matters only where the
provider cannot be asked (WeChat); SMS and calls are looked up, never sent twice, never lost.

- *At least once*: follow-up invitations, reminders, results, staff messages, binding codes (and
  any purpose not listed). A send whose outcome is unknown is resent once after the lease, unless
  the patient has written since it was attempted (the conversation is alive, so it arrived or no
  longer matters) or its conversation is over. The resend may duplicate the message; that is the
  price of never losing it. If the resend's outcome is unknown too, the row ends ``unconfirmed``.
- *At most once*: replies inside a running conversation, and its closing words. An unknown
  outcome ends ``unconfirmed`` and is never resent: a repeated question confuses more than a lost
  one, and the patient's next message prompts again.

``unconfirmed`` is not ``failed``: nothing tells a follow-up to move to its next channel while a
send is unconfirmed. Only a definite failure (the provider said no, retries ran out, or the resend
was refused) does.

**Consent at the moment of sending.** The rule that let a message be queued
(:func:`care.consents.contact_refusal`: opt-outs, the channel's consent, the consent ledger) is asked
again in the transaction that writes the "attempt started" mark, the row locked: a message whose
consent was withdrawn, or whose channel the patient opted out of, after it was queued (even after a
worker claimed it) ends ``cancelled`` with the reason in ``error_code`` and never reaches the
provider. A resend after an unknown outcome asks it too (refused: ``unconfirmed``, the reason kept).
"""

from __future__ import annotations

import os
import random
import socket
import uuid
from collections.abc import Container
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, or_, select, update
from sqlalchemy.orm import Session

from bot.channels.base import OutgoingMessage, SendResult
from bot.config import BotConfig
from bot.models import (
    OUTBOX_PROGRESS,
    ConversationMessage,
    ConversationSession,
    Direction,
    OutboxMessage,
    OutboxStatus,
    SessionStatus,
    WorkerHeartbeat,
)
from care.consents import contact_refusal
from care.models import Patient
from security.dialects import claim_rows, get_locked
from security.fields import clock_of


class Delivery(StrEnum):
    AT_LEAST_ONCE = "at_least_once"
    AT_MOST_ONCE = "at_most_once"


DELIVERY_BY_PURPOSE: dict[str, Delivery] = {
    "followup_invite": Delivery.AT_LEAST_ONCE,
    "reminder": Delivery.AT_LEAST_ONCE,
    "result": Delivery.AT_LEAST_ONCE,
    "staff_message": Delivery.AT_LEAST_ONCE,
    "binding_code": Delivery.AT_LEAST_ONCE,
    "reply": Delivery.AT_MOST_ONCE,
    "expiry": Delivery.AT_MOST_ONCE,
}


# The only channel a test patient is ever reached on.
TEST_PATIENT_CHANNEL = "console"


def delivery_of(purpose: str) -> Delivery:
    """The guarantee a message of ``purpose`` is sent with (the clinic's own messages: at least once)."""
    return DELIVERY_BY_PURPOSE.get(purpose, Delivery.AT_LEAST_ONCE)


def enqueue(
    session: Session,
    *,
    idempotency_key: str,
    channel: str,
    kind: str,
    purpose: str,
    address: str,
    payload: dict[str, Any],
    patient: Patient | None,
    session_id: uuid.UUID | None = None,
    followup_id: uuid.UUID | None = None,
    not_before: datetime | None = None,
    max_attempts: int = 6,
    known_keys: Container[str] | None = None,
) -> OutboxMessage:
    """Queue one message (same transaction as its cause); a repeated key returns the existing row.

    A message for a test patient (the simulator's) on any channel but the console is written
    cancelled (``error_code`` ``test_patient``): nothing the simulator starts goes to a real provider.
    ``known_keys``: every key of the rows the caller may repeat, read already (a worker's batch reads
    the keys of its follow-ups' messages at once); the row is looked up only when its key is among them.
    """
    if known_keys is None or idempotency_key in known_keys:
        existing = session.scalars(select(OutboxMessage).where(
            OutboxMessage.idempotency_key == idempotency_key)).first()
        if existing is not None:
            return existing
    now = clock_of(session).now()
    message = OutboxMessage(
        idempotency_key=idempotency_key, patient_id=patient.id if patient else None, channel=channel, kind=kind,
        purpose=purpose, address=address, payload=payload, status=OutboxStatus.QUEUED.value, attempts=0,
        max_attempts=max_attempts, next_attempt_at=not_before or now, session_id=session_id,
        followup_id=followup_id, created_at=now,
    )
    if patient is not None and patient.is_test and channel != TEST_PATIENT_CHANNEL:
        message.status = OutboxStatus.CANCELLED.value
        message.error_code = "test_patient"
        message.last_error = "a test patient is reached on the console channel only"
    session.add(message)
    return message


def _holder_alive(now: datetime, config: BotConfig) -> ColumnElement[bool]:
    return exists().where(
        WorkerHeartbeat.worker_id == OutboxMessage.leased_by,
        WorkerHeartbeat.heartbeat_at >= now - timedelta(seconds=config.worker_dead_after_seconds),
    )


def _claimable(now: datetime, config: BotConfig, lookup_channels: list[str]) -> ColumnElement[bool]:
    sending = OutboxMessage.status == OutboxStatus.SENDING.value
    orphaned = sending & ~_holder_alive(now, config)
    settled_attempt = (OutboxMessage.channel.in_(lookup_channels)
                       & (OutboxMessage.sending_started_at < now - timedelta(seconds=config.outbox_attempt_seconds)))
    return or_(
        (OutboxMessage.status == OutboxStatus.QUEUED.value) & (OutboxMessage.next_attempt_at <= now),
        sending & (OutboxMessage.lease_until < now),
        orphaned & OutboxMessage.sending_started_at.is_(None),
        orphaned & settled_attempt,
    )


def claim(session: Session, *, worker_id: str, limit: int, config: BotConfig, channels: list[str] | None = None,
          lookup_channels: list[str] | None = None) -> list[OutgoingMessage]:
    """Lease up to ``limit`` claimable rows to this worker and return their decrypted snapshots.

    Claimable: queued and due; leased with the lease run out; claimed by a dead worker and never
    attempted; or attempted by a dead worker on one of ``lookup_channels`` (whose provider can be
    asked) longer ago than a live call can last. Rows another worker is claiming are skipped
    (``security.dialects.claim_rows``). The caller commits the claim before sending anything.
    """
    now = clock_of(session).now()
    query = (select(OutboxMessage).where(_claimable(now, config, list(lookup_channels or [])))
             .order_by(OutboxMessage.next_attempt_at).limit(limit))
    if channels is not None:
        query = query.where(OutboxMessage.channel.in_(channels))
    query = claim_rows(session, query, of=OutboxMessage)
    claimed = []
    for row in session.scalars(query):
        if row.status == OutboxStatus.QUEUED.value:
            row.sending_started_at = None
        row.status = OutboxStatus.SENDING.value
        row.lease_until = now + timedelta(seconds=config.outbox_lease_seconds)
        row.leased_by = worker_id
        patient = session.get(Patient, row.patient_id) if row.patient_id else None
        claimed.append(
            OutgoingMessage(
                id=row.id, idempotency_key=row.idempotency_key, channel=row.channel, kind=row.kind,
                purpose=row.purpose, address=row.address or "", payload=dict(row.payload or {}),
                attempts=row.attempts, sending_started_at=row.sending_started_at, patient_id=row.patient_id,
                lang=patient.language if patient else "zh", resends=row.resends,
            )
        )
    return claimed


def mark_attempt_started(session: Session, message_id: uuid.UUID, worker_id: str, config: BotConfig) -> bool:
    """Write the row's "attempt started" mark just before the provider call; its lease runs from now.

    A crash after this is reconciled (or, where the provider cannot be asked, settled by the
    purpose's guarantee), never blindly resent. Returns False when the row must not be sent: it is
    no longer this worker's (another worker took it, believing this one dead), or the consent rule
    refuses it now (:func:`refusal`; the row is then cancelled, the reason in ``error_code``). The
    rule is asked here, with the row locked in the transaction that writes the mark, so a withdrawal
    or opt-out committed before it is seen, and no two workers decide about one row.
    """
    row = get_locked(session, OutboxMessage, message_id)
    if row is None or row.leased_by != worker_id or row.status != OutboxStatus.SENDING.value:
        return False
    refused = refusal(session, row)
    if refused is not None:
        row.status = OutboxStatus.CANCELLED.value
        row.error_code = refused
        row.last_error = f"not sent: {refused}"
        row.lease_until = None
        row.leased_by = None
        return False
    now = clock_of(session).now()
    row.sending_started_at = now
    row.attempts += 1
    row.lease_until = now + timedelta(seconds=config.outbox_lease_seconds)
    return True


def refusal(session: Session, row: OutboxMessage) -> str | None:
    """Why the consent rule (:func:`care.consents.contact_refusal`, the one asked when messages are queued)
    refuses ``row`` now, or None when it may go (a message to nobody we know, a stranger's reply, may)."""
    patient = session.get(Patient, row.patient_id) if row.patient_id is not None else None
    if patient is None:
        return None
    refused = contact_refusal(session, patient, row.channel, row.purpose)
    return refused.value if refused is not None else None


def patient_wrote_since(session: Session, patient_id: uuid.UUID | None, moment: datetime) -> bool:
    """Whether the patient has sent us anything (any channel) since ``moment``."""
    if patient_id is None:
        return False
    return session.scalar(select(exists().where(
        ConversationMessage.patient_id == patient_id, ConversationMessage.direction == Direction.IN.value,
        ConversationMessage.created_at >= moment))) is True


def settle_unconfirmed(session: Session, message_id: uuid.UUID, worker_id: str, config: BotConfig) -> bool:
    """Apply the purpose's guarantee to a send whose outcome can never be known; True: resend it now.

    A resend is its own attempt (its mark is written here, in the same transaction as the
    decision). Otherwise the row ends ``unconfirmed``, saying why in ``error_code``.
    """
    row = get_locked(session, OutboxMessage, message_id)
    if row is None or row.leased_by != worker_id or row.status != OutboxStatus.SENDING.value:
        return False
    now = clock_of(session).now()
    started = row.sending_started_at or now
    reason: str | None = None
    if delivery_of(row.purpose) is Delivery.AT_MOST_ONCE:
        reason = "at_most_once"
    elif row.resends >= 1:
        reason = "resent_once"
    elif patient_wrote_since(session, row.patient_id, started):
        reason = "patient_wrote"
    elif row.session_id is not None:
        conversation = session.get(ConversationSession, row.session_id)
        if conversation is not None and conversation.status == SessionStatus.ENDED.value:
            reason = "conversation_over"
    if reason is None:
        reason = refusal(session, row)  # a resend is a send: consent and opt-outs decide again
    if reason is not None:
        row.status = OutboxStatus.UNCONFIRMED.value
        row.error_code = reason
        row.last_error = f"outcome unknown and the provider cannot be asked; not resent ({reason})"
        row.lease_until = None
        row.leased_by = None
        return False
    row.resends += 1
    row.attempts += 1
    row.sending_started_at = now
    row.lease_until = now + timedelta(seconds=config.outbox_lease_seconds)
    return True


def record_result(session: Session, message_id: uuid.UUID, result: SendResult, config: BotConfig, *,
                  worker_id: str | None = None) -> OutboxMessage | None:
    """Apply a send's outcome to its row: sent, retry later with backoff, failed, or still unknown.

    With ``worker_id``, a worker that lost the row meanwhile (taken for dead) only reports a send
    that went out; any other outcome is left to the row's new holder, and None is returned.
    """
    row = get_locked(session, OutboxMessage, message_id)
    if row is None:
        raise LookupError(f"outbox row {message_id} vanished")
    now = clock_of(session).now()
    if worker_id is not None and row.leased_by != worker_id:
        if result.outcome == "sent" and OUTBOX_PROGRESS[row.status] < OUTBOX_PROGRESS[OutboxStatus.SENT.value]:
            row.status = OutboxStatus.SENT.value
            row.sent_at = row.sent_at or now
            row.provider_id = result.provider_id or row.provider_id
            row.lease_until = None
            row.leased_by = None
            return row
        return None
    row.lease_until = None
    row.leased_by = None
    if result.outcome == "sent":
        if row.status in (OutboxStatus.QUEUED.value, OutboxStatus.SENDING.value, OutboxStatus.UNCONFIRMED.value):
            row.status = OutboxStatus.SENT.value
        row.sent_at = row.sent_at or now
        row.provider_id = result.provider_id or row.provider_id
        row.last_error = None
    elif result.outcome == "failed" or (result.outcome == "retry" and row.attempts >= row.max_attempts):
        row.status = OutboxStatus.FAILED.value
        row.error_code = result.error_code
        row.last_error = (result.error or "failed")[:255]
    elif result.outcome == "retry":
        row.status = OutboxStatus.QUEUED.value
        row.sending_started_at = None
        row.error_code = result.error_code
        row.last_error = (result.error or "transient failure")[:255]
        row.next_attempt_at = now + timedelta(seconds=backoff_seconds(row.attempts, config, result.retry_after))
    elif result.outcome == "unconfirmed":  # an adapter's reconcile said so outside the dispatcher's policy
        row.status = OutboxStatus.UNCONFIRMED.value
        row.error_code = result.error_code or "unconfirmed"
        row.last_error = (result.error or "outcome unknown")[:255]
    else:  # unknown: keep "sending" with a fresh lease; a later claim reconciles it
        row.status = OutboxStatus.SENDING.value
        row.lease_until = now + timedelta(seconds=config.outbox_lease_seconds)
        row.error_code = result.error_code
        row.last_error = (result.error or "outcome unknown")[:255]
    return row


def backoff_seconds(attempts: int, config: BotConfig, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter, capped; a provider's Retry-After wins when longer."""
    base = min(config.retry_max_seconds, config.retry_base_seconds * (2 ** max(0, attempts - 1)))
    jittered = base * (0.75 + random.random() / 2)  # noqa: S311 - jitter, not security
    return float(max(jittered, retry_after or 0.0))


def advance_delivery(session: Session, provider_id: str, status: str, *, error_code: str | None = None,
                     at: datetime) -> OutboxMessage | None:
    """Apply a provider's delivery report; callbacks may arrive out of order, so state only moves forward."""
    row = session.scalars(select(OutboxMessage).where(OutboxMessage.provider_id == provider_id)).first()
    if row is None:
        return None
    target = {
        "queued": OutboxStatus.SENT.value, "accepted": OutboxStatus.SENT.value, "sending": OutboxStatus.SENT.value,
        "sent": OutboxStatus.SENT.value, "delivered": OutboxStatus.DELIVERED.value,
        "read": OutboxStatus.DELIVERED.value, "completed": OutboxStatus.DELIVERED.value,
        "undelivered": OutboxStatus.FAILED.value, "failed": OutboxStatus.FAILED.value,
    }.get(status)
    terminal = (OutboxStatus.DELIVERED.value, OutboxStatus.FAILED.value, OutboxStatus.CANCELLED.value)
    if target is None or row.status in terminal or OUTBOX_PROGRESS[target] <= OUTBOX_PROGRESS[row.status]:
        return row
    row.status = target
    row.lease_until = None
    if target == OutboxStatus.DELIVERED.value:
        row.delivered_at = at
    if target == OutboxStatus.FAILED.value:
        row.error_code = error_code
        row.last_error = f"provider reported {status}"
    return row


def cancel_pending(session: Session, *, patient_id: uuid.UUID, channel: str, reason: str) -> int:
    """Cancel messages still queued for a patient on a channel (after an opt-out), saying why in ``error_code``.

    Rows a worker has claimed already are stopped just before their send (:func:`mark_attempt_started`).
    """
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.patient_id == patient_id, OutboxMessage.channel == channel,
               OutboxMessage.status == OutboxStatus.QUEUED.value)
        .values(status=OutboxStatus.CANCELLED.value, error_code=reason, last_error=f"not sent: {reason}")
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# -- workers' heartbeats -------------------------------------------------------------------------------
HEARTBEATS_KEPT = timedelta(days=1)


def new_worker_id() -> str:
    """An id naming this process to operators: host, pid and a random part (a restarted pid is another worker)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def beat(session: Session, worker_id: str) -> None:
    """Write that ``worker_id`` is alive now (its claims stay its own); the first beat registers it."""
    now = clock_of(session).now()
    touched = session.execute(update(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id)
                              .values(heartbeat_at=now))
    if not touched.rowcount:  # type: ignore[attr-defined]
        session.add(WorkerHeartbeat(worker_id=worker_id, host=socket.gethostname()[:255], pid=os.getpid(),
                                    started_at=now, heartbeat_at=now))
        # Workers that died long ago are forgotten (their rows were released by then).
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.heartbeat_at < now - HEARTBEATS_KEPT))


def retire(session: Session, worker_id: str) -> None:
    """``worker_id`` stops: whatever it still holds and never attempted is claimable at once."""
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id))
