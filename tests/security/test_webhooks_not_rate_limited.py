"""The webhooks never meet a rate limit: the panel's and the API's limiters guard their own blueprints only."""

from __future__ import annotations

import pytest


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
