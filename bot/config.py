"""How the bot behaves: quiet hours, windows, limits, keywords. Built by the composition root."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo

# Keywords that start a flow when no conversation is waiting (case-insensitive, whole message).
DEFAULT_KEYWORDS: dict[str, str] = {
    "血压": "home_monitoring",
    "血糖": "home_monitoring",
    "bp": "home_monitoring",
    "glucose": "home_monitoring",
    "reading": "home_monitoring",
    "问卷": "phq9",
    "心情": "phq9",
    "焦虑": "gad7",
    "满意度": "satisfaction",
    "survey": "satisfaction",
    "mood": "phq9",
    "anxiety": "gad7",
}

# Providers' documented sending limits, as messages (or calls) per second per sending account.
# Twilio long-code numbers: 1 message segment per second; calls: 1 per second by default.
# WeChat customer-service messages have no per-second cap documented; 20/s stays well inside quotas.
DEFAULT_RATE_LIMITS: dict[str, float] = {"sms": 1.0, "voice": 1.0, "wechat": 20.0, "console": 1000.0}


# The contract's defaults for the clinic's clock (CONTRACT.md, configuration); the settings start from these.
DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_QUIET_HOURS = (time(21, 0), time(8, 0))
DEFAULT_EMERGENCY_NUMBER = "120"

#: The WeChat template a message of a purpose uses when the clinic names none for that purpose.
FALLBACK_TEMPLATE_PURPOSE = "FOLLOWUP"


@dataclass(frozen=True)
class Localised:
    """A text the clinic gives in both languages (its name, its address)."""

    zh: str
    en: str

    def in_language(self, lang: str) -> str:
        """The text in ``lang``; English falls back to the Chinese when the clinic gave none."""
        return (self.en or self.zh) if lang == "en" else self.zh


@dataclass(frozen=True)
class Clinic:
    """The clinic as patients meet it: what every reply, prompt and report names."""

    name: Localised
    phone: str
    address: Localised = Localised("", "")
    emergency_number: str = DEFAULT_EMERGENCY_NUMBER
    sms_sender_name: str | None = None

    def sms_sender(self, lang: str) -> str:
        """The 【签名】 an SMS starts with: the one the clinic registered, else its name."""
        return self.sms_sender_name or self.name.in_language(lang)

    def placeholders(self) -> dict[str, Any]:
        """The values texts name the clinic by (``{clinic}``, ``{phone}``, ...), for :func:`bot.texts.say`."""
        return {"clinic": self.name, "phone": self.phone, "emergency": self.emergency_number,
                "address": self.address, "sender": SmsSender(self)}


@dataclass(frozen=True)
class SmsSender:
    """The clinic's SMS signature, resolved in the patient's language by :func:`bot.texts.say`."""

    clinic: Clinic

    def in_language(self, lang: str) -> str:
        return self.clinic.sms_sender(lang)


@dataclass(frozen=True)
class BotConfig:
    clinic: Clinic
    public_url: str = "http://127.0.0.1:5000"
    timezone: str = DEFAULT_TIMEZONE
    quiet_start: time = DEFAULT_QUIET_HOURS[0]
    quiet_end: time = DEFAULT_QUIET_HOURS[1]
    wechat_window_hours: int = 48
    wechat_templates: Mapping[str, str] = field(default_factory=dict)
    minimum_disclosure: bool = True
    keywords: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_KEYWORDS))
    rate_limits: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    # A started attempt whose worker died is settled (looked up, or resent) when this lease runs out...
    outbox_lease_seconds: float = 120.0
    # ...or, on a channel whose provider can be asked (SMS, voice), as soon as its worker is known dead
    # and the attempt is older than the longest a live provider call can take (the HTTP timeout).
    outbox_attempt_seconds: float = 10.0
    # A worker beats this often; one silent for ``worker_dead_after_seconds`` is dead, and the rows it
    # claimed but never attempted go to the next worker at once.
    worker_heartbeat_seconds: float = 2.0
    worker_dead_after_seconds: float = 6.0
    outbox_max_attempts: int = 6
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    binding_code_minutes: int = 10
    binding_code_attempts: int = 5
    # Card-number binding tries (card numbers sent and wrong codes) per WeChat user and per card
    # number in any 24 hours; past it the care team gets a task and the user is told they will help.
    binding_attempts_per_day: int = 5
    passive_reply_seconds: float = 4.0
    followup_invite_hours: int = 24
    # Plans (care.plans): messages of follow-ups a patient may get per local day and per local week
    # (Monday to Sunday) across all plans, a channel's follow-up sends per clinic day (absent: no cap),
    # and how late a plan's occurrence may still be sent (older: skipped as missed, never a flood).
    plan_daily_cap: int = 3
    plan_weekly_cap: int = 10
    channel_daily_caps: Mapping[str, int] = field(default_factory=dict)
    plan_grace_hours: float = 24.0

    @property
    def clinic_name(self) -> Localised:
        """The clinic's name in both languages (``say`` picks the patient's)."""
        return self.clinic.name

    @property
    def clinic_phone(self) -> str:
        return self.clinic.phone

    @property
    def emergency_number(self) -> str:
        return self.clinic.emergency_number

    @property
    def zone(self) -> ZoneInfo:
        """The clinic's time zone (the settings checked the name)."""
        return ZoneInfo(self.timezone)

    def wechat_template(self, purpose: str) -> str | None:
        """The WeChat template id for a message of ``purpose`` (FOLLOWUP, REMINDER, RESULT, ...), falling back
        to the FOLLOWUP one; None when the clinic configured neither."""
        return self.wechat_templates.get(purpose.upper()) or self.wechat_templates.get(FALLBACK_TEMPLATE_PURPOSE)
