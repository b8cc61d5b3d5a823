"""The panel's blueprint and what every admin request goes through: CSRF, the staff session, headers."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import TooManyRequests

from admin.auth import (
    actor_of,
    current_user,
    declared_access,
    has_live_session,
    here,
    load_signed_in_user,
    wants_json,
)
from admin.i18n import HTML_LANG, LANGUAGE_NAMES, LANGUAGES, current_language
from care import tasks
from care.care_teams import scope_of
from security.audit import Actor
from security.roles import Permission
from web.context import audit_refusal, request_session
from web.rate_limits import blueprint_limiter

blueprint = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates",
                      static_folder="static", static_url_path="/static")
csrf = CSRFProtect()
log = logging.getLogger(__name__)

#: Routes Flask makes for the blueprint itself, open to anyone: the stylesheet and scripts. Every
#: other route of the panel declares its access (``admin.auth.require`` or ``admin.auth.public``).
FLASK_ENDPOINTS = frozenset({"admin.static"})

# Scripts, styles, images and fetches from our own origin only (data: images for the empty favicon);
# no inline code, no frames.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: Flask-WTF checks the Referer of forms posted over https.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def init_app(app: Flask) -> None:
    """Turn on CSRF for the panel only and set the security headers on its responses."""
    # Flask-WTF would otherwise check every POST of the app, webhooks included; the panel checks
    # its own requests in ``guard`` below.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    # A form stays valid as long as the session may live; the session itself ends sooner when idle.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 8 * 3600)
    csrf.init_app(app)
    app.after_request(_security_headers)
    _limit_anonymous_posts(app)


def _limit_anonymous_posts(app: Flask) -> None:
    """Limit sign-in POSTs, and other POSTs without a live session, per client address.

    Flask-Limiter checks before any other hook of the request runs, so a refused POST writes
    nothing: no failed sign-in, no CSRF refusal in the audit trail. The counts are kept in memory
    per process (each web worker counts its own); the rate is ``CARELOOP_SIGN_IN_RATE_LIMIT``.
    """
    # The webhooks and the rest of the app never enter the limiter: its hooks run for the panel only.
    limiter = blueprint_limiter(app, blueprint)
    rate = str(app.config.get("CARELOOP_SIGN_IN_RATE_LIMIT") or "20 per minute")
    # A blueprint limit is checked before the request's hooks (a view's decorated limit only when the
    # view runs, after the CSRF check). Sign-ins have a count of their own; other POSTs count only
    # when they come without a live session.
    limiter.shared_limit(rate, scope=_limit_scope, methods=["POST"], exempt_when=_spared)(blueprint)


def _limit_scope(endpoint: str) -> str:
    return "sign-in" if endpoint == "admin.login" else "anonymous-post"


def _spared() -> bool:
    return request.endpoint != "admin.login" and has_live_session()


def _security_headers(response: Response) -> Response:
    if not request.path.startswith("/admin"):
        return response
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "admin.static":
        # Pages show patients' data: never kept by the browser or a proxy.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return response


@blueprint.before_request
def guard() -> None:
    """Check the CSRF token of every state-changing request, then find who is signed in."""
    if request.endpoint is None or request.endpoint in FLASK_ENDPOINTS:
        return
    view = current_app.view_functions.get(request.endpoint)
    if view is None or declared_access(view) is None:
        # Fail closed: a route added without ``require``/``public`` is refused to everyone (and its
        # test in tests/admin/test_route_permissions.py fails) rather than left open.
        log.error("panel route %s declares no access; refused", request.endpoint)
        abort(403)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()
    load_signed_in_user()


@blueprint.context_processor
def page_context() -> dict[str, Any]:
    """Give the layout what every page needs: the user, the menu, the language switch."""
    user = current_user()
    return {
        "user": user,
        "urgent_count": _urgent_count(),
        "Permission": Permission,
        "language": current_language(),
        "html_lang": HTML_LANG[current_language()],
        "languages": [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        # Where the language switch returns to; a page reached by a POST cannot be fetched again.
        "here": here() if request.method == "GET" else "",
    }


def _urgent_count() -> int | None:
    """The open urgent tasks of the staff member's care teams, for the header of every page (None: not theirs)."""
    user = current_user()
    if user is None or user.must_change_password or not user.can(Permission.WORKLIST_WORK):
        return None
    return tasks.urgent_count(request_session(), scope=scope_of(user))


@blueprint.errorhandler(CSRFError)
def csrf_refused(_error: CSRFError) -> ResponseReturnValue:
    user = current_user()
    actor = actor_of(user) if user is not None else Actor("user", "anonymous", request.remote_addr)
    audit_refusal(actor=actor, action="csrf.refused", resource_type="admin_page",
                  details={"path": request.path[:200], "method": request.method})
    reason = _("This page has expired or the form came from elsewhere. Please go back, reload the page and try again.")
    if wants_json():
        return jsonify(error="csrf", reason=reason), 400
    return render_template("admin/error.html", title=_("Please try again"), message=reason), 400


@blueprint.errorhandler(TooManyRequests)
def too_many(_error: TooManyRequests) -> ResponseReturnValue:
    reason = _("Too many attempts from this network. Please wait a minute and try again.")
    if wants_json():
        return jsonify(error="rate_limited", reason=reason), 429
    return render_template("admin/error.html", title=_("Please wait"), message=reason), 429


@blueprint.errorhandler(403)
def forbidden(_error: Exception) -> ResponseReturnValue:
    return render_template("admin/error.html", title=_("Not allowed"),
                           message=_("Your role does not allow you to open this page.")), 403


@blueprint.errorhandler(404)
def not_found(_error: Exception) -> ResponseReturnValue:
    if wants_json():
        return jsonify(error="not_found", reason=_("Not found.")), 404
    return render_template("admin/error.html", title=_("Not found"),
                           message=_("This page or record does not exist.")), 404
