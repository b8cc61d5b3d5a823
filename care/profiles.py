"""The health profile: history, family history, allergies, medications, lifestyle."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from care.errors import Problem, ValidationFailedError
from care.models import PROFILE_SECTIONS, HealthProfile, Patient
from security.audit import Actor, log
from security.fields import clock_of


def profile_of(session: Session, patient: Patient) -> HealthProfile:
    """The patient's profile, created empty on first use."""
    if patient.profile is None:
        now = clock_of(session).now()
        patient.profile = HealthProfile(
            patient_id=patient.id, history={}, family_history={}, allergies={}, medications={}, lifestyle={},
            created_at=now, updated_at=now,
        )
    return patient.profile


def set_profile_field(session: Session, patient: Patient, path: str, value: Any, *, actor: Actor) -> None:
    """Set ``section.name`` (e.g. ``lifestyle.smoking``) to ``value`` (JSON-compatible)."""
    section, _, name = path.partition(".")
    if section not in PROFILE_SECTIONS or not name:
        raise ValidationFailedError(
            [Problem("field", f"{path!r} is not <section>.<name> with section one of {', '.join(PROFILE_SECTIONS)}")]
        )
    profile = profile_of(session, patient)
    content = dict(getattr(profile, section) or {})
    content[name] = value
    setattr(profile, section, content)
    profile.updated_at = clock_of(session).now()
    # The section only: a field's name can itself say what the patient has (``allergies.penicillin``).
    log(session, actor=actor, action="profile.update", resource_type="health_profile", resource_id=profile.id,
        patient_id=patient.id, details={"section": section})
