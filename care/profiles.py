"""The health profile: history, family history, allergies, medications, lifestyle."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from care.errors import Problem, ValidationFailedError
from care.models import HealthProfile, Patient
from care.profile_fields import PROFILE_FIELDS
from care.reevaluation import request_at_commit
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


def set_profile_field(session: Session, patient: Patient, name: str, value: Any, *, actor: Actor) -> None:
    """Set the profile field ``name`` (one of :data:`care.profile_fields.PROFILE_FIELDS`) to ``value``.

    Raises :class:`ValidationFailedError` for a name that is not a profile field or a value of the
    wrong kind; nothing is changed then.
    """
    known = PROFILE_FIELDS.get(name)
    if known is None:
        raise ValidationFailedError([Problem("field", f"{name!r} is not a profile field")])
    if not known.accepts(value):
        raise ValidationFailedError([Problem("field", f"{name!r} takes a {known.kind} value")])
    profile = profile_of(session, patient)
    content = dict(getattr(profile, known.section) or {})
    content[name] = value
    setattr(profile, known.section, content)
    profile.updated_at = clock_of(session).now()
    # The section only: a field's name can itself say what the patient has (``allergies.penicillin``).
    log(session, actor=actor, action="profile.update", resource_type="health_profile", resource_id=profile.id,
        patient_id=patient.id, details={"section": known.section})
    request_at_commit(session, patient.id, reason="profile")
