"""Exports staff ask for in the panel: what, with which filters, how far along, and where the file is."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from care.models.base import Base
from security.storage import UtcDateTime, Uuid


class ExportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    # The file is gone: downloaded, or kept past its hour.
    REMOVED = "removed"


class ExportJob(Base):
    """One export (.xlsx) being made in the background, and its file while it is kept.

    ``filters`` holds what staff chose (a tag, a plan key, a date range): never a patient's data.
    ``file_name`` is a random name inside the exports folder, private to its owner (0600).
    """

    __tablename__ = "export_jobs"

    kind: Mapped[str] = mapped_column(String(32))
    lang: Mapped[str] = mapped_column(String(8))
    filters: Mapped[dict[str, str]] = mapped_column(JSON)
    requested_by: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
