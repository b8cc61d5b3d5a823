"""Reads inside a unit of work that flush only the changes they depend on.

SQLAlchemy flushes every pending change before each query (autoflush). In the middle of a turn
that costs a round trip for rows the read does not concern (the message just logged, say), and
the same table is then written twice in one turn instead of once at commit. A read of one kind
of record asks for the flush only when changes to that kind are pending, so what it returns is
the same either way.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from itertools import chain
from typing import Any

from sqlalchemy.orm import Session


def has_pending(session: Session, *models: type[Any]) -> bool:
    """Whether this unit of work holds unflushed additions, changes or deletions of ``models``."""
    return any(isinstance(instance, models) for instance in chain(session.new, session.dirty, session.deleted))


def flushing_only_for(session: Session, *models: type[Any]) -> AbstractContextManager[Any]:
    """A block whose queries (lazy loads too) flush first only when ``models`` have pending changes."""
    return nullcontext() if has_pending(session, *models) else session.no_autoflush
