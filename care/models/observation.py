"""Observations: one measured or reported value (a checkup result, a home reading, a score)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from care.models.base import Base
from care.models.patient import Patient
from security.fields import FLOAT, TEXT, encrypted
from security.storage import UtcDateTime, Uuid


class Observation(Base):
    """A value with its LOINC code, canonical unit, effective time and source. The value is encrypted.

    ``recognised`` is False for a result kept as it came: a code outside the indicator table
    (:mod:`care.indicator_table`), or a value the indicator does not take (``>90``). Such a row keeps
    the sender's code, ``code_system``, ``display`` text, value (``value`` or ``value_text``) and
    unit; it is shown in the record and exported, and never read by rules, trends or risk models
    (:func:`care.observations.observations_of` and :func:`care.observations.latest_values` leave it out).
    """

    __tablename__ = "observations"
    __table_args__ = (Index("ix_observations_patient_code_time", "patient_id", "code", "effective_at"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    value = encrypted(FLOAT)
    value_text = encrypted(TEXT)
    unit: Mapped[str] = mapped_column(String(32))
    code_system: Mapped[str | None] = mapped_column(String(255))
    display = encrypted(TEXT)
    # No Python-side default: bulk inserts of recognised results leave the column out (the server
    # default fills it), so the import's hot INSERT binds no more parameters than it must.
    recognised: Mapped[bool] = mapped_column(Boolean, server_default=true())
    effective_at: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(80))  # "flow:<flow id>", "report:csv", ... (0007_natfollow)
    source_ref: Mapped[str | None] = mapped_column(String(128), index=True)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)

    patient: Mapped[Patient] = relationship()

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id if self.patient_id is not None else self.patient.id
