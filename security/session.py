"""What a database session carries for the security layer: the cipher, the audit keys, the clock.

Entry points (web request, CLI command, worker tick) make sessions from a factory configured
here once; services then find what they need on the session they are given.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from security import audit
from security.audit import AuditKeys
from security.clock import Clock, SystemClock
from security.crypto import FieldCipher
from security.fields import seal_pending_fields


class SessionNotConfiguredError(RuntimeError):
    """A session without the security context was used where one is needed."""


def _context(cipher: FieldCipher, audit_keys: AuditKeys, clock: Clock | None) -> dict[str, Any]:
    return {"cipher": cipher, "audit_keys": audit_keys, "clock": clock or SystemClock()}


def configure_factory(
    factory: sessionmaker[Session], *, cipher: FieldCipher, audit_keys: AuditKeys, clock: Clock | None = None
) -> None:
    """Make every session from ``factory`` carry the security context and seal fields at flush."""
    factory.kw["info"] = {**factory.kw.get("info", {}), **_context(cipher, audit_keys, clock)}
    # Registered unconditionally: event.contains() can be fooled by a recycled id() of a dead factory.
    event.listen(factory, "before_flush", seal_pending_fields)
    event.listen(factory, "after_commit", audit.after_commit)
    event.listen(factory, "after_soft_rollback", audit.after_rollback)


def audit_keys_of(session: Session) -> AuditKeys:
    keys = session.info.get("audit_keys")
    if not isinstance(keys, AuditKeys):
        raise SessionNotConfiguredError("this session carries no audit keys")
    return keys
