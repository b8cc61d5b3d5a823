"""Which master key a database belongs to: the key id recorded when the key was first made.

The record holds the ring's :attr:`~security.keys.KeyRing.key_id` (derived from the root secret,
one-way, stable across rotations), never key material. An entry point compares it with the key it
was given before touching data, so a wrong or missing key is named as such at once, instead of
surfacing later as an undecryptable field or an audit entry whose MAC "was altered".

Databases made before the record existed have none; :func:`fits_data` then tells whether a key
opens what is already stored (a wrapped data key, an audit entry's MAC).
"""

from __future__ import annotations

import hmac
from datetime import datetime

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from security.audit import AuditEntry, AuditKeys
from security.crypto import DataKey, DecryptionError, FieldCipher, SecurityBase
from security.keys import KeyRing, KeyRingError
from security.storage import UtcDateTime

RECORD_ID = 1


class KeyRingIdentity(SecurityBase):
    """The one row naming the database's master key ring (id 1)."""

    __tablename__ = "key_ring_identity"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


def recorded_key_id(session: Session) -> str | None:
    """Return the key id the database records, or None when it records none yet."""
    return session.scalar(select(KeyRingIdentity.key_id).where(KeyRingIdentity.id == RECORD_ID))


def record_key_id(session: Session, key_ring: KeyRing, *, now: datetime) -> bool:
    """Record ``key_ring``'s id if the database records none yet; return True when it wrote the record.

    :raises KeyRingError: the database already records another key id (nothing is changed).
    """
    current = session.get(KeyRingIdentity, RECORD_ID)
    if current is not None:
        if current.key_id != key_ring.key_id:
            raise KeyRingError(f"the database records key id {current.key_id}, not {key_ring.key_id}")
        return False
    session.add(KeyRingIdentity(id=RECORD_ID, key_id=key_ring.key_id, recorded_at=now))
    session.flush()
    return True


def fits_data(session: Session, key_ring: KeyRing) -> bool | None:
    """Tell whether ``key_ring`` opens what the database already holds; None when it holds nothing to try.

    It tries one wrapped data key (the master keys); a database without any tries its first audit
    entry's MAC (the keys derived from the root).
    """
    stored = session.execute(select(DataKey.owner_id, DataKey.kek_version, DataKey.wrapped).limit(1)).first()
    if stored is not None:
        try:
            FieldCipher(key_ring, cache_size=1).data_key_read(stored.owner_id, stored.kek_version, stored.wrapped)
        except (DecryptionError, KeyRingError):
            return False
        return True
    entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id).limit(1)).first()
    if entry is None:
        return None
    return hmac.compare_digest(entry.mac, AuditKeys(key_ring).entry_mac(entry))
