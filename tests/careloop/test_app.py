"""The web app's own endpoints and settings."""

from __future__ import annotations

import pytest

from careloop.app import create_app
from careloop.db import Database, make_engine
from careloop.runtime import Runtime
from careloop.settings import Settings, SettingsError


def test_healthz_answers_ok_when_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "db": "ok"}


def test_healthz_is_503_when_the_database_is_gone(key_ring, clock, settings):
    # Nothing listens on port 1: the database does not answer.
    broken = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test", connect_args={"connect_timeout": 2})
    runtime = Runtime(settings=settings, key_ring=key_ring, db=Database(broken, key_ring=key_ring, clock=clock),
                      clock=clock)
    response = create_app(runtime=runtime).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["db"] == "unavailable"


def test_settings_read_the_contract_names():
    settings = Settings.from_mapping({
        "CARELOOP_DATABASE_URL": "postgresql+psycopg://u@h/db", "CARELOOP_CHANNELS": "console, sms",
        "CARELOOP_PUBLIC_URL": "https://clinic.example/", "TWILIO_ACCOUNT_SID": "AC1",
    })
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.channels == ("console", "sms")
    assert settings.public_url == "https://clinic.example"
    status = settings.channel_status()
    assert status["console"] is None
    assert status["sms"] == "not set: TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER"


@pytest.mark.parametrize(("name", "value"), [("CARELOOP_CHANNELS", "console,fax"), ("CARELOOP_PUBLIC_URL", "ftp://x")])
def test_bad_settings_are_named(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_mapping({name: value})


def test_dotenv_is_read_and_the_environment_wins(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("CARELOOP_CLINIC_NAME=Dotenv Clinic\nCARELOOP_BLOB_DIR=/srv/from-dotenv\n")
    settings = Settings.from_environment({"CARELOOP_BLOB_DIR": "/srv/from-env"}, dotenv=dotenv)
    assert settings.clinic_name == "Dotenv Clinic"
    assert str(settings.blob_dir) == "/srv/from-env"


def test_behind_a_trusted_proxy_the_client_address_comes_from_x_forwarded_for(runtime):
    from dataclasses import replace

    from flask import request

    proxied = replace(runtime, settings=runtime.settings.with_overrides(trusted_proxies=1))
    app = create_app(runtime=proxied)

    @app.get("/whoami")
    def whoami() -> str:
        return f"{request.remote_addr} {request.scheme}"

    answer = app.test_client().get("/whoami", headers={"X-Forwarded-For": "203.0.113.9",
                                                       "X-Forwarded-Proto": "https"})
    assert answer.get_data(as_text=True) == "203.0.113.9 https"
    direct = create_app(runtime=runtime)
    direct.add_url_rule("/whoami", view_func=whoami)
    assert direct.test_client().get("/whoami", headers={"X-Forwarded-For": "203.0.113.9"}).get_data(
        as_text=True).startswith("127.0.0.1")
