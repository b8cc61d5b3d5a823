"""Conversation state, the outbox, inbound receipts, identity binding and provider credentials."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from care.models import Base
from security.crypto import SYSTEM_OWNER
from security.fields import JSON, TEXT, encrypted
from security.storage import UtcDateTime, Uuid


class SessionStatus(StrEnum):
    INVITED = "invited"  # the clinic asked; the flow starts when the patient replies
    WAITING = "waiting"  # waiting for the patient's next answer
    ENDED = "ended"


class ConversationSession(Base):
    """One run of a flow with one patient, pinned to the flow version it started with.

    ``active_patient_id`` equals ``patient_id`` while the session is not ended and is NULL after:
    its unique constraint keeps one open conversation per patient on every engine.
    """

    __tablename__ = "conversation_sessions"
    __table_args__ = (Index("ix_conversation_sessions_timer", "status", "next_timer_at"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    active_patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, unique=True)
    flow_id: Mapped[str] = mapped_column(String(64))
    flow_version: Mapped[int] = mapped_column(Integer)
    lang: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    state = encrypted(JSON)
    # What the flow knew of the patient when it started (age, tags, latest readings, profile): read
    # once per conversation, not on every answer; the engine tracks changes the flow itself makes.
    facts = encrypted(JSON)
    next_timer_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_status: Mapped[str | None] = mapped_column(String(16))
    followup_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    call_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class ConversationMessage(Base):
    """The conversation log: what the patient said and what we said, per channel (text encrypted)."""

    __tablename__ = "conversation_messages"
    __table_args__ = (Index("ix_conversation_messages_patient_time", "patient_id", "created_at"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"))
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    channel: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(4))
    text = encrypted(TEXT)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id


class InboundReceipt(Base):
    """One provider delivery, keyed by its id: the claim that makes repeated deliveries idempotent.

    ``reply`` keeps the answer given the first time, so a repeat is answered identically.
    """

    __tablename__ = "inbound_receipts"
    __table_args__ = (UniqueConstraint("channel", "provider_key"),)

    channel: Mapped[str] = mapped_column(String(16))
    provider_key: Mapped[str] = mapped_column(String(160))
    patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    reply = encrypted(JSON)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id or SYSTEM_OWNER


class OutboxStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"      # claimed; the provider call may be under way (never blindly resent)
    SENT = "sent"            # the provider accepted it
    DELIVERED = "delivered"
    UNCONFIRMED = "unconfirmed"  # it may or may not have reached the patient; the provider cannot tell us
    FAILED = "failed"        # the provider said no (or retries ran out): nothing reached the patient
    CANCELLED = "cancelled"  # no longer wanted (opted out, conversation over)


# An unconfirmed row stands beside ``sent``: a later delivery report may still move it to delivered.
OUTBOX_PROGRESS = {"queued": 0, "sending": 1, "sent": 2, "unconfirmed": 2, "delivered": 3, "failed": 3,
                   "cancelled": 3}


class OutboxMessage(Base):
    """A message or call to send, written in the transaction that decided it; sent after commit."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"),
                                                         index=True)
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(32))
    address = encrypted(TEXT, nullable=False)
    payload = encrypted(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=6)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    leased_by: Mapped[str | None] = mapped_column(String(64))
    # The "attempt started" mark: set (committed) just before the provider call, cleared when a row is queued again.
    sending_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Sends repeated because an earlier attempt's outcome could not be known (at most one: see bot.outbox.queue).
    resends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    error_code: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(String(255))
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    followup_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id or SYSTEM_OWNER


class WorkerHeartbeat(Base):
    """A running worker process, as its heartbeat shows: the rows it claimed are its own while it beats.

    A worker whose heartbeat is older than ``BotConfig.worker_dead_after_seconds`` (or that has no
    row) is dead: the outbox rows it claimed and never attempted are claimable again at once.
    """

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(64), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BindingCode(Base):
    """A WeChat user binding by card number: the code sent by SMS to the phone on file.

    A card number that names no one we may text (unknown, inactive, no phone, SMS opted out) gets a
    row too, with no patient and a code nobody was sent, so the conversation goes on exactly as for a
    real card. ``card_index`` (a blind index of the card number asked for) counts a card's attempts.
    """

    __tablename__ = "binding_codes"

    patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"),
                                                         index=True)
    card_index: Mapped[bytes | None] = mapped_column(LargeBinary(32), index=True)
    openid = encrypted(TEXT, index="binding_openid", nullable=False)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id or SYSTEM_OWNER


class BindingToken(Base):
    """A one-time token behind a patient's own parametrised QR code (the scene key of subscribe/SCAN)."""

    __tablename__ = "binding_tokens"

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    qr_ticket = encrypted(TEXT)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id


class ProviderCredential(Base):
    """A short-lived provider credential shared by every process (the WeChat access_token)."""

    __tablename__ = "provider_credentials"

    name: Mapped[str] = mapped_column(String(64), unique=True)
    value = encrypted(TEXT)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    refreshing_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def key_owner_id(self) -> uuid.UUID:
        return SYSTEM_OWNER


class UnknownSender(Base):
    """An address we answered once with "not registered" (kept as a blind index only)."""

    __tablename__ = "unknown_senders"
    __table_args__ = (UniqueConstraint("channel", "address_index"),)

    channel: Mapped[str] = mapped_column(String(16))
    address_index: Mapped[bytes] = mapped_column(LargeBinary(32))
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WeChatNonce(Base):
    """A (timestamp, nonce) pair of a plain-mode WeChat request already accepted, with a keyed digest of
    its body: the same pair with another body is a replayed signature. Kept only while the timestamp
    is inside the replay window (``stamp`` is WeChat's, in seconds)."""

    __tablename__ = "wechat_nonces"
    __table_args__ = (UniqueConstraint("stamp", "nonce"),)

    stamp: Mapped[int] = mapped_column(BigInteger, index=True)
    nonce: Mapped[str] = mapped_column(String(64))
    body_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
