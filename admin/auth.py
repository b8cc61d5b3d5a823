"""Staff sessions: who is signed in and for how long, and the ``require`` guard on every view.

The session lives on the server (``care.staff``: a row per session, keyed by a digest of a random
token); Flask's signed cookie (HttpOnly, SameSite=Lax, Secure behind https: set by the app
factory) holds only that token, besides the language and the CSRF secret. A session ends at once
on sign-out, when the account is disabled, its password is changed or reset, or its second factor
is reset; and after 15 minutes without a request or 12 hours after sign-in (from the app's clock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import abort, flash, g, jsonify, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from admin.i18n import LANGUAGE_KEY
from care import staff
from care.models import User
from security.audit import Actor
from security.roles import Permission
from web.context import audit_refusal, request_session, service

IDLE_TIMEOUT = staff.IDLE_TIMEOUT
ABSOLUTE_LIFETIME = staff.ABSOLUTE_LIFETIME

SESSION_KEY = "sid"

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


def session_token() -> str | None:
    """Return the token of this request's staff session, if its cookie carries one."""
    token = session.get(SESSION_KEY)
    return token if isinstance(token, str) and 0 < len(token) <= 128 else None


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
    session[SESSION_KEY] = staff.start_session(request_session(), user)
    g.staff_user = user


def sign_out(reason: str) -> None:
    """End the session and audit why (``logout``)."""
    token = session_token()
    if token is not None:
        db = request_session()
        user_id = staff.end_session(db, token)
        if user_id is not None:
            staff.record_sign_out(db, user_id, reason=reason, actor=Actor("user", str(user_id), request.remote_addr))
    _fresh_session()
    g.staff_user = None


def load_signed_in_user() -> None:
    """Find the request's staff member, ending the session when it has run out or was revoked."""
    g.staff_user = None
    if SESSION_KEY not in session:
        return
    token = session_token()
    if token is None:
        _fresh_session()
        return
    db = request_session()
    check = staff.resume_session(db, token)
    if check.user is not None:
        g.staff_user = check.user
        return
    if check.user_id is not None and check.ended is not None:
        staff.record_sign_out(db, check.user_id, reason=check.ended,
                              actor=Actor("user", str(check.user_id), request.remote_addr))
    _fresh_session()
    if check.ended == "expired":
        flash(_("You were signed out because you signed in more than 12 hours ago. Please sign in again."), "info")
    elif check.ended == "idle":
        flash(_("You were signed out after 15 minutes without activity. Please sign in again."), "info")


def has_live_session() -> bool:
    """Tell whether the request carries a staff session that has not run out (the rate limit spares it)."""
    token = session_token()
    return token is not None and staff.is_live_session(request_session(), token)


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


@dataclass(frozen=True)
class RouteAccess:
    """Who may call a panel route, as the route declares it (:func:`require` or :func:`public`).

    ``signed_in`` False: anyone (the login page, the language switch); else a signed-in staff member
    holding ``permission`` (None: any role; their own account page).
    """

    signed_in: bool
    permission: Permission | None = None
    during_password_change: bool = False


ACCESS_ATTRIBUTE = "careloop_route_access"


def declared_access(view: Callable[..., object]) -> RouteAccess | None:
    """Return the access a view function declares, or None when it declares none (it is then refused)."""
    access = getattr(view, ACCESS_ATTRIBUTE, None)
    return access if isinstance(access, RouteAccess) else None


def public(view: View) -> View:
    """Declare a view open to anyone, signed in or not (the login page, the language switch)."""
    setattr(view, ACCESS_ATTRIBUTE, RouteAccess(signed_in=False))
    return view


def require(permission: Permission | None = None, *, during_password_change: bool = False) -> Callable[[View], View]:
    """Guard a view: signed in, password already changed, and holding ``permission`` (if given).

    Signed out: a redirect to the login page (with a safe ``next``), or 401 JSON for scripts.
    Lacking the permission: the 403 page, or 403 JSON. The guard also declares the route's access
    (:func:`declared_access`): the panel refuses any route that declares none.
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

        setattr(guarded, ACCESS_ATTRIBUTE, RouteAccess(signed_in=True, permission=permission,
                                                       during_password_change=during_password_change))
        return cast(View, guarded)

    return decorate
