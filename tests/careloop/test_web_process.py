"""The web process as the Procfile starts it: gunicorn with gunicorn.conf.py serving create_app()."""

from __future__ import annotations

import gc
import json
import os
import runpy
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from careloop.settings import Settings
from security.keys import KeyRing

ROOT = Path(__file__).resolve().parents[2]


def _web_command() -> list[str]:
    (line,) = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")]
    return shlex.split(line.removeprefix("web:"))


def test_the_procfile_serves_the_app_with_the_settings_file():
    command = _web_command()
    assert command[0] == "gunicorn"
    assert command[command.index("--config") + 1] == "gunicorn.conf.py"
    assert command[-1] == "careloop:create_app()"


def test_the_settings_take_the_platforms_worker_count_and_port(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("PORT", "8123")
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert (settings["workers"], settings["bind"], settings["timeout"]) == (3, "0.0.0.0:8123", 30)
    monkeypatch.delenv("WEB_CONCURRENCY")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["workers"] == 2


def test_a_worker_freezes_what_loading_the_app_allocated():
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    before = gc.get_freeze_count()
    try:
        settings["post_worker_init"](None)
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


def test_the_web_process_serves_as_the_procfile_starts_it(fresh_settings: Settings):
    KeyRing.generate(fresh_settings.key_file).save()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "1",
                   "CARELOOP_DATABASE_URL": fresh_settings.database_url,
                   "CARELOOP_KEY_FILE": str(fresh_settings.key_file), "CARELOOP_BLOB_DIR": str(fresh_settings.blob_dir)}
    command = _web_command()
    command[0] = str(Path(sys.executable).parent / "gunicorn")
    with subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as web:
        try:
            answer = _get_when_up(f"http://127.0.0.1:{port}/healthz", web)
        finally:
            web.send_signal(signal.SIGTERM)
            web.wait(timeout=30)
    assert answer == {"status": "ok", "db": "ok"}


def _get_when_up(url: str, process: subprocess.Popen[bytes]) -> object:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"gunicorn exited with {process.returncode}: {output[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - a loopback URL of the test's own
                return json.loads(response.read())
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the web process did not answer within 60 s")
