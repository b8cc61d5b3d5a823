"""The consent ledger's service: write down a decision, and read what stands; and whether the clinic may
contact a patient on a channel for a purpose now (:func:`contact_refusal`, the one rule asked when a
message is queued and again just before it is sent).

Every decision is a new row (:class:`care.models.ConsentEntry`), audited; what stands is the
latest row of the stream (patient, channel, purpose). Nothing given is nothing granted: a stream
without rows stands at "not granted". The caller holds the patient's lock (so a stream's ``seq``
cannot be taken twice; the unique constraint refuses it if it were) and commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from enum import StrEnum

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from care.errors import Problem, ValidationFailedError
from care.models import Channel, ConsentEntry, ConsentPurpose, ConsentSource, Patient
from security.audit import Actor, log
from security.fields import clock_of

CHANNELS = frozenset(channel.value for channel in Channel)
PURPOSES = frozenset(purpose.value for purpose in ConsentPurpose)
SOURCES = frozenset(source.value for source in ConsentSource)
MESSAGES = ConsentPurpose.MESSAGES.value

# Message purposes (the outbox's ``purpose``) that need no consent to contact, each with its reason.
# An opt-out of the channel stops them all the same.
CONSENT_EXEMPT_PURPOSES: dict[str, str] = {
    # The SMS code proves a WeChat account is the patient's: it is how consent is asked for at all.
    "binding_code": "obtains consent",
    # The answer to what the patient has just written to us (within the conversation they started).
    "reply": "answers the patient",
}


class ContactRefusal(StrEnum):
    """Why a message may not go out (kept on a cancelled outbox row; names a rule, never PHI)."""

    OPTED_OUT = "opted_out"                  # the patient opted out of the channel (STOP, unsubscribe)
    NO_CONSENT = "no_consent"                # the channel was never consented to
    CONSENT_WITHDRAWN = "consent_withdrawn"  # the ledger's latest decision for the channel's messages is "no"


def record_consent(session: Session, patient: Patient, *, channel: str, purpose: str, granted: bool,
                   wording_version: str, source: str, source_ref: str | None = None,
                   actor: Actor) -> ConsentEntry:
    """Append the patient's decision to the ledger (and keep the channel's recording cache in step).

    ``wording_version`` names the text the patient was given (so a changed notice can be told apart);
    ``source`` says how the decision came (keypad, speech, staff, import); ``source_ref`` is the call
    or message it came on.

    Raises:
        ValidationFailedError: an unknown channel, purpose or source, or a missing wording version.
    """
    problems = []
    if channel not in CHANNELS:
        problems.append(Problem("channel", f"must be one of {', '.join(sorted(CHANNELS))}"))
    if purpose not in PURPOSES:
        problems.append(Problem("purpose", f"must be one of {', '.join(sorted(PURPOSES))}"))
    if source not in SOURCES:
        problems.append(Problem("source", f"must be one of {', '.join(sorted(SOURCES))}"))
    if not wording_version or len(wording_version) > 64:
        problems.append(Problem("wording_version", "is required (at most 64 characters)"))
    if source_ref is not None and len(source_ref) > 64:
        problems.append(Problem("source_ref", "is at most 64 characters"))
    if problems:
        raise ValidationFailedError(problems)
    now = clock_of(session).now()
    # A patient enrolled in this unit of work is flushed first: no relationship tells it the new row needs it.
    last = session.scalar(select(func.max(ConsentEntry.seq)).where(*_stream(patient.id, channel, purpose)))
    entry = ConsentEntry(patient_id=patient.id, channel=channel, purpose=purpose, seq=int(last or 0) + 1,
                         granted=granted, wording_version=wording_version, source=source, source_ref=source_ref,
                         recorded_at=now)
    session.add(entry)
    if purpose == ConsentPurpose.CALL_RECORDING.value:
        cached = patient.consent_for(channel)
        if cached is not None:
            cached.recording_consent = granted
            cached.updated_at = now
    log(session, actor=actor, action="consent.granted" if granted else "consent.withdrawn",
        resource_type="consent", resource_id=entry.id, patient_id=patient.id,
        details={"channel": channel, "purpose": purpose, "seq": entry.seq, "wording_version": wording_version,
                 "source": source, "source_ref": source_ref})
    return entry


def current_consent(session: Session, patient_id: uuid.UUID, *, channel: str, purpose: str) -> ConsentEntry | None:
    """The latest decision of the stream, or None when the patient was never asked."""
    return session.scalars(select(ConsentEntry).where(*_stream(patient_id, channel, purpose))
                           .order_by(ConsentEntry.seq.desc()).limit(1)).first()


def consent_stands(session: Session, patient_id: uuid.UUID, *, channel: str, purpose: str) -> bool:
    """Whether the latest decision of the stream is a grant (never asked: no)."""
    latest = current_consent(session, patient_id, channel=channel, purpose=purpose)
    return latest is not None and latest.granted


def consent_history(session: Session, patient_id: uuid.UUID, *, channel: str | None = None,
                    purpose: str | None = None) -> list[ConsentEntry]:
    """The patient's decisions, oldest first within each stream (for staff and auditors)."""
    query = select(ConsentEntry).where(ConsentEntry.patient_id == patient_id)
    if channel is not None:
        query = query.where(ConsentEntry.channel == channel)
    if purpose is not None:
        query = query.where(ConsentEntry.purpose == purpose)
    return list(session.scalars(query.order_by(ConsentEntry.channel, ConsentEntry.purpose, ConsentEntry.seq)))


def _stream(patient_id: uuid.UUID, channel: str, purpose: str) -> tuple[ColumnElement[bool], ...]:
    return (ConsentEntry.patient_id == patient_id, ConsentEntry.channel == channel, ConsentEntry.purpose == purpose)


class LatestDecisions:
    """The latest decision of each (patient, channel) stream of one purpose for a batch of patients, read in
    one query (:func:`latest_decisions`): what :func:`contact_refusal` asks the ledger, without a query each."""

    def __init__(self, purpose: str, entries: dict[tuple[uuid.UUID, str], ConsentEntry],
                 patients: frozenset[uuid.UUID]) -> None:
        self.purpose = purpose
        self._entries = entries
        self._patients = patients

    def covers(self, patient_id: uuid.UUID, purpose: str) -> bool:
        return purpose == self.purpose and patient_id in self._patients

    def latest(self, patient_id: uuid.UUID, channel: str) -> ConsentEntry | None:
        return self._entries.get((patient_id, channel))


def latest_decisions(session: Session, patient_ids: Iterable[uuid.UUID], *,
                     purpose: str = MESSAGES) -> LatestDecisions:
    """The latest ``purpose`` decision of every channel of these patients (read once; the caller holds their
    locks, so none is recorded meanwhile by anyone else)."""
    wanted = frozenset(patient_ids)
    found: dict[tuple[uuid.UUID, str], ConsentEntry] = {}
    if wanted:
        for entry in session.scalars(select(ConsentEntry).where(ConsentEntry.patient_id.in_(wanted),
                                                                ConsentEntry.purpose == purpose)):
            known = found.get((entry.patient_id, entry.channel))
            if known is None or entry.seq > known.seq:
                found[(entry.patient_id, entry.channel)] = entry
    return LatestDecisions(purpose, found, wanted)


def contact_refusal(session: Session, patient: Patient, channel: str, purpose: str, *,
                    decisions: LatestDecisions | None = None) -> ContactRefusal | None:
    """Say why the clinic may not send ``patient`` a message of ``purpose`` on ``channel`` now, or None if it may.

    The one rule, asked when a message is queued and again just before it is sent (the outbox's
    dispatcher), so that a decision taken in between counts:

    - an opt-out of the channel refuses every purpose;
    - a purpose in :data:`CONSENT_EXEMPT_PURPOSES` needs no consent beyond that;
    - any other needs the channel's consent (given at enrolment; the console, the demo's channel,
      needs none of its own), and the consent ledger's latest decision about messages on the
      channel, when there is one, must not be a withdrawal. A decision about another purpose (call
      recording) or another channel does not count.

    Reachability (a phone, a bound openid) is the channel's business, not this rule's. ``decisions``:
    the ledger's latest decisions, read already for a batch of patients (:func:`latest_decisions`).
    """
    consent = patient.consent_for(channel)
    if consent is not None and consent.opted_out:
        return ContactRefusal.OPTED_OUT
    if purpose in CONSENT_EXEMPT_PURPOSES:
        return None
    if (consent is None and channel != Channel.CONSOLE.value) or (consent is not None and not consent.consented):
        return ContactRefusal.NO_CONSENT
    if decisions is not None and decisions.covers(patient.id, MESSAGES):
        latest = decisions.latest(patient.id, channel)
    else:
        latest = current_consent(session, patient.id, channel=channel, purpose=MESSAGES)
    if latest is not None and not latest.granted:
        return ContactRefusal.CONSENT_WITHDRAWN
    return None
