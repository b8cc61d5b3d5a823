"""The application factory: ``create_app()`` wires settings, database, blueprints."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import text
from sqlalchemy.orm import Session
from werkzeug.middleware.proxy_fix import ProxyFix

import admin
import webhooks
from api import reports as reports_api
from careloop.bot_runtime import bot_for
from careloop.file_modes import loose_file_lines
from careloop.flow_library import tell_problems
from careloop.runtime import KEY_RING_CHECK_SECONDS, Runtime, build_runtime
from careloop.settings import Settings
from web.context import SERVICES_KEY, SESSION_FACTORY_KEY, request_session

MAX_REQUEST_BYTES = 2 * 1024 * 1024

logger = logging.getLogger(__name__)


class SigningSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, its signing serializer made once per secret key, not per request.

    Every request opens the session (webhooks too), and Flask's default builds the serializer each
    time, which costs a webhook more than its signature check.
    """

    def __init__(self) -> None:
        self._serializers: dict[tuple[object, ...], URLSafeTimedSerializer] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        fallbacks = tuple(app.config.get("SECRET_KEY_FALLBACKS") or ())
        key = (app.secret_key, fallbacks)
        serializer = self._serializers.get(key)
        if serializer is None:
            serializer = super().get_signing_serializer(app)
            if serializer is None:
                return None
            self._serializers = {key: serializer}  # a changed key replaces the old serializer
        return serializer


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Flask:
    """Build the web application (webhooks and admin panel). Starts nothing by itself."""
    if runtime is None:
        runtime = build_runtime(settings or Settings.from_environment())
        # The web process of the Procfile (gunicorn) starts here: it warns as ``careloop serve`` does.
        for line in loose_file_lines(runtime.settings):
            logger.warning("%s", line)
    settings = runtime.settings
    app = Flask(__name__, root_path=str(Path(__file__).resolve().parent))
    secret = settings.secret_key or base64.b64encode(runtime.key_ring.purpose_key("flask-session")).decode()
    app.config.update(
        SECRET_KEY=secret,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        JSON_AS_ASCII=False,
        CARELOOP_SIGN_IN_RATE_LIMIT=settings.sign_in_rate_limit,
        BABEL_DEFAULT_TIMEZONE=settings.timezone,  # staff read times in the clinic's zone
    )
    app.session_interface = SigningSessionInterface()
    app.extensions["careloop"] = runtime
    app.extensions[SESSION_FACTORY_KEY] = runtime.db.sessions
    bot = bot_for(runtime)
    tell_problems(bot.services.library)
    app.extensions[SERVICES_KEY] = {"settings": settings, "runtime": runtime, "clock": runtime.clock,
                                    "bot": bot.services}
    if settings.trusted_proxies:
        # Behind N proxies, take the client address and scheme from the last N X-Forwarded-* hops only.
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    _install_unit_of_work(app)
    _follow_key_rotations(app, runtime)
    _register_health(app)
    webhooks.init_app(app)
    reports_api.init_app(app)
    admin.init_app(app)
    return app


def _install_unit_of_work(app: Flask) -> None:
    @app.after_request
    def finish_unit_of_work(response: Response) -> Response:
        session: Session | None = g.pop("careloop_session", None)
        if session is not None:
            try:
                if response.status_code < 400:
                    session.commit()
                else:
                    session.rollback()
            finally:
                session.close()
        return response

    @app.teardown_request
    def discard_unit_of_work(_error: BaseException | None) -> None:
        session: Session | None = g.pop("careloop_session", None)
        if session is not None:
            session.rollback()
            session.close()


def _follow_key_rotations(app: Flask, runtime: Runtime) -> None:
    @app.before_request
    def refresh_key_ring() -> None:
        # A request reads the time of the last look; the key file itself is looked at every few seconds.
        runtime.refresh_key_ring(every_seconds=KEY_RING_CHECK_SECONDS)
        runtime.forget_erased_keys(every_seconds=KEY_RING_CHECK_SECONDS)


def _register_health(app: Flask) -> None:
    @app.get("/healthz")
    def healthz() -> Any:
        try:
            request_session().execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any database failure means "not healthy"
            return jsonify(status="degraded", db="unavailable"), 503
        return jsonify(status="ok", db="ok")
