"""Settings from the environment (and a ``.env`` file), as CONTRACT.md names them."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import time
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from limits import parse_many

from bot.config import (
    DEFAULT_EMERGENCY_NUMBER,
    DEFAULT_QUIET_HOURS,
    DEFAULT_RATE_LIMITS,
    DEFAULT_TIMEZONE,
    Clinic,
    Localised,
)
from care.quiet_hours import FORMAT as QUIET_HOURS_FORMAT
from care.quiet_hours import parse_quiet_hours

KNOWN_CHANNELS = ("console", "wechat", "sms", "voice")
WECHAT_TEMPLATE_PREFIX = "WECHAT_TEMPLATE_"
TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", "n", "f"})
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{1,23}[0-9]$")
_EMERGENCY = re.compile(r"^[0-9]{2,8}$")
_TEMPLATE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_PURPOSE = re.compile(r"^[A-Z][A-Z0-9_]*$")


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
    # The erasure ledger (re-applied by every restore); beside the master key file unless set.
    erasure_ledger_file: Path | None = None
    # Where the worker writes its daily backup (none: no scheduled backup), and how many it keeps.
    backup_dir: Path | None = None
    backup_keep_daily: int = 7
    backup_keep_weekly: int = 4
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
    # The demo clinic (synthetic): a clinic sets its own; `careloop serve` and `worker` say which it did not.
    clinic_name: str = "Careloop 健康管理中心"
    clinic_name_en: str = "Careloop Health Centre"
    clinic_phone: str = "400-000-0000"
    clinic_address: str = "上海市示例区健康路1号"
    clinic_address_en: str = "1 Health Road, Example District, Shanghai"
    emergency_number: str = DEFAULT_EMERGENCY_NUMBER
    sms_sender_name: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    quiet_hours: tuple[time, time] = DEFAULT_QUIET_HOURS
    region_north: bool | None = None
    urban: bool | None = None
    wechat_templates: Mapping[str, str] = field(default_factory=dict)
    trusted_proxies: int = 0
    # Sign-in POSTs (and other anonymous panel POSTs) per client address, in Flask-Limiter's notation.
    sign_in_rate_limit: str = "20 per minute"
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The settings given (environment names), so that a start line can say which clinic settings are not.
    given: frozenset[str] = frozenset()

    ENVIRONMENT_NAMES: ClassVar[dict[str, str]] = {
        "database_url": "CARELOOP_DATABASE_URL",
        "key_file": "CARELOOP_KEY_FILE",
        "master_key": "CARELOOP_MASTER_KEY",
        "audit_key_file": "CARELOOP_AUDIT_KEY_FILE",
        "audit_key": "CARELOOP_AUDIT_KEY",
        "audit_anchor_file": "CARELOOP_AUDIT_ANCHOR_FILE",
        "erasure_ledger_file": "CARELOOP_ERASURE_LEDGER_FILE",
        "backup_dir": "CARELOOP_BACKUP_DIR",
        "backup_keep_daily": "CARELOOP_BACKUP_KEEP_DAILY",
        "backup_keep_weekly": "CARELOOP_BACKUP_KEEP_WEEKLY",
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
        "clinic_name_en": "CARELOOP_CLINIC_NAME_EN",
        "clinic_phone": "CARELOOP_CLINIC_PHONE",
        "clinic_address": "CARELOOP_CLINIC_ADDRESS",
        "clinic_address_en": "CARELOOP_CLINIC_ADDRESS_EN",
        "emergency_number": "CARELOOP_EMERGENCY_NUMBER",
        "sms_sender_name": "CARELOOP_SMS_SENDER_NAME",
        "timezone": "CARELOOP_TIMEZONE",
        "quiet_hours": "CARELOOP_QUIET_HOURS",
        "region_north": "CARELOOP_REGION_NORTH",
        "urban": "CARELOOP_URBAN",
        "trusted_proxies": "CARELOOP_TRUSTED_PROXIES",
        "sign_in_rate_limit": "CARELOOP_SIGN_IN_RATE_LIMIT",
    }
    #: The clinic's own settings, in the order a start line names them.
    CLINIC_SETTINGS: ClassVar[tuple[str, ...]] = (
        "clinic_name", "clinic_name_en", "clinic_phone", "clinic_address", "clinic_address_en", "emergency_number",
        "sms_sender_name", "timezone", "quiet_hours", "region_north", "urban",
    )
    # Bot knobs read from the environment into ``extra``: operators tune sending rates; tests shorten the lease.
    EXTRA_ENVIRONMENT_NAMES: ClassVar[dict[str, str]] = {
        "outbox_lease_seconds": "CARELOOP_OUTBOX_LEASE_SECONDS",
        "rate_limits": "CARELOOP_RATE_LIMITS",
        "plan_daily_cap": "CARELOOP_PLAN_DAILY_CAP",
        "plan_weekly_cap": "CARELOOP_PLAN_WEEKLY_CAP",
        "plan_grace_hours": "CARELOOP_PLAN_GRACE_HOURS",
        "channel_daily_caps": "CARELOOP_CHANNEL_DAILY_CAPS",
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
        given: set[str] = set()
        for attribute, name in cls.ENVIRONMENT_NAMES.items():
            raw = values.get(name)
            if raw is None or raw.strip() == "":
                continue
            changes[attribute] = _convert(attribute, raw.strip())
            given.add(name)
        extra = {key: _convert_extra(name, values[name])
                 for key, name in cls.EXTRA_ENVIRONMENT_NAMES.items() if values.get(name)}
        if extra:
            changes["extra"] = {**settings.extra, **extra}
        templates = _wechat_templates(values)
        if templates:
            changes["wechat_templates"] = templates
            given.update(WECHAT_TEMPLATE_PREFIX + purpose for purpose in templates)
        return replace(settings, **changes, given=frozenset(given))

    def with_overrides(self, **changes: Any) -> Settings:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        named = {self.ENVIRONMENT_NAMES[name] for name in changes if name in self.ENVIRONMENT_NAMES}
        named.update(WECHAT_TEMPLATE_PREFIX + purpose for purpose in changes.get("wechat_templates") or ())
        return replace(self, **changes, given=self.given | named)

    # -- the clinic ----------------------------------------------------------------------------
    @property
    def clinic(self) -> Clinic:
        """The clinic as the bot and the reports name it."""
        return Clinic(
            name=Localised(self.clinic_name, self.clinic_name_en), phone=self.clinic_phone,
            address=Localised(self.clinic_address, self.clinic_address_en), emergency_number=self.emergency_number,
            sms_sender_name=self.sms_sender_name,
        )

    @property
    def risk_defaults(self) -> dict[str, bool | None]:
        """The clinic's China-PAR inputs for its patients (None: not given); a patient's own answer wins."""
        return {"region_north": self.region_north, "urban": self.urban}

    def unset_clinic_settings(self) -> list[str]:
        """``NAME (default VALUE)`` for each clinic setting left unset, for the start line of serve and worker."""
        unset: list[str] = []
        for attribute in self.CLINIC_SETTINGS:
            name = self.ENVIRONMENT_NAMES[attribute]
            if name not in self.given:
                unset.append(f"{name} (default {_shown(attribute, getattr(self, attribute))})")
        if not any(name.startswith(WECHAT_TEMPLATE_PREFIX) for name in self.given):
            unset.append(f"{WECHAT_TEMPLATE_PREFIX}<PURPOSE> (default none)")
        return unset

    # -- the audit key and anchor -------------------------------------------------------------------
    @property
    def audit_key_path(self) -> Path:
        """The audit key file: ``CARELOOP_AUDIT_KEY_FILE``, else ``audit.key`` beside the master key file."""
        return self.audit_key_file or self.key_file.with_name("audit.key")

    @property
    def audit_anchor_path(self) -> Path:
        """The anchor file: ``CARELOOP_AUDIT_ANCHOR_FILE``, else ``audit.anchor`` beside the audit key file."""
        return self.audit_anchor_file or self.audit_key_path.with_name("audit.anchor")

    @property
    def erasure_ledger_path(self) -> Path:
        """The erasure ledger: ``CARELOOP_ERASURE_LEDGER_FILE``, else ``erasures.ledger`` beside the master key file."""
        return self.erasure_ledger_file or self.key_file.with_name("erasures.ledger")

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


def _shown(attribute: str, value: Any) -> str:
    if attribute == "quiet_hours":
        start, end = value
        return f"{start:%H:%M}-{end:%H:%M}"
    if attribute == "sms_sender_name" and value is None:
        return "the clinic's name"
    if value is None:
        return "none: asked of each patient"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _wechat_templates(values: Mapping[str, str]) -> dict[str, str]:
    """``WECHAT_TEMPLATE_FOLLOWUP=abc`` and the like: the template id per purpose."""
    templates: dict[str, str] = {}
    for name, raw in values.items():
        if not name.startswith(WECHAT_TEMPLATE_PREFIX) or not raw.strip():
            continue
        purpose = name[len(WECHAT_TEMPLATE_PREFIX):]
        if not _PURPOSE.match(purpose):
            raise SettingsError(f"{name}: the purpose after {WECHAT_TEMPLATE_PREFIX} must be a name in capitals "
                                "(FOLLOWUP, REMINDER, RESULT, ...)")
        if not _TEMPLATE_ID.match(raw.strip()):
            raise SettingsError(f"{name} must be a WeChat template id (letters, digits, - and _), "
                                f"not {raw.strip()!r}")
        templates[purpose] = raw.strip()
    return templates


def _boolean(name: str, raw: str) -> bool:
    word = raw.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(f"{name} must be true or false (also yes/no, 1/0, on/off), not {raw!r}")


def _clinic_value(attribute: str, name: str, raw: str) -> Any:
    if attribute == "clinic_phone" and not _PHONE.match(raw):
        raise SettingsError(f"{name} must be a phone number (digits, spaces, '-', '()' and a leading '+'), "
                            f"not {raw!r}")
    if attribute == "emergency_number" and not _EMERGENCY.match(raw):
        raise SettingsError(f"{name} must be the number to dial, 2 to 8 digits (such as 120), not {raw!r}")
    if attribute == "sms_sender_name" and (any(c in raw for c in "【】[]") or len(raw) > 20):
        raise SettingsError(f"{name} must be the signature's name without 【】, at most 20 characters")
    if attribute == "timezone":
        try:
            ZoneInfo(raw)
        except (ZoneInfoNotFoundError, ValueError) as unknown:
            raise SettingsError(f"{name}: unknown time zone {raw!r} (an IANA name such as Asia/Shanghai)") \
                from unknown
    if attribute == "quiet_hours":
        hours = parse_quiet_hours(raw)
        if hours is None:
            raise SettingsError(f"{name} must be a range of local times {QUIET_HOURS_FORMAT}, not {raw!r}")
        return hours
    if attribute in {"region_north", "urban"}:
        return _boolean(name, raw)
    return raw


def _convert(attribute: str, raw: str) -> Any:
    if attribute in Settings.CLINIC_SETTINGS:
        return _clinic_value(attribute, Settings.ENVIRONMENT_NAMES[attribute], raw)
    if attribute in {"key_file", "blob_dir", "audit_key_file", "audit_anchor_file", "erasure_ledger_file",
                     "backup_dir"}:
        return Path(raw)
    if attribute in {"backup_keep_daily", "backup_keep_weekly"}:
        name = Settings.ENVIRONMENT_NAMES[attribute]
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise SettingsError(f"{name} must be a whole number of backups from 1 to 1000, not {raw!r}")
        return int(raw)
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
        if name in ("CARELOOP_PLAN_DAILY_CAP", "CARELOOP_PLAN_WEEKLY_CAP"):
            cap = int(raw)
            if not 1 <= cap <= 1000:
                raise ValueError("a whole number from 1 to 1000")
            return cap
        if name == "CARELOOP_PLAN_GRACE_HOURS":
            hours = float(raw)
            if not 0 < hours <= 24 * 30:
                raise ValueError("hours, more than 0 and at most 720")
            return hours
        if name == "CARELOOP_CHANNEL_DAILY_CAPS":  # wechat=100000,sms=5000
            caps: dict[str, int] = {}
            for part in raw.split(","):
                channel, _, count = part.partition("=")
                if channel.strip().lower() not in KNOWN_CHANNELS or int(count) < 0:
                    raise ValueError(part)
                caps[channel.strip().lower()] = int(count)
            return caps
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
