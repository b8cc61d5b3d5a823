"""Settings from the environment (and a ``.env`` file), as CONTRACT.md names them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from dotenv import dotenv_values
from limits import parse_many

from bot.config import DEFAULT_RATE_LIMITS

KNOWN_CHANNELS = ("console", "wechat", "sms", "voice")


class SettingsError(ValueError):
    """A setting has a value Careloop cannot use."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///instance/careloop.db"
    key_file: Path = Path("instance/master.key")
    master_key: str | None = None
    # The audit key (the chain key's secret): given to the worker and `audit verify`, never to the web process.
    audit_key_file: Path | None = None
    audit_key: str | None = None
    audit_anchor_file: Path | None = None
    secret_key: str | None = None
    public_url: str = "http://127.0.0.1:5000"
    blob_dir: Path = Path("instance/blobs")
    # The clinic's own flow folders, loaded besides the built-in library (CARELOOP_FLOWS_DIR, ``:``-separated).
    flows_dirs: tuple[Path, ...] = ()
    channels: tuple[str, ...] = ("console",)
    wechat_token: str | None = None
    wechat_appid: str | None = None
    wechat_secret: str | None = None
    wechat_aes_key: str | None = None
    wechat_api_base: str = "https://api.weixin.qq.com"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_api_base: str | None = None
    clinic_name: str = "Careloop 健康管理中心"
    trusted_proxies: int = 0
    # Sign-in POSTs (and other anonymous panel POSTs) per client address, in Flask-Limiter's notation.
    sign_in_rate_limit: str = "20 per minute"
    extra: Mapping[str, Any] = field(default_factory=dict)

    ENVIRONMENT_NAMES: ClassVar[dict[str, str]] = {
        "database_url": "CARELOOP_DATABASE_URL",
        "key_file": "CARELOOP_KEY_FILE",
        "master_key": "CARELOOP_MASTER_KEY",
        "audit_key_file": "CARELOOP_AUDIT_KEY_FILE",
        "audit_key": "CARELOOP_AUDIT_KEY",
        "audit_anchor_file": "CARELOOP_AUDIT_ANCHOR_FILE",
        "secret_key": "CARELOOP_SECRET_KEY",
        "public_url": "CARELOOP_PUBLIC_URL",
        "blob_dir": "CARELOOP_BLOB_DIR",
        "flows_dirs": "CARELOOP_FLOWS_DIR",
        "channels": "CARELOOP_CHANNELS",
        "wechat_token": "WECHAT_TOKEN",
        "wechat_appid": "WECHAT_APPID",
        "wechat_secret": "WECHAT_SECRET",
        "wechat_aes_key": "WECHAT_AES_KEY",
        "wechat_api_base": "WECHAT_API_BASE",
        "twilio_account_sid": "TWILIO_ACCOUNT_SID",
        "twilio_auth_token": "TWILIO_AUTH_TOKEN",
        "twilio_from_number": "TWILIO_FROM_NUMBER",
        "twilio_api_base": "TWILIO_API_BASE",
        "clinic_name": "CARELOOP_CLINIC_NAME",
        "trusted_proxies": "CARELOOP_TRUSTED_PROXIES",
        "sign_in_rate_limit": "CARELOOP_SIGN_IN_RATE_LIMIT",
    }
    # Bot knobs read from the environment into ``extra``: operators tune sending rates; tests shorten the lease.
    EXTRA_ENVIRONMENT_NAMES: ClassVar[dict[str, str]] = {
        "outbox_lease_seconds": "CARELOOP_OUTBOX_LEASE_SECONDS",
        "rate_limits": "CARELOOP_RATE_LIMITS",
    }

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, *, dotenv: Path | None = Path(".env")
    ) -> Settings:
        """Read settings: the process environment wins over the ``.env`` file, which wins over defaults."""
        values: dict[str, str] = {}
        if dotenv is not None and dotenv.is_file():
            values.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> Settings:
        settings = cls()
        changes: dict[str, Any] = {}
        for attribute, name in cls.ENVIRONMENT_NAMES.items():
            raw = values.get(name)
            if raw is None or raw == "":
                continue
            changes[attribute] = _convert(attribute, raw)
        extra = {key: _convert_extra(name, values[name])
                 for key, name in cls.EXTRA_ENVIRONMENT_NAMES.items() if values.get(name)}
        if extra:
            changes["extra"] = {**settings.extra, **extra}
        return replace(settings, **changes)

    def with_overrides(self, **changes: Any) -> Settings:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        return replace(self, **changes)

    # -- the audit key and anchor -------------------------------------------------------------------
    @property
    def audit_key_path(self) -> Path:
        """The audit key file: ``CARELOOP_AUDIT_KEY_FILE``, else ``audit.key`` beside the master key file."""
        return self.audit_key_file or self.key_file.with_name("audit.key")

    @property
    def audit_anchor_path(self) -> Path:
        """The anchor file: ``CARELOOP_AUDIT_ANCHOR_FILE``, else ``audit.anchor`` beside the audit key file."""
        return self.audit_anchor_file or self.audit_key_path.with_name("audit.anchor")

    # -- channels ------------------------------------------------------------------------------
    def channel_status(self) -> dict[str, str | None]:
        """For each requested channel: None when live, else why it is not."""
        status: dict[str, str | None] = {}
        for channel in self.channels:
            status[channel] = self._missing_for(channel)
        return status

    def live_channels(self) -> tuple[str, ...]:
        return tuple(channel for channel, why in self.channel_status().items() if why is None)

    def _missing_for(self, channel: str) -> str | None:
        needed: dict[str, tuple[str, ...]] = {
            "console": (),
            "wechat": ("wechat_token", "wechat_appid", "wechat_secret"),
            "sms": ("twilio_account_sid", "twilio_auth_token", "twilio_from_number"),
            "voice": ("twilio_account_sid", "twilio_auth_token", "twilio_from_number"),
        }
        missing = [self.ENVIRONMENT_NAMES[name] for name in needed[channel] if not getattr(self, name)]
        return f"not set: {', '.join(missing)}" if missing else None


def _convert(attribute: str, raw: str) -> Any:
    if attribute in {"key_file", "blob_dir", "audit_key_file", "audit_anchor_file"}:
        return Path(raw)
    if attribute == "flows_dirs":
        # A folder that is missing is reported with the flows' problems at start, not refused here.
        return tuple(Path(part.strip()) for part in raw.split(":") if part.strip())
    if attribute == "trusted_proxies":
        if not raw.isdigit() or int(raw) > 5:
            raise SettingsError("CARELOOP_TRUSTED_PROXIES must be the number of proxies in front (0-5)")
        return int(raw)
    if attribute == "channels":
        channels = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
        unknown = [c for c in channels if c not in KNOWN_CHANNELS]
        if unknown:
            raise SettingsError(
                f"CARELOOP_CHANNELS: unknown channel {unknown[0]!r} (known: {', '.join(KNOWN_CHANNELS)})"
            )
        return channels
    if attribute == "sign_in_rate_limit":
        try:
            parse_many(raw)
        except ValueError:
            raise SettingsError("CARELOOP_SIGN_IN_RATE_LIMIT must be a rate such as '20 per minute' "
                                "or '20/minute;100/hour'") from None
        return raw
    if attribute == "public_url":
        if not raw.startswith(("http://", "https://")):
            raise SettingsError("CARELOOP_PUBLIC_URL must start with http:// or https://")
        return raw.rstrip("/")
    return raw


def _convert_extra(name: str, raw: str) -> Any:
    """``CARELOOP_OUTBOX_LEASE_SECONDS=120``; ``CARELOOP_RATE_LIMITS=sms=1,voice=1`` (per second, per channel;
    channels not named keep the providers' documented limits)."""
    try:
        if name == "CARELOOP_OUTBOX_LEASE_SECONDS":
            seconds = float(raw)
            if not 1 <= seconds <= 86400:
                raise ValueError(raw)
            return seconds
        limits = dict(DEFAULT_RATE_LIMITS)
        for part in raw.split(","):
            channel, _, rate = part.partition("=")
            if channel.strip().lower() not in KNOWN_CHANNELS or float(rate) <= 0:
                raise ValueError(part)
            limits[channel.strip().lower()] = float(rate)
        return limits
    except ValueError as bad:
        raise SettingsError(f"{name}: cannot use {raw!r} ({bad})") from bad
