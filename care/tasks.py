"""The staff work queue."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, selectinload

from care.care_teams import EVERY_PATIENT, OutsideCareTeamError, PatientScope
from care.clinical.common import Label
from care.errors import ConflictError, NotFoundError, Problem, ValidationFailedError
from care.followups import check_outcome
from care.indicator_table import display_name
from care.models import Channel, FlowResult, Observation, Patient, StaffTask, TaskPriority, TaskStatus, User
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
class Evidence:
    """What raised a task: a patient's message, a reading, or an answer of a conversation."""

    kind: str  # "message", "reading" or "answer"
    name: Label  # the indicator or result (empty for a message)
    value: str
    unit: str = ""
    at: datetime | None = None


@dataclass(frozen=True)
class QueueItem:
    """One open task as staff see it: the patient to call (decrypted), why the task exists, when it is due."""

    task: StaffTask
    card_no: str
    name: str
    note: dict[str, str]
    is_test: bool = False
    phone: str = ""
    language: str = "zh"
    #: the first channel the patient may be reached on, in the clinic's order (None: none usable)
    channel: str | None = None
    due_at: datetime | None = None
    evidence: tuple[Evidence, ...] = ()
    acknowledged_by: str | None = None


#: The order in which a patient's channels are tried (``care.followups.DEFAULT_ORDER``).
CHANNEL_ORDER = (Channel.WECHAT.value, Channel.SMS.value, Channel.VOICE.value)
#: At most this many answers of a conversation are shown as a task's reason.
ANSWERS_SHOWN = 12


def preferred_channel(patient: Patient) -> str | None:
    """Return the first channel the patient consented to and has an address on, in :data:`CHANNEL_ORDER`."""
    for channel in CHANNEL_ORDER:
        consent = patient.consent_for(channel)
        if consent is None or not consent.usable:
            continue
        if channel == Channel.WECHAT.value and not patient.wechat_openid:
            continue
        if channel != Channel.WECHAT.value and not patient.phone:
            continue
        return channel
    return None


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def task_evidence(session: Session, tasks: Sequence[StaffTask]) -> dict[uuid.UUID, tuple[Evidence, ...]]:
    """Return, for each task, what raised it: the patient's messages, the reading, the conversation's answers.

    A task's details name them (``message``/``messages``, ``observation_id``, ``session_id``); the
    readings and answers of every task are read in one query each.
    """
    observation_ids: dict[uuid.UUID, uuid.UUID] = {}
    session_ids: dict[uuid.UUID, uuid.UUID] = {}
    for task in tasks:
        details = task.details or {}
        for key, ids in (("observation_id", observation_ids), ("session_id", session_ids)):
            try:
                ids[task.id] = uuid.UUID(str(details[key]))
            except (KeyError, ValueError):
                continue
    readings = ({row.id: row for row in session.scalars(
        select(Observation).where(Observation.id.in_(set(observation_ids.values()))))} if observation_ids else {})
    answers: dict[uuid.UUID, list[FlowResult]] = {}
    if session_ids:
        for result in session.scalars(select(FlowResult).where(FlowResult.session_id.in_(set(session_ids.values())))
                                      .order_by(FlowResult.recorded_at, FlowResult.id)):
            if result.session_id is not None:
                answers.setdefault(result.session_id, []).append(result)
    evidence: dict[uuid.UUID, tuple[Evidence, ...]] = {}
    for task in tasks:
        details = task.details or {}
        found: list[Evidence] = []
        messages = details.get("messages") or ([{"message": details["message"]}] if details.get("message") else [])
        for entry in messages if isinstance(messages, list) else []:
            if isinstance(entry, dict) and entry.get("message"):
                at = entry.get("at")
                try:
                    when = datetime.fromisoformat(at) if isinstance(at, str) else None
                except ValueError:
                    when = None
                found.append(Evidence("message", Label("", ""), str(entry["message"]), at=when))
        reading = readings.get(observation_ids[task.id]) if task.id in observation_ids else None
        if reading is not None:
            value = reading.value if reading.value is not None else reading.value_text
            found.append(Evidence("reading", display_name(reading.code) or Label(reading.code, reading.code),
                                  _text(value) if value is not None else "", reading.unit, reading.effective_at))
        results = answers.get(session_ids[task.id], []) if task.id in session_ids else []
        for result in results[:ANSWERS_SHOWN]:
            shown = result.label or (_text(result.value) if result.value is not None else "")
            found.append(Evidence("answer", Label(result.name, result.name), shown, result.unit or "",
                                  result.recorded_at))
        evidence[task.id] = tuple(found)
    return evidence


def work_queue(session: Session, *, actor: Actor, scope: PatientScope, limit: int = 200) -> list[QueueItem]:
    """Return the open tasks (urgent first) of the patients in ``scope`` with whom each concerns and what
    raised it; audit every patient shown.

    A staff member's scope (``care.care_teams.scope_of``) holds their care teams' patients only.
    Showing a name, phone, card number, task note or the reading behind a task decrypts PHI, so
    each patient on the page gets one ``patient.view`` entry naming the staff member who looked.
    """
    items: list[QueueItem] = []
    seen: set[uuid.UUID] = set()
    tasks = open_tasks(session, scope=scope, limit=limit)
    # One query for every patient on the page (with their consents); each task's many-to-one then finds it loaded.
    list(session.scalars(select(Patient).where(Patient.id.in_({task.patient_id for task in tasks}))
                         .options(selectinload(Patient.consents))))
    evidence = task_evidence(session, tasks)
    takers = {user.id: user.display_name or user.email for user in session.scalars(
        select(User).where(User.id.in_({task.acknowledged_by for task in tasks if task.acknowledged_by})))}
    for task in tasks:
        patient = task.patient
        note = (task.details or {}).get("note")
        items.append(QueueItem(task=task, card_no=patient.card_no or "", name=patient.name or "",
                               note={str(k): str(v) for k, v in note.items()} if isinstance(note, dict) else {},
                               is_test=patient.is_test, phone=patient.phone or "", language=patient.language,
                               channel=preferred_channel(patient), due_at=due_time(task),
                               evidence=evidence.get(task.id, ()),
                               acknowledged_by=takers.get(task.acknowledged_by) if task.acknowledged_by else None))
        if patient.id not in seen:
            seen.add(patient.id)
            log(session, actor=actor, action="patient.view", resource_type="patient", resource_id=patient.id,
                patient_id=patient.id, details={"view": "work_queue"})
    return items


def urgent_count(session: Session, *, scope: PatientScope) -> int:
    """Count the open urgent tasks of the patients in ``scope`` (shown on every page; nothing is decrypted)."""
    return int(session.scalar(select(func.count()).select_from(StaffTask).where(
        StaffTask.status != TaskStatus.DONE.value, StaffTask.priority == TaskPriority.URGENT.value,
        scope.clause(StaffTask.patient_id))) or 0)


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
