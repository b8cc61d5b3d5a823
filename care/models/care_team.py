"""Care teams: which staff members look after which patients (what each staff member sees)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from care.models.base import Base
from security.fields import TEXT, encrypted
from security.storage import UtcDateTime, Uuid


class CareTeam(Base):
    """A named group of staff members and the patients they look after (a team name is not PHI).

    ``name_key`` is the name case-folded: two teams cannot differ only in case.
    """

    __tablename__ = "care_teams"

    name: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CareTeamMember(Base):
    """A staff member of a care team."""

    __tablename__ = "care_team_members"
    __table_args__ = (UniqueConstraint("team_id", "user_id"),)

    team_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("care_teams.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CareTeamPatient(Base):
    """A patient a care team looks after (a patient may be in several teams)."""

    __tablename__ = "care_team_patients"
    __table_args__ = (UniqueConstraint("team_id", "patient_id"),)

    team_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("care_teams.id", ondelete="CASCADE"))
    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BreakGlassGrant(Base):
    """A staff member's opening of a patient outside their care teams (break-glass), with their written reason.

    Time-limited (``expires_at``); kept for review. The reason may name the patient's condition, so it
    is encrypted under the patient's key; the audit trail names the grant, not the reason.
    """

    __tablename__ = "break_glass_grants"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    reason = encrypted(TEXT, nullable=False)
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id
