"""Recording and reading observations (results, readings, scores)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from care.errors import Problem, ValidationFailedError
from care.models import Observation, Patient
from care.pending import flushing_only_for
from security.audit import Actor, log
from security.fields import clock_of


def observation_record(
    patient_id: uuid.UUID,
    *,
    code: str,
    value: float | None,
    unit: str,
    effective_at: datetime,
    source: str,
    source_ref: str | None = None,
    value_text: str | None = None,
    now: datetime,
) -> dict[str, Any]:
    """A new :class:`Observation`'s attribute values (its id made here), checked.

    Raises:
        ValidationFailedError: the code, value or time cannot be recorded.
    """
    problems = []
    if not code or len(code) > 32:
        problems.append(Problem("code", "must be a LOINC code or short code of at most 32 characters"))
    if value is None and not value_text:
        problems.append(Problem("value", "is required"))
    if value is not None and (isinstance(value, bool) or not math.isfinite(value)):
        problems.append(Problem("value", "must be a finite number"))
    if effective_at.tzinfo is None:
        problems.append(Problem("effective_at", "must carry a time zone"))
    if problems:
        raise ValidationFailedError(problems)
    return {"id": uuid.uuid4(), "patient_id": patient_id, "code": code, "value": value, "value_text": value_text,
            "unit": unit, "effective_at": effective_at, "source": source, "source_ref": source_ref,
            "recorded_at": now, "recognised": True}


def observation_audit(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit trail says of a new observation (its code and source, never the value)."""
    return {"action": "observation.create", "resource_type": "observation", "resource_id": record["id"],
            "patient_id": record["patient_id"], "details": {"code": record["code"], "source": record["source"]}}


def record_observation(
    session: Session,
    patient: Patient,
    *,
    code: str,
    value: float | None,
    unit: str,
    effective_at: datetime,
    source: str,
    actor: Actor,
    source_ref: str | None = None,
    value_text: str | None = None,
    audit: bool = True,
) -> Observation:
    """Add one observation to the patient's record (the value is encrypted under the patient's key)."""
    record = observation_record(patient.id, code=code, value=value, unit=unit, effective_at=effective_at,
                                source=source, source_ref=source_ref, value_text=value_text,
                                now=clock_of(session).now())
    observation = Observation(patient=patient, **record)
    session.add(observation)
    if audit:
        log(session, actor=actor, **observation_audit(record))
    return observation


def observations_of(
    session: Session, patient: Patient, codes: Iterable[str] | None = None, *, kept_too: bool = False
) -> list[Observation]:
    """The patient's observations, oldest first (optionally only some codes).

    Results kept as they came (``recognised`` False: a code outside the indicator table, a value
    its indicator does not take) are left out unless ``kept_too``: whatever computes on the record
    (trends, risk, rules) never sees them; the record's display and exports ask for them.
    """
    query = select(Observation).where(Observation.patient_id == patient.id)
    if not kept_too:
        query = query.where(Observation.recognised.is_(True))
    if codes is not None:
        query = query.where(Observation.code.in_(list(codes)))
    return list(session.scalars(query.order_by(Observation.effective_at, Observation.recorded_at)))


def latest_values(session: Session, patient: Patient) -> dict[str, Observation]:
    """The newest recognised observation of each code (one query; only those rows are read and decrypted).

    What flows and rules see of the record: results kept as they came are left out.
    """
    newest_first = func.row_number().over(
        partition_by=Observation.code, order_by=(Observation.effective_at.desc(), Observation.recorded_at.desc())
    )
    ranked = (
        select(Observation.id, newest_first.label("rank"))
        .where(Observation.patient_id == patient.id, Observation.recognised.is_(True)).subquery()
    )
    query = select(Observation).join(ranked, Observation.id == ranked.c.id).where(ranked.c.rank == 1)
    with flushing_only_for(session, Observation):
        return {observation.code: observation for observation in session.scalars(query)}
