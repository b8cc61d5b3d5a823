"""Staff sessions: who is signed in and for how long, and the ``require`` guard on every view.

The session is Flask's signed cookie (HttpOnly, SameSite=Lax, Secure behind https: set by the app
factory). It holds the user's id, the sign-in time, the time of the last request and a
fingerprint of the password hash; nothing about patients. A session ends after 15 minutes
without a request, 8 hours after sign-in, when the account is deactivated or locked, and when
the password changes (the fingerprint no longer matches).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import abort, flash, g, jsonify, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from admin.i18n import LANGUAGE_KEY
from bot.context import audit_refusal, request_session, service
from care import staff
from care.models import User
from security.audit import Actor
from security.roles import Permission

IDLE_TIMEOUT = timedelta(minutes=15)
ABSOLUTE_LIFETIME = timedelta(hours=8)

USER_KEY = "uid"
SIGNED_IN_KEY = "signed_in"
SEEN_KEY = "seen"
FINGERPRINT_KEY = "pwf"

View = TypeVar("View", bound=Callable[..., ResponseReturnValue])


def now() -> datetime:
    """Return the current time from the app's clock (tests set it)."""
    moment: datetime = service("clock").now()
    return moment


def current_user() -> User | None:
    """Return the signed-in staff member of this request, if any."""
    user: User | None = g.get("staff_user")
    return user


def signed_in_user() -> User:
    """Return the signed-in staff member (only inside views guarded by :func:`require`)."""
    user = current_user()
    if user is None:
        abort(401)
    return user


def actor_of(user: User) -> Actor:
    """Return the audit actor for a staff member acting through this request."""
    return Actor("user", str(user.id), request.remote_addr)


def _fresh_session() -> None:
    # Nothing from before survives a sign-in or sign-out (no session fixation) except the language.
    language = session.get(LANGUAGE_KEY)
    session.clear()
    if language is not None:
        session[LANGUAGE_KEY] = language


def sign_in(user: User) -> None:
    """Start a new session for ``user``."""
    _fresh_session()
    stamp = now().timestamp()
    session[USER_KEY] = str(user.id)
    session[SIGNED_IN_KEY] = stamp
    session[SEEN_KEY] = stamp
    session[FINGERPRINT_KEY] = staff.password_fingerprint(user)
    g.staff_user = user


def refresh_fingerprint(user: User) -> None:
    """Keep this session after the user changed the password (other sessions end)."""
    session[FINGERPRINT_KEY] = staff.password_fingerprint(user)


def sign_out(reason: str) -> None:
    """End the session and audit why (``logout``, ``idle``, ``expired``, ``revoked``)."""
    raw = session.get(USER_KEY)
    if raw is not None:
        try:
            user_id = uuid.UUID(str(raw))
        except ValueError:
            user_id = None
        if user_id is not None:
            staff.record_sign_out(request_session(), user_id, reason=reason,
                                  actor=Actor("user", str(user_id), request.remote_addr))
    _fresh_session()
    g.staff_user = None


def load_signed_in_user() -> None:
    """Find the request's staff member, ending the session when it has run out or was revoked."""
    g.staff_user = None
    raw = session.get(USER_KEY)
    if raw is None:
        return
    moment = now().timestamp()
    try:
        user_id = uuid.UUID(str(raw))
        signed_in = float(session[SIGNED_IN_KEY])
        seen = float(session[SEEN_KEY])
    except (KeyError, TypeError, ValueError):
        sign_out("revoked")
        return
    if moment - signed_in > ABSOLUTE_LIFETIME.total_seconds():
        sign_out("expired")
        flash(_("You were signed out because you signed in more than 8 hours ago. Please sign in again."), "info")
        return
    if moment - seen > IDLE_TIMEOUT.total_seconds():
        sign_out("idle")
        flash(_("You were signed out after 15 minutes without activity. Please sign in again."), "info")
        return
    db = request_session()
    user = staff.find_user(db, user_id)
    if (user is None or not user.is_active or staff.is_locked(db, user)
            or session.get(FINGERPRINT_KEY) != staff.password_fingerprint(user)):
        sign_out("revoked")
        return
    session[SEEN_KEY] = moment
    g.staff_user = user


def wants_json() -> bool:
    """Tell whether the caller is a script that expects JSON (the simulator), not a browser page."""
    return request.is_json or request.accept_mimetypes.best == "application/json"


def safe_next(target: str | None) -> str | None:
    """Return ``target`` if it is a path inside the panel, else None (no open redirect)."""
    if not target or len(target) > 1000:
        return None
    if not target.isprintable() or "\\" in target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    if parts.path != "/admin" and not parts.path.startswith("/admin/"):
        return None
    # Dot segments (also percent-encoded, which browsers resolve too) could climb out of /admin.
    if any(segment in (".", "..") for segment in parts.path.lower().replace("%2e", ".").split("/")):
        return None
    if parts.path.startswith(("/admin/logout", "/admin/static/")):
        return None
    return target


def here() -> str:
    """Return the current page as a ``next`` value (path and query)."""
    return request.full_path.rstrip("?") if request.query_string else request.path


def landing_url(user: User) -> str:
    """Return the first page a staff member sees: the work queue, else the simulator, else the account page."""
    if user.must_change_password:
        return url_for("admin.password")
    if user.can(Permission.WORKLIST_WORK):
        return url_for("admin.dashboard")
    if user.can(Permission.FLOWS_MANAGE):
        return url_for("admin.simulator")
    return url_for("admin.account")


def require(permission: Permission | None = None, *, during_password_change: bool = False) -> Callable[[View], View]:
    """Guard a view: signed in, password already changed, and holding ``permission`` (if given).

    Signed out: a redirect to the login page (with a safe ``next``), or 401 JSON for scripts.
    Lacking the permission: the 403 page, or 403 JSON.
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            user = current_user()
            if user is None:
                if wants_json():
                    return jsonify(error="signed_out", reason=_("Please sign in again.")), 401
                target = here() if request.method == "GET" else None
                return redirect(url_for("admin.login", next=safe_next(target)))
            if user.must_change_password and not during_password_change:
                if wants_json():
                    return jsonify(error="password_change", reason=_("Please change your password first.")), 403
                return redirect(url_for("admin.password"))
            if permission is not None and not user.can(permission):
                audit_refusal(actor=actor_of(user), action="access.denied", resource_type="admin_page",
                              details={"permission": permission.value, "path": request.path[:200]})
                if wants_json():
                    return jsonify(error="forbidden", reason=_("Your role does not allow this.")), 403
                abort(403)
            return view(*args, **kwargs)

        return cast(View, guarded)

    return decorate
