"""The unit of work of one HTTP request, for the blueprints that live above ``bot``.

The composition root (``careloop.app``) installs a session factory on the app; a view asks for
``request_session()``, and the app commits once after a successful response (status < 400) or
rolls back otherwise. Views never commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, g
from sqlalchemy.orm import Session

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
