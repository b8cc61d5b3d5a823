"""The staff work queue."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from care.care_teams import EVERY_PATIENT, OutsideCareTeamError, PatientScope
from care.errors import ConflictError, NotFoundError, Problem, ValidationFailedError
from care.followups import check_outcome
from care.models import Patient, StaffTask, TaskPriority, TaskStatus
from security.audit import Actor, log
from security.fields import clock_of

PRIORITY_ORDER = {TaskPriority.URGENT.value: 0, TaskPriority.HIGH.value: 1, TaskPriority.NORMAL.value: 2}

#: How soon a task is due after it is raised, by priority: an urgent one at once (a red flag, PHQ-9
#: item 9, a referral), a high one within the working morning, a normal one the next day.
DUE_AFTER = {TaskPriority.URGENT.value: timedelta(0), TaskPriority.HIGH.value: timedelta(hours=4),
             TaskPriority.NORMAL.value: timedelta(hours=24)}

#: How a task can end, as staff record it (the code is stored; the labels are what they pick from).
TASK_OUTCOMES: dict[str, tuple[str, str]] = {
    "resolved": ("已处理", "Resolved"),
    "reached_advised": ("已联系，已给建议", "Reached, advice given"),
    "reached_appointment": ("已联系，已预约复诊", "Reached, appointment booked"),
    "referred": ("已转诊", "Referred"),
    "emergency_advised": ("已建议立即就医", "Told to seek emergency care"),
    "not_reached": ("未联系上", "Could not be reached"),
    "wrong_number": ("号码错误", "Wrong number"),
    "declined": ("患者拒绝", "Patient declined"),
    "duplicate": ("重复任务", "Duplicate"),
    "no_action_needed": ("无需处理", "No action needed"),
}


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
            "source_ref": source_ref, "created_at": now, "due_at": now + DUE_AFTER[priority]}


def due_time(task: StaffTask) -> datetime:
    """When ``task`` is due: as set or rescheduled, else by its priority from when it was raised."""
    if task.due_at is not None:
        return task.due_at
    return task.created_at + DUE_AFTER.get(task.priority, DUE_AFTER[TaskPriority.NORMAL.value])


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


def open_tasks(session: Session, *, scope: PatientScope = EVERY_PATIENT, limit: int = 200,
               patient_id: uuid.UUID | None = None) -> list[StaffTask]:
    """Open tasks of the patients in ``scope`` (default: the whole clinic; ``patient_id``: of one patient only),
    urgent first, then by due time."""
    order = case(PRIORITY_ORDER, value=StaffTask.priority, else_=9)
    query = (
        select(StaffTask).where(StaffTask.status != TaskStatus.DONE.value, scope.clause(StaffTask.patient_id),
                                *([StaffTask.patient_id == patient_id] if patient_id is not None else []))
        .order_by(order, func.coalesce(StaffTask.due_at, StaffTask.created_at), StaffTask.created_at).limit(limit)
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


def _task_in_scope(session: Session, task_id: uuid.UUID, scope: PatientScope) -> StaffTask:
    task = session.get(StaffTask, task_id)
    if task is None:
        raise NotFoundError(f"no staff task {task_id}")
    if not scope.permits(session, task.patient_id):
        raise OutsideCareTeamError(task.patient_id, break_glass_possible=False)
    return task


def close_task(session: Session, task_id: uuid.UUID, *, outcome: str, notes: str | None, user_id: uuid.UUID | None,
               actor: Actor, scope: PatientScope) -> StaffTask:
    """Close a task with how it ended (a code of :data:`TASK_OUTCOMES`) and the staff member's notes.

    The closed task stays on the patient's timeline; the audit entry names the outcome, never the notes.

    :raises ValidationFailedError: the outcome is not one of :data:`TASK_OUTCOMES`, or the notes are too long.
    :raises NotFoundError: there is no such task.
    :raises OutsideCareTeamError: the task's patient is outside ``scope``.
    :raises ConflictError: the task is already closed.
    """
    check_outcome(outcome, notes, TASK_OUTCOMES)
    task = _task_in_scope(session, task_id, scope)
    if task.status == TaskStatus.DONE.value:
        raise ConflictError("the task is already closed")
    now = clock_of(session).now()
    task.status = TaskStatus.DONE.value
    task.outcome = outcome
    task.notes = notes.strip() if notes and notes.strip() else None
    task.closed_by = user_id
    task.done_at = now
    if task.acknowledged_at is None:
        task.acknowledged_at, task.acknowledged_by = now, user_id
    log(session, actor=actor, action="task.close", resource_type="staff_task", resource_id=task.id,
        patient_id=task.patient_id, details={"kind": task.kind, "outcome": outcome})
    return task


def reschedule_task(session: Session, task_id: uuid.UUID, *, due_at: datetime, actor: Actor,
                    scope: PatientScope) -> StaffTask:
    """Move an open task's due time (a patient asked to be called back tomorrow, say).

    :raises ValidationFailedError: ``due_at`` has no time zone or is in the past.
    :raises NotFoundError: there is no such task.
    :raises OutsideCareTeamError: the task's patient is outside ``scope``.
    :raises ConflictError: the task is already closed.
    """
    now = clock_of(session).now()
    if due_at.tzinfo is None:
        raise ValidationFailedError([Problem("due", "must carry a time zone")])
    if due_at < now:
        raise ValidationFailedError([Problem("due", "must not be in the past")])
    task = _task_in_scope(session, task_id, scope)
    if task.status == TaskStatus.DONE.value:
        raise ConflictError("the task is already closed")
    task.due_at = due_at
    log(session, actor=actor, action="task.reschedule", resource_type="staff_task", resource_id=task.id,
        patient_id=task.patient_id, details={"kind": task.kind, "due_at": due_at.isoformat()})
    return task
