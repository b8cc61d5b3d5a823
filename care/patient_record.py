"""A patient's record as the panel's patient page shows it: cards, profile, tags and where they came from,
observations, trends, follow-up records and the tasks' timeline.

Nothing here checks who may look or audits the look: :func:`care.directory.patient_page` does both
before it asks for the record. Every list is cut in SQL to what a page shows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from care.clinical.common import Label, format_number
from care.clinical.trends import Trend
from care.indicator_table import display_name
from care.indicators import patient_trends
from care.models import Card, FollowUp, Observation, Patient, StaffTask, TagDefinition, TagRule, User
from care.models.patient import PROFILE_SECTIONS
from care.tags import TagOrigin, tag_rows_of
from care.tasks import due_time

#: The newest observations the page lists (the trends draw all of them).
OBSERVATIONS_SHOWN = 100
#: The newest follow-ups and tasks the page lists.
FOLLOWUPS_SHOWN = 50
TASKS_SHOWN = 100


@dataclass(frozen=True)
class TagView:
    """One of the patient's tags and where it came from: a rule (name, version), a staff member, a flow."""

    tag: str
    kind: str  # rule, staff, flow, or another source's kind
    origin: str  # the rule's name, the staff member's name, the flow's id
    version: int | None
    added_at: datetime
    pinned: bool
    colour: str | None


@dataclass(frozen=True)
class ObservationRow:
    """One observation as listed: when, which indicator, the value as it was stored, and its source."""

    effective_at: datetime
    code: str
    name: Label | None
    value: str
    unit: str
    source: str
    recognised: bool


@dataclass(frozen=True)
class TaskEntry:
    """One task on the timeline, open or closed, with who took it in hand and who closed it."""

    task: StaffTask
    due_at: datetime
    acknowledged_by: str | None
    closed_by: str | None


@dataclass(frozen=True)
class FollowUpEntry:
    """One follow-up and the staff part of its record."""

    followup: FollowUp
    staff: str | None


@dataclass(frozen=True)
class PatientRecord:
    """What the patient page shows of the record (besides who the patient is)."""

    cards: list[Card]
    profile: dict[str, dict[str, str]]
    tags: list[TagView]
    observations: list[ObservationRow]
    observation_count: int
    trends: list[Trend]  # those with at least two values
    followups: list[FollowUpEntry]
    tasks: list[TaskEntry]


def _staff_names(session: Session, ids: set[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {staff_id for staff_id in ids if staff_id is not None}
    if not wanted:
        return {}
    users = session.scalars(select(User).where(User.id.in_(wanted)))
    return {user.id: user.display_name or user.email for user in users}


def tag_views(session: Session, patient: Patient) -> list[TagView]:
    """Return the patient's tags by name, each naming the rule and version, staff member or flow that set it."""
    rows = tag_rows_of(session, patient.id)
    origins = {row.id: TagOrigin.parse(row.source) for row in rows}
    rule_ids = {rule_id for origin in origins.values() if (rule_id := origin.rule_id()) is not None}
    rules = ({rule.id: rule.name for rule in session.scalars(select(TagRule).where(TagRule.id.in_(rule_ids)))}
             if rule_ids else {})
    staff_ids: set[uuid.UUID | None] = set()
    for origin in origins.values():
        if origin.kind == "staff":
            try:
                staff_ids.add(uuid.UUID(origin.ref))
            except ValueError:
                continue
    staff = _staff_names(session, staff_ids)
    colours = {definition.name: definition.colour for definition in session.scalars(select(TagDefinition))}
    views = []
    for row in rows:
        origin, tag = origins[row.id], row.tag or ""
        if origin.kind == "rule":
            rule_id = origin.rule_id()
            name = rules.get(rule_id, origin.ref) if rule_id is not None else origin.ref
        elif origin.kind == "staff":
            try:
                name = staff.get(uuid.UUID(origin.ref), origin.ref)
            except ValueError:
                name = origin.ref
        else:
            name = origin.ref
        views.append(TagView(tag, origin.kind, name, origin.version, row.added_at, row.pinned, colours.get(tag)))
    return sorted(views, key=lambda view: view.tag)


def _value_text(observation: Observation) -> str:
    value = observation.value
    if value is None:
        return observation.value_text or ""
    return format_number(value, 0) if float(value).is_integer() else f"{value:g}"


def observation_rows(session: Session, patient: Patient, *, limit: int = OBSERVATIONS_SHOWN) -> list[ObservationRow]:
    """Return the patient's newest ``limit`` observations, newest first (results kept as they came included)."""
    query = (select(Observation).where(Observation.patient_id == patient.id)
             .order_by(Observation.effective_at.desc(), Observation.recorded_at.desc(), Observation.id).limit(limit))
    return [ObservationRow(row.effective_at, row.code, display_name(row.code) or (Label(row.display, row.display)
                                                                                 if row.display else None),
                           _value_text(row), row.unit, row.source, row.recognised)
            for row in session.scalars(query)]


def profile_of(patient: Patient) -> dict[str, dict[str, str]]:
    """Return the health profile's sections that hold facts, each fact as text."""
    profile = patient.profile
    if profile is None:
        return {}
    sections: dict[str, dict[str, str]] = {}
    for section in PROFILE_SECTIONS:
        facts = getattr(profile, section) or {}
        if isinstance(facts, dict) and facts:
            sections[section] = {str(name): _fact_text(value) for name, value in sorted(facts.items())}
    return sections


def _fact_text(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def task_timeline(session: Session, patient: Patient, *, limit: int = TASKS_SHOWN) -> list[TaskEntry]:
    """Return the patient's tasks, open and closed, newest first, with the staff who handled them."""
    tasks = list(session.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)
                                 .order_by(StaffTask.created_at.desc(), StaffTask.id).limit(limit)))
    names = _staff_names(session, {task.acknowledged_by for task in tasks} | {task.closed_by for task in tasks})
    return [TaskEntry(task, due_time(task),
                      names.get(task.acknowledged_by) if task.acknowledged_by else None,
                      names.get(task.closed_by) if task.closed_by else None) for task in tasks]


def followup_entries(session: Session, patient: Patient, *, limit: int = FOLLOWUPS_SHOWN) -> list[FollowUpEntry]:
    """Return the patient's follow-ups, the latest due first, with the staff member who recorded each."""
    followups = list(session.scalars(select(FollowUp).where(FollowUp.patient_id == patient.id)
                                     .order_by(FollowUp.due_at.desc(), FollowUp.id).limit(limit)))
    names = _staff_names(session, {followup.staff_id for followup in followups})
    return [FollowUpEntry(followup, names.get(followup.staff_id) if followup.staff_id else None)
            for followup in followups]


def patient_record(session: Session, patient: Patient) -> PatientRecord:
    """Gather what the patient page shows of ``patient``'s record (the caller checked access and audits)."""
    count = int(session.scalar(select(func.count()).select_from(Observation)
                               .where(Observation.patient_id == patient.id)) or 0)
    cards = list(session.scalars(select(Card).where(Card.patient_id == patient.id).order_by(Card.issued_on.desc())))
    return PatientRecord(
        cards=cards, profile=profile_of(patient), tags=tag_views(session, patient),
        observations=observation_rows(session, patient), observation_count=count,
        # A line needs two points; a single value is in the observations table.
        trends=[trend for trend in patient_trends(session, patient) if len(trend.points) > 1],
        followups=followup_entries(session, patient),
        tasks=task_timeline(session, patient),
    )


def trend_of(session: Session, patient: Patient, code: str) -> Trend | None:
    """Return the trend of the indicator ``code`` of ``patient``, or None when they have no values of it."""
    return next((trend for trend in patient_trends(session, patient) if trend.code == code), None)
