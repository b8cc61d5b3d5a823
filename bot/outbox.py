"""The outbox: every outbound message is a row, written with the state change that caused it.

Sending happens after commit (the dispatcher). A row moves forward only:
``queued -> sending -> sent -> delivered`` (or ``failed``/``cancelled``). A row in ``sending``
whose lease ran out belongs to a worker that died mid-send: it is reconciled with the provider,
never blindly sent again.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot.channels.base import OutgoingMessage, SendResult
from bot.config import BotConfig
from bot.models import OUTBOX_PROGRESS, OutboxMessage, OutboxStatus
from care.models import Patient
from security.fields import clock_of


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
) -> OutboxMessage:
    """Queue one message (same transaction as its cause); a repeated key returns the existing row."""
    existing = session.scalars(select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key)).first()
    if existing is not None:
        return existing
    now = clock_of(session).now()
    message = OutboxMessage(
        idempotency_key=idempotency_key, patient_id=patient.id if patient else None, channel=channel, kind=kind,
        purpose=purpose, address=address, payload=payload, status=OutboxStatus.QUEUED.value, attempts=0,
        max_attempts=max_attempts, next_attempt_at=not_before or now, session_id=session_id,
        followup_id=followup_id, created_at=now,
    )
    session.add(message)
    return message


def _claimable(now: datetime) -> Any:
    return or_(
        (OutboxMessage.status == OutboxStatus.QUEUED.value) & (OutboxMessage.next_attempt_at <= now),
        (OutboxMessage.status == OutboxStatus.SENDING.value) & (OutboxMessage.lease_until < now),
    )


def claim(session: Session, *, worker_id: str, limit: int, lease_seconds: float,
          channels: list[str] | None = None) -> list[OutgoingMessage]:
    """Lease up to ``limit`` due rows to this worker and return their decrypted snapshots.

    On PostgreSQL the rows are locked with SKIP LOCKED so concurrent workers take different rows;
    SQLite runs one worker. The caller commits the claim before sending anything.
    """
    now = clock_of(session).now()
    query = select(OutboxMessage).where(_claimable(now)).order_by(OutboxMessage.next_attempt_at).limit(limit)
    if channels is not None:
        query = query.where(OutboxMessage.channel.in_(channels))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claimed = []
    for row in session.scalars(query):
        if row.status == OutboxStatus.QUEUED.value:
            row.sending_started_at = None
        row.status = OutboxStatus.SENDING.value
        row.lease_until = now + timedelta(seconds=lease_seconds)
        row.leased_by = worker_id
        patient = session.get(Patient, row.patient_id) if row.patient_id else None
        claimed.append(
            OutgoingMessage(
                id=row.id, idempotency_key=row.idempotency_key, channel=row.channel, kind=row.kind,
                purpose=row.purpose, address=row.address or "", payload=dict(row.payload or {}),
                attempts=row.attempts, sending_started_at=row.sending_started_at, patient_id=row.patient_id,
                lang=patient.language if patient else "zh",
            )
        )
    return claimed


def mark_attempt_started(session: Session, message_id: uuid.UUID, worker_id: str) -> bool:
    """Record that the provider call is about to start (so a crash after it is reconciled, not resent).

    Returns False if the lease was lost to another worker meanwhile.
    """
    now = clock_of(session).now()
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.leased_by == worker_id,
               OutboxMessage.status == OutboxStatus.SENDING.value)
        .values(sending_started_at=now, attempts=OutboxMessage.attempts + 1)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_result(session: Session, message_id: uuid.UUID, result: SendResult, config: BotConfig) -> OutboxMessage:
    """Apply a send's outcome to its row: sent, retry later with backoff, failed, or still unknown."""
    row = session.get(OutboxMessage, message_id, with_for_update=session.get_bind().dialect.name == "postgresql")
    if row is None:
        raise LookupError(f"outbox row {message_id} vanished")
    now = clock_of(session).now()
    row.lease_until = None
    row.leased_by = None
    if result.outcome == "sent":
        if OUTBOX_PROGRESS[row.status] < OUTBOX_PROGRESS[OutboxStatus.SENT.value]:
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
    else:  # unknown: keep "sending" with a fresh lease; the next claim reconciles it
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


def cancel_pending(session: Session, *, patient_id: uuid.UUID, channel: str) -> int:
    """Cancel messages still queued for a patient on a channel (after an opt-out)."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.patient_id == patient_id, OutboxMessage.channel == channel,
               OutboxMessage.status == OutboxStatus.QUEUED.value)
        .values(status=OutboxStatus.CANCELLED.value, last_error="channel opted out")
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
