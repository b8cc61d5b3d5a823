"""A blueprint's limiter guards that blueprint and adds no hook to any other request."""

from __future__ import annotations

import pytest
from flask import Blueprint, Flask

from web.rate_limits import blueprint_limiter


def _app_with(guarded: Blueprint, free: Blueprint) -> tuple[Flask, object]:
    app = Flask(__name__)
    app.register_blueprint(guarded)
    app.register_blueprint(free)
    limiter = blueprint_limiter(app, guarded)
    limiter.shared_limit("2 per minute", scope="guarded")(guarded)
    return app, limiter


def _blueprints() -> tuple[Blueprint, Blueprint]:
    guarded = Blueprint("guarded", __name__, url_prefix="/guarded")
    free = Blueprint("free", __name__, url_prefix="/free")
    guarded.add_url_rule("/", "page", lambda: "ok", methods=["GET", "POST"])
    free.add_url_rule("/", "page", lambda: "ok", methods=["GET", "POST"])
    return guarded, free


def test_the_guarded_blueprint_is_limited_per_address_and_the_others_never():
    app, _limiter = _app_with(*_blueprints())
    client = app.test_client()
    assert [client.post("/guarded/").status_code for _ in range(3)] == [200, 200, 429]
    assert {client.post("/free/").status_code for _ in range(20)} == {200}
    assert client.post("/guarded/", environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code == 200


def test_the_limiter_adds_no_hook_to_requests_outside_its_blueprint():
    app, _limiter = _app_with(*_blueprints())
    for table in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        assert table.get(None, []) == []
        assert table["guarded"]
        assert "free" not in table


def test_a_blueprint_must_be_registered_before_it_is_limited():
    guarded, _free = _blueprints()
    with pytest.raises(ValueError, match="not registered"):
        blueprint_limiter(Flask(__name__), guarded)
