"""Follow-up plans (自动随访): a plan's versions as the clinic published them, and who is enrolled in which.

A plan's definition is data (``care.plans``: YAML like flows), stored per version so that the
follow-ups it created can always name the version that timed them. An enrolment is one patient
in one plan from a moment on (by hand, by a tag, by an event) until they leave; its
``fire_version`` goes up whenever its rows are re-timed (a new plan version, a moved anchor, a
new time zone), and a follow-up row whose own ``fire_version`` is older is a no-op when it comes
due. Like ``followups.flow_id``, the plan id is in clear: it names the clinic's programme.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from care.models.base import Base
from security.storage import UtcDateTime, Uuid


class Plan(Base):
    """A plan the clinic added: its id, titles, latest version and the triggers of that version."""

    __tablename__ = "plans"

    key: Mapped[str] = mapped_column(String(64), unique=True)
    title_zh: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    enrol_on_tag: Mapped[str | None] = mapped_column(String(64), index=True)
    enrol_on_events: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PlanVersion(Base):
    """One published version of a plan: the checked definition (JSON) and the file it came from."""

    __tablename__ = "plan_versions"
    __table_args__ = (UniqueConstraint("plan_id", "version"),)

    plan_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("plans.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    source_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class EnrolmentStatus(StrEnum):
    ACTIVE = "active"
    LEFT = "left"


class PlanEnrolment(Base):
    """A patient in a plan: since when, why (``manual``, ``tag``, ``event:<name>``), and the version of its timing."""

    __tablename__ = "plan_enrolments"
    __table_args__ = (Index("ix_plan_enrolments_plan_status", "plan_key", "status"),
                      Index("ix_plan_enrolments_patient", "patient_id", "status"))

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"))
    plan_key: Mapped[str] = mapped_column(String(64))
    plan_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=EnrolmentStatus.ACTIVE.value)
    source: Mapped[str] = mapped_column(String(64))
    fire_version: Mapped[int] = mapped_column(Integer, default=1)
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
