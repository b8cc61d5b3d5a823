"""Interventions (健康干预/健康调养): the programs as the clinic published them, and who is enrolled in which.

A program's definition is data (``care.interventions``: YAML like plans), stored per version; it is
carried out by a follow-up plan made from it, so a patient's enrolment here goes with an enrolment
in that plan (``plan_enrolment_id``), whose follow-up rows are the check-ins and education messages.
An enrolment runs from its start for the program's duration (``ends_at``) and is then ended, by the
worker or by hand, with a stage summary drafted (``summary_id``). Like ``plans.key``, the program id
is in clear: it names the clinic's programme; why staff ended an enrolment is their words, encrypted.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from care.models.base import Base
from security.fields import TEXT, encrypted
from security.storage import UtcDateTime, Uuid


class InterventionProgram(Base):
    """A program the clinic added: its id, titles, latest version and the tag that starts it."""

    __tablename__ = "intervention_programs"

    key: Mapped[str] = mapped_column(String(64), unique=True)
    title_zh: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    duration_days: Mapped[int] = mapped_column(Integer)
    start_on_tag: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class InterventionProgramVersion(Base):
    """One published version of a program: the checked definition (JSON) and the file it came from."""

    __tablename__ = "intervention_program_versions"
    __table_args__ = (UniqueConstraint("program_id", "version"),)

    program_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("intervention_programs.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    source_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class InterventionStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class InterventionEnrolment(Base):
    """A patient in a program: since when, why (``manual``, ``tag``), until when, and how it ended.

    ``outcome`` is ``completed`` (the duration ran out) or ``ended`` (by hand, before that);
    ``ended_by`` names who ended it (an audit actor id), ``end_reason`` their words.
    """

    __tablename__ = "intervention_enrolments"
    __table_args__ = (Index("ix_intervention_enrolments_patient", "patient_id", "status"),
                      Index("ix_intervention_enrolments_due", "status", "ends_at"))

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"))
    program_key: Mapped[str] = mapped_column(String(64))
    program_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=InterventionStatus.ACTIVE.value)
    source: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))
    ended_by: Mapped[str | None] = mapped_column(String(64))
    end_reason = encrypted(TEXT)
    plan_enrolment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    summary_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id
