"""Rate limits guard the panel's and the API's blueprints only; the webhooks never meet them."""

from __future__ import annotations

import pytest
from flask import Blueprint, Flask

from security.rate_limits import blueprint_limiter


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


def test_the_webhooks_are_never_rate_limited(limited_app_client):
    # WeChat and Twilio retry a refused delivery: a 429 would only multiply the traffic.
    answers = {limited_app_client.post("/webhooks/twilio/sms", data={"Body": "1"}).status_code for _ in range(10)}
    assert 429 not in answers


def test_the_app_runs_no_limiter_hook_for_a_webhook(limited_app_client):
    app = limited_app_client.application
    for table in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        hooks = [getattr(hook, "__qualname__", repr(hook)) for hook in table.get(None, [])]
        assert not [name for name in hooks if "Limiter" in name]


@pytest.fixture
def limited_app_client(settings, runtime):
    from tests.conftest import flask_app_for

    runtime.settings = settings.with_overrides(sign_in_rate_limit="3 per minute")
    return flask_app_for(runtime).test_client()
