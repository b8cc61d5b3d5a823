"""The patient, their membership card, channel consents and health profile."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Date, ForeignKey, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from care.identifiers import (
    normalize_card_no,
    normalize_id_number,
    normalize_name,
    normalize_openid,
    normalize_phone,
)
from care.models.base import Base, Timestamped
from security.fields import DATE, JSON, TEXT, encrypted
from security.storage import UtcDateTime, Uuid


class PatientStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    DECEASED = "deceased"
    ERASED = "erased"


class Channel(StrEnum):
    WECHAT = "wechat"
    SMS = "sms"
    VOICE = "voice"
    CONSOLE = "console"


class Patient(Timestamped, Base):
    """One person in the clinic's care. Every identifying field is encrypted under their own key."""

    __tablename__ = "patients"

    card_no = encrypted(TEXT, index="card_no", normalize=normalize_card_no, unique=True, nullable=False)
    # Indexed so that the panel finds a patient by the whole name (0009_name_index); like every blind
    # index it shows which rows share a value, never the value.
    name = encrypted(TEXT, index="name", normalize=normalize_name, nullable=False)
    gender = encrypted(TEXT, nullable=False)
    birth_date = encrypted(DATE, nullable=False)
    id_number = encrypted(TEXT, index="id_number", normalize=normalize_id_number, unique=True)
    phone = encrypted(TEXT, index="phone", normalize=normalize_phone)
    wechat_openid = encrypted(TEXT, index="wechat_openid", normalize=normalize_openid, unique=True)
    language: Mapped[str] = mapped_column(String(8), default="zh")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    status: Mapped[str] = mapped_column(String(16), default=PatientStatus.ACTIVE.value, index=True)
    # A test patient is nobody: the simulator speaks as one (``care.test_patients``). It is reached on
    # the console channel only and left out of the clinic's exports and counts. ``test_owner_id`` is
    # the staff member whose simulator made it (who alone sees it besides those who see everyone).
    is_test: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # No foreign key: SQLite could add one only by rebuilding the patients table, and staff accounts
    # are never deleted (only disabled).
    test_owner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)

    cards: Mapped[list[Card]] = relationship(back_populates="patient", cascade="all, delete-orphan")
    consents: Mapped[list[ChannelConsent]] = relationship(back_populates="patient", cascade="all, delete-orphan")
    profile: Mapped[HealthProfile | None] = relationship(back_populates="patient", cascade="all, delete-orphan")

    def key_owner_id(self) -> uuid.UUID:
        return self.id

    def age_on(self, day: date) -> int | None:
        born = self.birth_date
        if born is None:
            return None
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))

    def consent_for(self, channel: Channel | str) -> ChannelConsent | None:
        for consent in self.consents:
            if consent.channel == str(channel):
                return consent
        return None


class CardStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Card(Timestamped, Base):
    """A membership (开卡): the package the patient bought, when it was issued and when it ends."""

    __tablename__ = "cards"

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    package = encrypted(TEXT)
    issued_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=CardStatus.ACTIVE.value)

    patient: Mapped[Patient] = relationship(back_populates="cards")

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id if self.patient_id is not None else self.patient.id


class ChannelConsent(Timestamped, Base):
    """Per channel: may we contact the patient, have they opted out; and whether calls may be recorded.

    ``recording_consent`` is only a cache of the consent ledger's latest ``call_recording`` decision
    (:class:`care.models.consent.ConsentEntry`), written by :func:`care.consents.record_consent` in the
    same transaction; nothing else writes it, and what decides is the ledger.
    """

    __tablename__ = "channel_consents"
    __table_args__ = (UniqueConstraint("patient_id", "channel"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    consented: Mapped[bool] = mapped_column(Boolean, default=False)
    consented_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    recording_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    patient: Mapped[Patient] = relationship(back_populates="consents")

    @property
    def usable(self) -> bool:
        return self.consented and not self.opted_out


PROFILE_SECTIONS = ("history", "family_history", "allergies", "medications", "lifestyle")


class HealthProfile(Timestamped, Base):
    """What the patient told us: history, family history, allergies, medications, lifestyle.

    Each section is an encrypted JSON object of named facts (``lifestyle.smoking = "current"``).
    """

    __tablename__ = "health_profiles"

    patient_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("patients.id", ondelete="CASCADE"), unique=True
    )
    history = encrypted(JSON)
    family_history = encrypted(JSON)
    allergies = encrypted(JSON)
    medications = encrypted(JSON)
    lifestyle = encrypted(JSON)

    patient: Mapped[Patient] = relationship(back_populates="profile")

    def key_owner_id(self) -> uuid.UUID:
        return self.patient_id if self.patient_id is not None else self.patient.id
