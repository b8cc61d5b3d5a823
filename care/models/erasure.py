"""Legal holds that block an erasure, and the record of each erasure (kept outside the patient's rows)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from care.models.base import Base
from security.storage import UtcDateTime, Uuid


class LegalHold(Base):
    """A patient's record must be kept (litigation, an inquiry): while it is held it cannot be erased."""

    __tablename__ = "legal_holds"

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"), unique=True)
    reason: Mapped[str] = mapped_column(String(500))
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    placed_by: Mapped[str] = mapped_column(String(200))


class Erasure(Base):
    """One patient erased: who, when and why. No foreign key: the record outlives what it erased."""

    __tablename__ = "erasures"

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    reason: Mapped[str] = mapped_column(String(500))
    erased_at: Mapped[datetime] = mapped_column(UtcDateTime)
    erased_by: Mapped[str] = mapped_column(String(200))
