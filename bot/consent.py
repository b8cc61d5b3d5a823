"""Opting out and back in, per channel, at once and audited; whether a channel may be used now; and
the call-recording consent as a call asks for it (the words and keys that answer, the notice's version).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from bot.config import BotConfig
from bot.outbox.queue import cancel_pending
from bot.texts import TEXTS
from care.consents import ContactRefusal, LatestDecisions, consent_stands, contact_refusal, record_consent
from care.models import ChannelConsent, ConsentEntry, ConsentPurpose, ConsentSource, Patient
from care.quiet_hours import parse_quiet_hours
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
    cancelled = cancel_pending(session, patient_id=patient.id, channel=channel, reason=ContactRefusal.OPTED_OUT)
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


def channel_usable(session: Session, patient: Patient, channel: str, purpose: str, *,
                   decisions: LatestDecisions | None = None) -> bool:
    """Whether a message of ``purpose`` may be queued for the patient on ``channel``: the consent rule
    (:func:`care.consents.contact_refusal`, asked again when it is sent) lets it, and the patient is
    reachable there (a bound openid for WeChat, a phone for SMS and voice).

    A test patient (the simulator's) is reachable on the console only, whatever its record says.
    ``decisions``: the consent ledger's latest decisions, read already for a batch of patients.
    """
    if patient.is_test and channel != "console":
        return False
    if contact_refusal(session, patient, channel, purpose, decisions=decisions) is not None:
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


def quiet_hours_of(config: BotConfig, patient: Patient) -> tuple[time, time]:
    """The patient's own quiet hours (staff set them), else the clinic's (``CARELOOP_QUIET_HOURS``)."""
    own = parse_quiet_hours(patient.quiet_hours) if patient.quiet_hours else None
    return own or (config.quiet_start, config.quiet_end)


def in_quiet_hours(config: BotConfig, patient: Patient, moment: datetime) -> bool:
    """Whether ``moment`` falls in the patient's quiet hours (:func:`quiet_hours_of`) where the patient lives."""
    start, end = quiet_hours_of(config, patient)
    return _within(moment.astimezone(patient_zone(config, patient)).time(), start, end)


def _within(local: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours_end(config: BotConfig, patient: Patient, moment: datetime) -> datetime:
    """The first moment at or after ``moment`` outside the patient's quiet hours."""
    if not in_quiet_hours(config, patient, moment):
        return moment
    _start, end = quiet_hours_of(config, patient)
    local = moment.astimezone(patient_zone(config, patient))
    candidate = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate = candidate + timedelta(days=1)
    return candidate.astimezone(moment.tzinfo)


# -- recording consent on calls ---------------------------------------------------------------------------
RECORDING = ConsentPurpose.CALL_RECORDING.value
# What the patient is told about recording; its version goes into every ledger row a call writes.
RECORDING_NOTICE_KEYS = ("voice_recording_ask", "voice_recording_granted", "voice_recording_on")
GRANT_KEY = "1"
# Only these grant (as spoken, without spaces and punctuation); anything else, silence too, refuses.
GRANT_WORDS = frozenset({"同意", "我同意", "同意录音", "yes", "yesido", "yesiagree", "iagree", "agree", "yesplease"})
STOP_RECORDING_KEY = "*"
STOP_RECORDING_WORDS = frozenset({"停止录音", "不要录音", "别录音", "不要录了", "别录了", "stoprecording",
                                  "stoptherecording", "stoprecordingplease", "pleasestoprecording"})


def recording_notice_version() -> str:
    """The version of the recording notice's wording: a digest of its texts in every language, so a changed
    notice is a new version without anyone having to remember to bump it."""
    wording = json.dumps([[key, TEXTS[key]] for key in RECORDING_NOTICE_KEYS], ensure_ascii=False, sort_keys=True)
    return "recording-notice:" + hashlib.sha256(wording.encode()).hexdigest()[:16]


def spoken(text: str) -> str:
    """Speech as compared with our word lists: case folded, without spaces and punctuation."""
    return "".join(character for character in text.casefold() if character.isalnum())


def _keyed(digits: str) -> str:
    return digits.strip().rstrip("#")


def recording_answer(*, digits: str, speech: str) -> tuple[bool, str]:
    """The answer to "may we record?": (granted, how it was given). Keypad 1 or "同意"/"yes" grant; any
    other key or words refuse (an empty answer is silence, which the caller handles: it is not an answer)."""
    keyed = _keyed(digits)
    if keyed:
        return keyed == GRANT_KEY, ConsentSource.VOICE_KEYPAD.value
    return spoken(speech) in GRANT_WORDS, ConsentSource.VOICE_SPEECH.value


def stop_recording_asked(*, digits: str, speech: str) -> str | None:
    """How the caller asked to stop the recording (the ledger's source), or None if they did not.

    The star key alone (a number may hold a star, "135*85") or the words "停止录音" / "stop recording".
    """
    keyed = _keyed(digits)
    if keyed:
        return ConsentSource.VOICE_KEYPAD.value if keyed == STOP_RECORDING_KEY else None
    return ConsentSource.VOICE_SPEECH.value if spoken(speech) in STOP_RECORDING_WORDS else None


def recording_consented(session: Session, patient: Patient, channel: str = "voice") -> bool:
    """Whether the patient's latest call-recording decision on ``channel`` is a grant."""
    return consent_stands(session, patient.id, channel=channel, purpose=RECORDING)


def decide_recording(session: Session, patient: Patient, *, granted: bool, source: str, call_sid: str,
                     actor: Actor, channel: str = "voice") -> ConsentEntry:
    """Write the caller's recording decision to the consent ledger, under the current notice's version."""
    return record_consent(session, patient, channel=channel, purpose=RECORDING, granted=granted,
                          wording_version=recording_notice_version(), source=source, source_ref=call_sid,
                          actor=actor)
