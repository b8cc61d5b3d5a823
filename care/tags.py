"""Patient tags (added by flows, rules or staff).

A tag's index is per patient (``PatientTag.tag``), so a patient's own tag is found through the
patient, and the patients who have a tag by one query over the tags' ``(patient, index)`` pairs,
each checked against the tag's trapdoor (:func:`patient_ids_with_tag`).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from care.errors import Problem, ValidationFailedError
from care.models import Patient, PatientTag
from security.audit import Actor, log
from security.fields import clock_of

MAX_TAG = 64

def _clean(tag: str) -> str:
    cleaned = tag.strip().lower()
    if not cleaned or len(cleaned) > MAX_TAG:
        raise ValidationFailedError([Problem("tag", f"must be 1-{MAX_TAG} characters")])
    return cleaned


def tags_of(session: Session, patient: Patient) -> set[str]:
    rows = session.scalars(select(PatientTag).where(PatientTag.patient_id == patient.id))
    return {row.tag for row in rows if row.tag}


def _find(session: Session, patient: Patient, tag: str) -> PatientTag | None:
    query = select(PatientTag).where(PatientTag.patient_id == patient.id,
                                     PatientTag.tag.matches(session, tag, owner_id=patient.id))
    return session.scalars(query).one_or_none()


def source_kind(source: str) -> str:
    """What kind of thing added a tag (``flow``, ``rule``, ``staff``): ``flow:phq9`` says which screening did."""
    return source.split(":", 1)[0][:32]


def add_tag(session: Session, patient: Patient, tag: str, *, source: str, actor: Actor) -> bool:
    """Add ``tag``; False when the patient already had it."""
    tag = _clean(tag)
    if _find(session, patient, tag) is not None:
        return False
    session.add(PatientTag(patient_id=patient.id, tag=tag, source=source, added_at=clock_of(session).now()))
    # The audit trail is in clear: it names the kind of source, not the flow whose answers set the tag.
    log(session, actor=actor, action="tag.add", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"source": source_kind(source)})
    return True


def remove_tag(session: Session, patient: Patient, tag: str, *, actor: Actor) -> bool:
    """Remove ``tag``; False when the patient did not have it."""
    found = _find(session, patient, _clean(tag))
    if found is None:
        return False
    session.delete(found)
    log(session, actor=actor, action="tag.remove", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id)
    return True


def patient_ids_with_tag(session: Session, tag: str) -> list[uuid.UUID]:
    """Return the ids of the patients who have ``tag``, in one query.

    The query reads each tag row's patient and index (the unique index on both covers it); the
    tag's trapdoor, computed once, tells which rows hold ``tag``, at one HMAC a row.
    """
    return PatientTag.tag.owners_with(session, _clean(tag), PatientTag.patient_id)
