"""Opting out and back in, per channel, at once and audited; and whether a channel may be used now."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from bot.config import BotConfig
from bot.outbox import cancel_pending
from care.models import ChannelConsent, Patient
from security.audit import Actor, log
from security.fields import clock_of

# Whole-message keywords (case-insensitive), per the carriers' and WeChat's conventions.
STOP_WORDS = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "退订", "td", "取消订阅"}
START_WORDS = {"start", "unstop", "subscribe", "订阅"}
HELP_WORDS = {"help", "info", "帮助", "求助"}


def keyword(text: str) -> str:
    return "".join(text.split()).lower()


def _consent(session: Session, patient: Patient, channel: str) -> ChannelConsent:
    consent = patient.consent_for(channel)
    if consent is None:
        now = clock_of(session).now()
        consent = ChannelConsent(channel=channel, consented=True, consented_at=now, recording_consent=False,
                                 opted_out=False, created_at=now, updated_at=now)
        patient.consents.append(consent)
    return consent


def opt_out(session: Session, patient: Patient, channel: str, *, actor: Actor, reason: str) -> bool:
    """Stop ``channel`` for the patient now; queued messages on it are cancelled. False if already out."""
    consent = _consent(session, patient, channel)
    if consent.opted_out:
        return False
    now = clock_of(session).now()
    consent.opted_out = True
    consent.opted_out_at = now
    consent.updated_at = now
    cancelled = cancel_pending(session, patient_id=patient.id, channel=channel)
    log(session, actor=actor, action="consent.opt_out", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"channel": channel, "reason": reason, "cancelled": cancelled})
    return True


def opt_in(session: Session, patient: Patient, channel: str, *, actor: Actor) -> bool:
    consent = _consent(session, patient, channel)
    if not consent.opted_out and consent.consented:
        return False
    now = clock_of(session).now()
    consent.opted_out = False
    consent.opted_out_at = None
    consent.consented = True
    consent.consented_at = now
    consent.updated_at = now
    log(session, actor=actor, action="consent.opt_in", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"channel": channel})
    return True


def channel_usable(patient: Patient, channel: str) -> bool:
    """Consented, not opted out, and reachable (bound openid for WeChat, a phone for SMS and voice)."""
    consent = patient.consent_for(channel)
    if consent is None:
        return channel == "console"  # the demo channel needs no consent of its own
    if not consent.usable:
        return False
    if channel == "wechat":
        return bool(patient.wechat_openid)
    if channel in ("sms", "voice"):
        return bool(patient.phone)
    return True


def patient_zone(config: BotConfig, patient: Patient) -> ZoneInfo:
    """The patient's own time zone, else the clinic's (``CARELOOP_TIMEZONE``)."""
    try:
        return ZoneInfo(patient.timezone) if patient.timezone else config.zone
    except (ZoneInfoNotFoundError, ValueError):
        return config.zone


def in_quiet_hours(config: BotConfig, patient: Patient, moment: datetime) -> bool:
    """Whether ``moment`` falls in the clinic's quiet hours (``CARELOOP_QUIET_HOURS``) where the patient lives."""
    local = moment.astimezone(patient_zone(config, patient)).time()
    return _within(local, config.quiet_start, config.quiet_end)


def _within(local: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours_end(config: BotConfig, patient: Patient, moment: datetime) -> datetime:
    """The first moment at or after ``moment`` outside the patient's quiet hours."""
    if not in_quiet_hours(config, patient, moment):
        return moment
    zone = patient_zone(config, patient)
    local = moment.astimezone(zone)
    candidate = local.replace(hour=config.quiet_end.hour, minute=config.quiet_end.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate = candidate + timedelta(days=1)
    return candidate.astimezone(moment.tzinfo)
