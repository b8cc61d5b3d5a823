"""The unit of work of one HTTP request, for the blueprints that live above ``bot``.

The composition root (``careloop.app``) installs a session factory on the app; a view asks for
``request_session()``, and the app commits once after a successful response (status < 400) or
rolls back otherwise. Views never commit; only a refusal is audited in a unit of work of its own
(:func:`audit_refusal`), because the refused request's own transaction is rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import current_app, g
from sqlalchemy.orm import Session

from security.audit import Actor, log

SESSION_FACTORY_KEY = "careloop.session_factory"
SERVICES_KEY = "careloop.services"


def request_session() -> Session:
    """The session of the current request (made on first use)."""
    session: Session | None = g.get("careloop_session")
    if session is None:
        factory: Callable[[], Session] = current_app.extensions[SESSION_FACTORY_KEY]
        session = factory()
        g.careloop_session = session
    return session


def service(name: str) -> Any:
    """A named service the composition root registered (settings, blob store, channel clients...)."""
    return current_app.extensions[SERVICES_KEY][name]


def audit_refusal(*, actor: Actor, action: str, resource_type: str, resource_id: object = None,
                  details: Mapping[str, Any] | None = None) -> None:
    """Record a refused request in a unit of work of its own.

    A refusal answers 4xx, so the request's own transaction is rolled back; the record that
    someone was refused must survive that.
    """
    current: Session | None = g.get("careloop_session")
    if current is not None:
        current.rollback()  # the refused request changes nothing; end its transaction before ours
    factory: Callable[[], Session] = current_app.extensions[SESSION_FACTORY_KEY]
    session = factory()
    try:
        log(session, actor=actor, action=action, resource_type=resource_type, resource_id=resource_id,
            details=details)
        session.commit()
    finally:
        session.close()
