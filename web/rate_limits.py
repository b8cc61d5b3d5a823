"""Rate limits that run only for the blueprint they guard.

Flask-Limiter hooks itself into every request of the app (a before, an after and a teardown
hook per limiter), even when a request filter then exempts the request. The webhooks answer
hundreds of messages a second and are never limited here (each provider retries on refusal),
so the limiter's hooks are moved from the app to the guarded blueprint: a webhook request
never enters them, and a guarded request still meets the limit before any other hook of its
blueprint runs (the app's own before-request hooks write nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

HookTable = dict[str | None, list[Callable[..., Any]]]


def blueprint_limiter(app: Flask, blueprint: Blueprint) -> Limiter:
    """Return a per-address, in-memory limiter bound to ``app`` whose hooks run only for ``blueprint``.

    The blueprint must be registered on ``app`` already. Limits are then declared on the
    blueprint as usual (``limiter.shared_limit(...)(blueprint)``).
    """
    if blueprint.name not in app.blueprints:
        raise ValueError(f"blueprint {blueprint.name!r} is not registered on the app")
    tables: tuple[HookTable, ...] = (app.before_request_funcs, app.after_request_funcs,
                                     app.teardown_request_funcs)
    before = [list(table.get(None, [])) for table in tables]
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", default_limits=[],
                      headers_enabled=False)
    for table, known in zip(tables, before, strict=True):
        added = [hook for hook in table.get(None, []) if hook not in known]
        table[None] = known
        # First in the blueprint's own list: checked before the blueprint's other hooks.
        table.setdefault(blueprint.name, [])[:0] = added
    return limiter
