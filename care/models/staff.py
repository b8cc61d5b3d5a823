"""Staff accounts and roles."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from care.models.base import Base, Timestamped
from security.crypto import SYSTEM_OWNER
from security.fields import TEXT, encrypted
from security.roles import Permission, parse_permissions
from security.storage import UtcDateTime, Uuid


class Role(Base):
    """A staff role and its permissions (seeded from ``security.roles``; editable by a clinic)."""

    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(String(32), unique=True)
    title_zh: Mapped[str] = mapped_column(String(64))
    title_en: Mapped[str] = mapped_column(String(64))
    permission_names: Mapped[list[str]] = mapped_column(JSON, default=list)

    @property
    def permissions(self) -> frozenset[Permission]:
        return parse_permissions(self.permission_names)


class User(Timestamped, Base):
    """A staff member who signs in with a password and a TOTP code."""

    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(256))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    totp_secret = encrypted(TEXT)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    recovery_code_hashes: Mapped[list[str]] = mapped_column(JSON, default=list)
    role_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("roles.id"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    role: Mapped[Role] = relationship()

    def key_owner_id(self) -> uuid.UUID:
        return SYSTEM_OWNER

    def can(self, permission: Permission) -> bool:
        return self.is_active and permission in self.role.permissions


class StaffSession(Base):
    """A signed-in staff member's session, kept on the server so that it can be ended at once.

    The browser's cookie holds only a random id; this table keeps only its SHA-256 digest, so a copy
    of the database gives no one a session.
    """

    __tablename__ = "staff_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)

    user: Mapped[User] = relationship()
