"""Saving conversation results into the record."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from care.models import FlowResult, Patient
from security.audit import Actor, log
from security.fields import clock_of


def result_record(
    patient_id: uuid.UUID, *, flow_id: str, flow_version: int, name: str, value: Any, category: str | None,
    label: str | None = None, code: str | None = None, unit: str | None = None, session_id: uuid.UUID | None = None,
    now: datetime,
) -> dict[str, Any]:
    """A new :class:`FlowResult`'s attribute values (its id made here), for an object or a bulk INSERT."""
    return {"id": uuid.uuid4(), "patient_id": patient_id, "session_id": session_id, "flow_id": flow_id,
            "flow_version": flow_version, "name": name, "value": value, "label": label, "category": category,
            "code": code, "unit": unit, "recorded_at": now}


def result_audit(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit trail says of a saved result (ids and names only, never the value)."""
    return {"action": "result.save", "resource_type": "flow_result", "resource_id": record["id"],
            "patient_id": record["patient_id"], "details": {"flow": record["flow_id"], "name": record["name"]}}


def save_result(
    session: Session, patient: Patient, *, flow_id: str, flow_version: int, name: str, value: Any,
    category: str | None, label: str | None = None, code: str | None = None, unit: str | None = None,
    session_id: uuid.UUID | None = None, actor: Actor,
) -> FlowResult:
    """Store one answer or computed value (encrypted) with its category."""
    record = result_record(patient.id, flow_id=flow_id, flow_version=flow_version, name=name, value=value,
                           category=category, label=label, code=code, unit=unit, session_id=session_id,
                           now=clock_of(session).now())
    result = FlowResult(**record)
    session.add(result)
    log(session, actor=actor, **result_audit(record))
    return result


def results_of(session: Session, patient: Patient, *, session_id: uuid.UUID | None = None) -> list[FlowResult]:
    query = select(FlowResult).where(FlowResult.patient_id == patient.id)
    if session_id is not None:
        query = query.where(FlowResult.session_id == session_id)
    return list(session.scalars(query.order_by(FlowResult.recorded_at, FlowResult.name)))
