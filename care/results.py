"""Saving conversation results into the record."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from care.models import FlowResult, Patient
from security.audit import Actor, log
from security.fields import clock_of


def save_result(
    session: Session, patient: Patient, *, flow_id: str, flow_version: int, name: str, value: Any,
    category: str | None, label: str | None = None, code: str | None = None, unit: str | None = None,
    session_id: uuid.UUID | None = None, actor: Actor,
) -> FlowResult:
    """Store one answer or computed value (encrypted) with its category."""
    result = FlowResult(
        patient_id=patient.id, session_id=session_id, flow_id=flow_id, flow_version=flow_version, name=name,
        value=value, label=label, category=category, code=code, unit=unit, recorded_at=clock_of(session).now(),
    )
    session.add(result)
    log(session, actor=actor, action="result.save", resource_type="flow_result", resource_id=result.id,
        patient_id=patient.id, details={"flow": flow_id, "name": name})
    return result


def results_of(session: Session, patient: Patient, *, session_id: uuid.UUID | None = None) -> list[FlowResult]:
    query = select(FlowResult).where(FlowResult.patient_id == patient.id)
    if session_id is not None:
        query = query.where(FlowResult.session_id == session_id)
    return list(session.scalars(query.order_by(FlowResult.recorded_at, FlowResult.name)))
