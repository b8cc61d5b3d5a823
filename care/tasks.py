"""The staff work queue."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from care.models import Patient, StaffTask, TaskPriority, TaskStatus
from security.audit import Actor, log
from security.fields import clock_of

PRIORITY_ORDER = {TaskPriority.URGENT.value: 0, TaskPriority.HIGH.value: 1, TaskPriority.NORMAL.value: 2}


def create_task(
    session: Session, patient: Patient, *, kind: str, priority: str, reason: str,
    details: dict[str, Any] | None = None, source_ref: str | None = None, actor: Actor,
) -> StaffTask:
    """Put a task on the work queue (never delayed, never batched)."""
    if priority not in PRIORITY_ORDER:
        raise ValueError(f"unknown priority {priority!r}")
    task = StaffTask(
        patient_id=patient.id, kind=kind, priority=priority, status=TaskStatus.OPEN.value, reason=reason,
        details=details or {}, source_ref=source_ref, created_at=clock_of(session).now(),
    )
    session.add(task)
    log(session, actor=actor, action="task.create", resource_type="staff_task", resource_id=task.id,
        patient_id=patient.id, details={"kind": kind, "priority": priority})
    return task


def open_tasks(session: Session, *, limit: int = 200) -> list[StaffTask]:
    """Open tasks, urgent first, oldest first within a priority."""
    order = case(PRIORITY_ORDER, value=StaffTask.priority, else_=9)
    query = (
        select(StaffTask).where(StaffTask.status != TaskStatus.DONE.value)
        .order_by(order, StaffTask.created_at).limit(limit)
    )
    return list(session.scalars(query))


def tasks_of(session: Session, patient: Patient) -> list[StaffTask]:
    return list(session.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)
                                .order_by(StaffTask.created_at)))
