"""Patient tags (added by flows, rules or staff)."""

from __future__ import annotations

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
    query = select(PatientTag).where(PatientTag.patient_id == patient.id, PatientTag.tag.matches(session, tag))
    return session.scalars(query).one_or_none()


def add_tag(session: Session, patient: Patient, tag: str, *, source: str, actor: Actor) -> bool:
    """Add ``tag``; False when the patient already had it."""
    tag = _clean(tag)
    if _find(session, patient, tag) is not None:
        return False
    session.add(PatientTag(patient_id=patient.id, tag=tag, source=source, added_at=clock_of(session).now()))
    log(session, actor=actor, action="tag.add", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"source": source})
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


def patients_with_tag(session: Session, tag: str) -> list[Patient]:
    query = select(Patient).join(PatientTag, PatientTag.patient_id == Patient.id).where(
        PatientTag.tag.matches(session, _clean(tag))
    )
    return list(session.scalars(query))
