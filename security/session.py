"""What a database session carries for the security layer: the cipher, the audit keys, the clock.

Entry points (web request, CLI command, worker tick) make sessions from a factory configured
here once; services then find what they need on the session they are given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

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
    event.listen(factory, "before_commit", _run_before_commit)
    event.listen(factory, "after_soft_rollback", _forget_before_commit)


_BEFORE_COMMIT = "careloop.before_commit"
_STATE = "careloop.unit_of_work_state"


def unit_of_work_state(session: Session) -> dict[object, Any]:
    """A dict that lives as long as ``session``'s current transaction: emptied at commit and at rollback."""
    state: dict[object, Any] = session.info.setdefault(_STATE, {})
    return state


def before_commit(session: Session, key: object, callback: Callable[[], None]) -> None:
    """Run ``callback`` once when ``session``'s transaction commits, before its last flush (one per ``key``).

    What a unit of work collects to write in one go (a turn's rows) is written then if its owner
    has not written it already; a rollback forgets the callback.
    """
    session.info.setdefault(_BEFORE_COMMIT, {})[key] = callback


def cancel_before_commit(session: Session, key: object) -> None:
    """Forget the callback registered under ``key`` (its work was done)."""
    session.info.get(_BEFORE_COMMIT, {}).pop(key, None)


def _run_before_commit(session: Session) -> None:
    callbacks: dict[object, Callable[[], None]] = session.info.pop(_BEFORE_COMMIT, {})
    for callback in callbacks.values():
        callback()
    session.info.pop(_STATE, None)


def _forget_before_commit(session: Session, previous: SessionTransaction | None = None) -> None:
    # A savepoint rolled back inside the unit of work leaves the rest of it (and its pending work) standing.
    if previous is None or not previous.nested:
        session.info.pop(_BEFORE_COMMIT, None)
        session.info.pop(_STATE, None)


def audit_keys_of(session: Session) -> AuditKeys:
    keys = session.info.get("audit_keys")
    if not isinstance(keys, AuditKeys):
        raise SessionNotConfiguredError("this session carries no audit keys")
    return keys
