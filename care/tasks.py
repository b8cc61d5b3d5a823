"""The staff work queue."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from care.care_teams import EVERY_PATIENT, OutsideCareTeamError, PatientScope
from care.errors import ConflictError, NotFoundError
from care.models import Patient, StaffTask, TaskPriority, TaskStatus
from security.audit import Actor, log
from security.fields import clock_of

PRIORITY_ORDER = {TaskPriority.URGENT.value: 0, TaskPriority.HIGH.value: 1, TaskPriority.NORMAL.value: 2}


def task_record(
    patient_id: uuid.UUID, *, kind: str, priority: str, reason: str, details: Mapping[str, Any] | None = None,
    source_ref: str | None = None, now: datetime,
) -> dict[str, Any]:
    """A new open :class:`StaffTask`'s attribute values (its id made here), for an object or a turn's rows.

    Raises:
        ValueError: ``priority`` is not one of the queue's priorities.
    """
    if priority not in PRIORITY_ORDER:
        raise ValueError(f"unknown priority {priority!r}")
    return {"id": uuid.uuid4(), "patient_id": patient_id, "kind": kind, "priority": priority,
            "status": TaskStatus.OPEN.value, "reason": reason, "details": dict(details or {}),
            "source_ref": source_ref, "created_at": now}


def task_audit(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit trail says of a new task (its kind and priority, never the reason or the note)."""
    return {"action": "task.create", "resource_type": "staff_task", "resource_id": record["id"],
            "patient_id": record["patient_id"], "details": {"kind": record["kind"], "priority": record["priority"]}}


def create_task(
    session: Session, patient: Patient, *, kind: str, priority: str, reason: str,
    details: dict[str, Any] | None = None, source_ref: str | None = None, actor: Actor,
) -> StaffTask:
    """Put a task on the work queue (never delayed, never batched)."""
    record = task_record(patient.id, kind=kind, priority=priority, reason=reason, details=details,
                         source_ref=source_ref, now=clock_of(session).now())
    task = StaffTask(**record)
    session.add(task)
    log(session, actor=actor, **task_audit(record))
    return task


def open_tasks(session: Session, *, scope: PatientScope = EVERY_PATIENT, limit: int = 200) -> list[StaffTask]:
    """Open tasks of the patients in ``scope`` (default: the whole clinic), urgent first, oldest first within a
    priority."""
    order = case(PRIORITY_ORDER, value=StaffTask.priority, else_=9)
    query = (
        select(StaffTask).where(StaffTask.status != TaskStatus.DONE.value, scope.clause(StaffTask.patient_id))
        .order_by(order, StaffTask.created_at).limit(limit)
    )
    return list(session.scalars(query))


@dataclass(frozen=True)
class QueueItem:
    """One open task as staff see it, with the patient's card number and name decrypted."""

    task: StaffTask
    card_no: str
    name: str
    note: dict[str, str]
    is_test: bool = False


def work_queue(session: Session, *, actor: Actor, scope: PatientScope, limit: int = 200) -> list[QueueItem]:
    """Return the open tasks (urgent first) of the patients in ``scope`` with whom each concerns; audit every
    patient shown.

    A staff member's scope (``care.care_teams.scope_of``) holds their care teams' patients only.
    Showing a name, card number or task note decrypts PHI, so each patient on the page gets one
    ``patient.view`` entry naming the staff member who looked.
    """
    items: list[QueueItem] = []
    seen: set[uuid.UUID] = set()
    tasks = open_tasks(session, scope=scope, limit=limit)
    # One query for every patient on the page; each task's many-to-one then finds its patient loaded.
    list(session.scalars(select(Patient).where(Patient.id.in_({task.patient_id for task in tasks}))))
    for task in tasks:
        patient = task.patient
        note = (task.details or {}).get("note")
        items.append(QueueItem(task=task, card_no=patient.card_no or "", name=patient.name or "",
                               note={str(k): str(v) for k, v in note.items()} if isinstance(note, dict) else {},
                               is_test=patient.is_test))
        if patient.id not in seen:
            seen.add(patient.id)
            log(session, actor=actor, action="patient.view", resource_type="patient", resource_id=patient.id,
                patient_id=patient.id, details={"view": "work_queue"})
    return items


def acknowledge_task(session: Session, task_id: uuid.UUID, *, user_id: uuid.UUID, actor: Actor,
                     scope: PatientScope) -> StaffTask:
    """Mark an open task as taken in hand by a staff member (a second acknowledgement changes nothing).

    :raises NotFoundError: there is no such task.
    :raises OutsideCareTeamError: the task's patient is outside ``scope`` (the staff member's care teams).
    :raises ConflictError: the task is already done.
    """
    task = session.get(StaffTask, task_id)
    if task is None:
        raise NotFoundError(f"no staff task {task_id}")
    if not scope.permits(session, task.patient_id):
        raise OutsideCareTeamError(task.patient_id, break_glass_possible=False)
    if task.status == TaskStatus.DONE.value:
        raise ConflictError("the task is already done")
    if task.status == TaskStatus.OPEN.value:
        task.status = TaskStatus.ACKNOWLEDGED.value
        task.acknowledged_at = clock_of(session).now()
        task.acknowledged_by = user_id
        log(session, actor=actor, action="task.acknowledge", resource_type="staff_task", resource_id=task.id,
            patient_id=task.patient_id, details={"kind": task.kind, "priority": task.priority})
    return task
