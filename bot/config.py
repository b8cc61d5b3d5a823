"""How the bot behaves: quiet hours, windows, limits, keywords. Built by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time

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


@dataclass(frozen=True)
class BotConfig:
    clinic_name: str = "Careloop 健康管理中心"
    clinic_phone: str = "400-000-0000"
    public_url: str = "http://127.0.0.1:5000"
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    wechat_window_hours: int = 48
    wechat_template_id: str | None = None
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
    passive_reply_seconds: float = 4.0
    followup_invite_hours: int = 24
