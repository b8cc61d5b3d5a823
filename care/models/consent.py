"""The consent ledger: every decision a patient (or staff on their behalf) made about a consent, in order.

The ledger is only ever appended to: a row is never changed or removed (the ORM refuses to; the
patient's rows go only with the patient). What stands now is the latest row of a stream (one
patient, one channel, one purpose), by ``seq``, which counts the stream's rows from 1 (two rows
written at the same clock instant, a grant and a withdrawal in one call, keep their order).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from care.models.base import Base
from security.storage import UtcDateTime, Uuid


class ConsentPurpose(StrEnum):
    CALL_RECORDING = "call_recording"  # may the clinic record the patient's calls
    MESSAGES = "messages"              # may the clinic contact the patient on the channel


class ConsentSource(StrEnum):
    VOICE_KEYPAD = "voice_keypad"    # a key pressed on a call
    VOICE_SPEECH = "voice_speech"    # words said on a call
    STAFF = "staff"                  # staff wrote down what the patient told them
    IMPORT = "import"                # taken over from another system


class AppendOnlyError(RuntimeError):
    """A ledger row was about to be changed or deleted."""


class ConsentEntry(Base):
    """One decision: granted or withdrawn, under which wording, when, told how, on which call or message."""

    __tablename__ = "consent_ledger"
    __table_args__ = (UniqueConstraint("patient_id", "channel", "purpose", "seq"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)
    granted: Mapped[bool] = mapped_column(Boolean)
    wording_version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    source_ref: Mapped[str | None] = mapped_column(String(64))  # the CallSid or message id it was given on
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


@event.listens_for(ConsentEntry, "before_update")
def _never_changed(_mapper: Any, _connection: Any, entry: ConsentEntry) -> None:
    raise AppendOnlyError(f"consent ledger row {entry.id} cannot be changed; append a new decision")


@event.listens_for(ConsentEntry, "before_delete")
def _never_deleted(_mapper: Any, _connection: Any, entry: ConsentEntry) -> None:
    raise AppendOnlyError(f"consent ledger row {entry.id} cannot be deleted")
