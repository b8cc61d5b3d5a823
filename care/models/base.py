"""The declarative base of the record's models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from security.storage import UtcDateTime, Uuid, metadata


class Base(DeclarativeBase):
    """Every record row has a UUID id, assigned at construction so that encrypted fields can bind to it."""

    metadata = metadata

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)

    def __init__(self, **values: Any) -> None:
        self.id = values.pop("id", None) or uuid.uuid4()
        for name, value in values.items():
            if not hasattr(type(self), name):
                raise TypeError(f"{type(self).__name__} has no attribute {name!r}")
            setattr(self, name, value)


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
