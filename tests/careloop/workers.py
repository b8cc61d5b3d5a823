"""Real ``careloop worker`` processes for tests: their environment, starting and stopping them.

A worker process runs on the system clock, so data that must be due "now" for it is made with the
system clock too, and a patient whose follow-up must go out now lives in a time zone where it is
day (quiet hours would hold the invitation until morning).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from careloop.settings import Settings
from tests.webhooks.conftest import (
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    TWILIO_FROM,
    WECHAT_APPID,
    WECHAT_SECRET,
    WECHAT_TOKEN,
)

# Zones 3-4 hours apart: one of them has its clock between 10:00 and 17:00 at any moment.
_ZONES = ("Asia/Shanghai", "Asia/Dubai", "Europe/London", "America/New_York", "America/Los_Angeles",
          "Pacific/Honolulu", "Pacific/Auckland")


def daytime_zone() -> str:
    """A time zone where it is now day, well away from the default quiet hours (21:00-08:00)."""
    now = datetime.now(UTC)
    for name in _ZONES:
        if 10 <= now.astimezone(ZoneInfo(name)).hour < 17:
            return name
    raise AssertionError("no daytime zone found")  # cannot happen: the zones cover the day


def worker_env(settings: Settings, *, channels: str, wechat_base: str | None = None, twilio_base: str | None = None,
               lease_seconds: float | None = None, rate: float = 100000.0) -> dict[str, str]:
    """The environment of a worker on ``settings``' database, its channels pointed at the local fakes.

    Sending rates are ``rate`` a second per channel (the providers' 1/s would make the tests crawl);
    every other setting is the default unless given.
    """
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CARELOOP_", "TWILIO_", "WECHAT_"))}
    env.update({
        "CARELOOP_DATABASE_URL": settings.database_url,
        "CARELOOP_KEY_FILE": str(settings.key_file),
        "CARELOOP_BLOB_DIR": str(settings.blob_dir),
        "CARELOOP_PUBLIC_URL": "https://clinic.example.test",
        "CARELOOP_CHANNELS": channels,
        "CARELOOP_RATE_LIMITS": f"sms={rate:g},voice={rate:g},wechat={rate:g}",
    })
    if wechat_base is not None:
        env.update({"WECHAT_TOKEN": WECHAT_TOKEN, "WECHAT_APPID": WECHAT_APPID, "WECHAT_SECRET": WECHAT_SECRET,
                    "WECHAT_API_BASE": wechat_base})
    if twilio_base is not None:
        env.update({"TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
                    "TWILIO_FROM_NUMBER": TWILIO_FROM, "TWILIO_API_BASE": twilio_base})
    if lease_seconds is not None:
        env["CARELOOP_OUTBOX_LEASE_SECONDS"] = str(lease_seconds)
    return env


def careloop_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("careloop")), *args]


def start_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start ``careloop worker`` (its output appended to ``log``), in a process group of its own."""
    with log.open("ab") as output:
        return subprocess.Popen(careloop_command("worker", *args), env=env, cwd=log.parent, stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=True)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL: no handler runs, nothing is flushed or released but what the kernel releases."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait (SIGKILL after 20 s): the worker finishes its job and retires."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(condition: Callable[[], object], *, timeout: float, interval: float = 0.1,
             what: str = "condition") -> float:
    """Poll ``condition()`` until true; return the seconds it took (AssertionError after ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
