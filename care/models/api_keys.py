"""API keys of the systems that push reports (a checkup centre's LIS, a partner clinic)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from care.models.base import Base
from security.storage import UtcDateTime


class SourceApiKey(Base):
    """One key of one source. Only an HMAC of the key is stored; the key itself is shown once.

    ``key_id`` is the key's public prefix (``clk_<key_id>_...``), for listing and revoking.
    """

    __tablename__ = "source_api_keys"

    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    source_name: Mapped[str] = mapped_column(String(64), index=True)
    key_mac: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    @property
    def active(self) -> bool:
        return self.revoked_at is None
