"""The consent ledger's service: write down a decision, and read what stands.

Every decision is a new row (:class:`care.models.ConsentEntry`), audited; what stands is the
latest row of the stream (patient, channel, purpose). Nothing given is nothing granted: a stream
without rows stands at "not granted". The caller holds the patient's lock (so a stream's ``seq``
cannot be taken twice; the unique constraint refuses it if it were) and commits.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from care.errors import Problem, ValidationFailedError
from care.models import Channel, ConsentEntry, ConsentPurpose, ConsentSource, Patient
from security.audit import Actor, log
from security.fields import clock_of

CHANNELS = frozenset(channel.value for channel in Channel)
PURPOSES = frozenset(purpose.value for purpose in ConsentPurpose)
SOURCES = frozenset(source.value for source in ConsentSource)


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
