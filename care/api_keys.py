"""API keys of the systems that push reports to ``POST /api/v1/reports``, one source per key.

A key reads ``clk_<key id>_<secret>``; it is shown once when made. Only its HMAC-SHA-256 under a
key derived from the root secret (purpose ``source-api-key``, stable across master-key rotations)
is stored, so a copy of the database cannot be used to push reports. The key id is public: it
names the key in listings, in the audit trail and when revoking.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from care.errors import ConflictError, NotFoundError, Problem, ValidationFailedError
from care.models import SourceApiKey
from security.audit import Actor, log
from security.fields import cipher_of, clock_of

KEY_PREFIX = "clk"
KEY_PURPOSE = "source-api-key"
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_PRESENTED = 256


class KeyCheck(StrEnum):
    VALID = "valid"
    UNKNOWN = "unknown"
    REVOKED = "revoked"


@dataclass(frozen=True)
class NewApiKey:
    """A key just made: the row, and the key itself (shown once, never stored)."""

    record: SourceApiKey
    key: str


@dataclass(frozen=True)
class Authentication:
    """The outcome of checking a presented key."""

    check: KeyCheck
    record: SourceApiKey | None = None

    @property
    def valid(self) -> bool:
        return self.check is KeyCheck.VALID


def _mac(session: Session, key: str) -> bytes:
    secret = cipher_of(session).key_ring.purpose_key(KEY_PURPOSE)
    return hmac.new(secret, key.encode(), hashlib.sha256).digest()


def create_api_key(session: Session, source_name: str, *, actor: Actor) -> NewApiKey:
    """Make a key for ``source_name`` (letters, digits, ``.-_``; at most 64).

    Raises:
        ValidationFailedError: the source name is not acceptable.
    """
    if not SOURCE_NAME.match(source_name):
        raise ValidationFailedError(
            [Problem("source", "must be 1-64 letters, digits, '.', '-' or '_', starting with a letter or digit")]
        )
    key_id = secrets.token_hex(4)
    while session.scalar(select(SourceApiKey.id).where(SourceApiKey.key_id == key_id)) is not None:
        key_id = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    record = SourceApiKey(
        key_id=key_id, source_name=source_name, key_mac=_mac(session, key), created_by=actor.id[:64],
        created_at=clock_of(session).now(),
    )
    session.add(record)
    log(session, actor=actor, action="api_key.create", resource_type="api_key", resource_id=key_id,
        details={"source": source_name})
    return NewApiKey(record, key)


def list_api_keys(session: Session) -> list[SourceApiKey]:
    """Return every key, by source then age."""
    return list(session.scalars(select(SourceApiKey).order_by(SourceApiKey.source_name, SourceApiKey.created_at)))


def revoke_api_key(session: Session, key_id: str, *, actor: Actor) -> SourceApiKey:
    """Revoke a key by its id; pushes with it get 403 from now on.

    Raises:
        NotFoundError: no key has this id.
        ConflictError: the key was already revoked.
    """
    record = session.scalars(select(SourceApiKey).where(SourceApiKey.key_id == key_id.strip().lower())).one_or_none()
    if record is None:
        raise NotFoundError(f"no API key with id {key_id!r}")
    if record.revoked_at is not None:
        raise ConflictError(f"API key {record.key_id} was already revoked")
    record.revoked_at = clock_of(session).now()
    log(session, actor=actor, action="api_key.revoke", resource_type="api_key", resource_id=record.key_id,
        details={"source": record.source_name})
    return record


def authenticate(session: Session, presented: str) -> Authentication:
    """Check a presented key; a valid one has its ``last_used_at`` set (in the caller's transaction)."""
    if not presented or len(presented) > MAX_PRESENTED or not presented.startswith(f"{KEY_PREFIX}_"):
        return Authentication(KeyCheck.UNKNOWN)
    record = session.scalars(select(SourceApiKey).where(SourceApiKey.key_mac == _mac(session, presented))).one_or_none()
    if record is None:
        return Authentication(KeyCheck.UNKNOWN)
    if record.revoked_at is not None:
        return Authentication(KeyCheck.REVOKED, record)
    record.last_used_at = clock_of(session).now()
    return Authentication(KeyCheck.VALID, record)
