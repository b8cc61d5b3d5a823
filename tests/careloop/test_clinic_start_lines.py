"""`careloop serve` and `careloop worker` say at start, in one line on stderr, which clinic settings are unset."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from careloop.settings import Settings
from tests.clinic import with_clinic

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def initialised(run_cli):
    assert run_cli("init")[0] == 0


def clinic_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("clinic settings not set")]


def test_the_worker_names_every_unset_clinic_setting_and_its_default(run_cli, initialised):
    code, _, err = run_cli("worker", "--once")
    assert code == 0
    (line,) = clinic_lines(err)
    demo = Settings()  # the defaults: the demo clinic
    for shown in (f"CARELOOP_CLINIC_NAME (default {demo.clinic_name})",
                  f"CARELOOP_CLINIC_PHONE (default {demo.clinic_phone})", "CARELOOP_EMERGENCY_NUMBER (default 120)",
                  "CARELOOP_TIMEZONE (default Asia/Shanghai)", "CARELOOP_QUIET_HOURS (default 21:00-08:00)",
                  "CARELOOP_SMS_SENDER_NAME (default the clinic's name)",
                  "CARELOOP_REGION_NORTH (default none: asked of each patient)", "WECHAT_TEMPLATE_<PURPOSE>"):
        assert shown in line


def test_the_worker_names_only_what_the_clinic_left_unset(run_cli, initialised, fresh_settings):
    code, _, err = run_cli("worker", "--once", settings=with_clinic(fresh_settings))
    assert code == 0
    (line,) = clinic_lines(err)
    assert "CARELOOP_REGION_NORTH" in line
    assert "CARELOOP_URBAN" in line
    assert "CARELOOP_CLINIC_PHONE" not in line
    assert "WECHAT_TEMPLATE_" not in line
    complete = with_clinic(fresh_settings).with_overrides(region_north=True, urban=False)
    assert clinic_lines(run_cli("worker", "--once", settings=complete)[2]) == []


def test_serve_says_it_first_on_stderr(run_cli, initialised, fresh_settings: Settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "CARELOOP_DATABASE_URL": fresh_settings.database_url,
                   "CARELOOP_KEY_FILE": str(fresh_settings.key_file), "CARELOOP_BLOB_DIR": str(fresh_settings.blob_dir),
                   "CARELOOP_CLINIC_PHONE": "021-5550-0101", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", "from careloop.cli import entry; entry()", "serve", "--port", str(port)]
    with subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True) as web:
        try:
            first = web.stderr.readline() if web.stderr else ""
        finally:
            web.send_signal(signal.SIGTERM)
            web.wait(timeout=30)
    assert first.startswith("clinic settings not set, using defaults: CARELOOP_CLINIC_NAME (default ")
    assert "CARELOOP_CLINIC_PHONE" not in first
