"""Plans in the database: publish a version, enrol and leave, re-time, and what tags and events start.

* :func:`add_plan` stores a checked definition as a new version; a new version re-times the future
  rows of every enrolled patient (:func:`retime_plan`).
* :func:`enrol` puts a patient in a plan (by hand, by tag, by event: once per transition, a patient
  already in the plan stays as they are) and schedules its steps' first occurrences; :func:`leave`
  ends the enrolment and cancels the rows not yet acted on.
* Each occurrence is a :class:`~care.models.FollowUp` row naming its plan, version, step, occurrence
  and the enrolment's ``fire_version``. Re-timing (:func:`retime_enrolment`) bumps the enrolment's
  ``fire_version`` and moves its rows in place; a row left with an older ``fire_version`` is a no-op
  when due. A row the new timing puts more than the grace (default 24 h) in the past is marked
  skipped ("missed"), never sent: re-publishing a plan never sends a flood.
* A recurring step has one row ahead: the worker schedules the next occurrence when it first acts
  on one (:func:`schedule_next`).
"""

from __future__ import annotations

import uuid
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from care.errors import ConflictError, NotFoundError
from care.models import (
    PROFILE_SECTIONS,
    CheckupReport,
    EnrolmentStatus,
    FollowUp,
    FollowUpStatus,
    Patient,
    PatientTag,
    Plan,
    PlanEnrolment,
    PlanVersion,
)
from care.plans.definition import PROGRAM_PLAN_PREFIX, PlanDefinition, Step, from_dict, parse_plan
from care.plans.timing import due_at, first_occurrence
from security.audit import Actor, log
from security.fields import clock_of

DEFAULT_GRACE = timedelta(hours=24)
DEFAULT_ZONE = "Asia/Shanghai"
PLANS_ACTOR = Actor("system", "plans", "worker")
#: Rows not yet acted on: what re-timing moves and leaving cancels.
PENDING = (FollowUpStatus.SCHEDULED.value, FollowUpStatus.DUE.value)
_CACHE = "careloop.plan_definitions"
#: The plans made from an intervention program (:mod:`care.interventions`, named ``PROGRAM_PLAN_PREFIX`` +
#: the program's id): only the program publishes them and puts patients in and out (source ``intervention:<id>``).
PROGRAM_SOURCE = "intervention:"
PROGRAM_LEAVE_REASON = "intervention_end"


def _program_plan(key: str) -> bool:
    return key.startswith(PROGRAM_PLAN_PREFIX)


def _not_by_hand(key: str) -> ConflictError:
    program = key.removeprefix(PROGRAM_PLAN_PREFIX)
    return ConflictError(f"plan {key!r} carries out the intervention program {program!r}: "
                         f"use careloop interventions start|end|add")


def zone_of(patient: Patient) -> tzinfo:
    try:
        return ZoneInfo(patient.timezone or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


# -- publishing -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Published:
    plan: Plan
    definition: PlanDefinition
    change: str  # "added", "new version", "unchanged"
    moved: int = 0


def add_plan(session: Session, text: str, *, flow_ids: Container[str], actor: Actor, source: str = "plan",
             grace: timedelta = DEFAULT_GRACE, content_ids: Container[str] | None = None) -> Published:
    """Store the plan in ``text`` (a new plan, or a new version of one); re-time enrolled patients' rows.

    :raises care.plans.PlanInvalidError: the file's problems, each with its line and field.
    :raises ConflictError: the version is not higher than the stored one (and the content differs).
    """
    definition = parse_plan(text, flow_ids=flow_ids, source=source, content_ids=content_ids)
    if _program_plan(definition.id) and not source.startswith(PROGRAM_SOURCE):
        raise _not_by_hand(definition.id)
    now = clock_of(session).now()
    plan = session.scalars(select(Plan).where(Plan.key == definition.id)).one_or_none()
    if plan is not None:
        if definition.version <= plan.version:
            stored = _definition(session, plan, definition.version)
            if stored is not None and stored.as_dict() == definition.as_dict():
                return Published(plan, definition, "unchanged")
            raise ConflictError(f"plan {plan.key!r} is at version {plan.version}: give this one a higher version")
        change = "new version"
    else:
        plan = Plan(key=definition.id, created_at=now, version=definition.version)
        session.add(plan)
        change = "added"
    plan.title_zh, plan.title_en = definition.title_zh, definition.title_en
    plan.version = definition.version
    plan.enrol_on_tag = definition.enrol_on_tag
    plan.enrol_on_events = list(definition.enrol_on_events)
    plan.updated_at = now
    session.add(PlanVersion(plan_id=plan.id, version=definition.version, definition=definition.as_dict(),
                            source_text=text, created_at=now))
    session.flush()
    log(session, actor=actor, action="plan.add" if change == "added" else "plan.version", resource_type="plan",
        resource_id=plan.id, details={"plan": plan.key, "version": definition.version})
    moved = retime_plan(session, plan.key, actor=actor, grace=grace) if change == "new version" else 0
    return Published(plan, definition, change, moved)


def _definition(session: Session, plan: Plan, version: int | None = None) -> PlanDefinition | None:
    wanted = plan.version if version is None else version
    cache: dict[tuple[str, int], PlanDefinition] = session.info.setdefault(_CACHE, {})
    found = cache.get((plan.key, wanted))
    if found is None:
        row = session.scalars(select(PlanVersion).where(PlanVersion.plan_id == plan.id,
                                                        PlanVersion.version == wanted)).one_or_none()
        if row is None:
            return None
        found = cache[(plan.key, wanted)] = from_dict(row.definition)
    return found


def definition_at(session: Session, key: str, version: int) -> PlanDefinition | None:
    """The definition of version ``version`` of plan ``key`` (a version never changes once stored: read once a
    session, so that a worker's batch of a plan's rows asks for it once)."""
    cache: dict[tuple[str, int], PlanDefinition] = session.info.setdefault(_CACHE, {})
    found = cache.get((key, version))
    if found is not None:
        return found
    plan = session.scalars(select(Plan).where(Plan.key == key)).one_or_none()
    return _definition(session, plan, version) if plan is not None else None


def get_plan(session: Session, key: str) -> tuple[Plan, PlanDefinition]:
    """The plan ``key`` and its latest definition; :class:`NotFoundError` when there is none."""
    plan = session.scalars(select(Plan).where(Plan.key == key)).one_or_none()
    definition = _definition(session, plan) if plan is not None else None
    if plan is None or definition is None:
        raise NotFoundError(f"no plan {key!r} (careloop plans list)")
    return plan, definition


def list_plans(session: Session) -> list[tuple[Plan, int]]:
    """Every plan with its number of active enrolments."""
    counts = dict(session.execute(
        select(PlanEnrolment.plan_key, func.count()).where(PlanEnrolment.status == EnrolmentStatus.ACTIVE.value)
        .group_by(PlanEnrolment.plan_key)).all())
    return [(plan, int(counts.get(plan.key, 0))) for plan in session.scalars(select(Plan).order_by(Plan.key))]


def plan_versions(session: Session, plan: Plan) -> list[PlanVersion]:
    return list(session.scalars(select(PlanVersion).where(PlanVersion.plan_id == plan.id)
                                .order_by(PlanVersion.version)))


# -- anchors ----------------------------------------------------------------------------------------------
def _midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=zone).astimezone(UTC)


def anchor_moment(session: Session, patient: Patient, enrolment: PlanEnrolment, definition: PlanDefinition,
                  anchor: str) -> datetime | None:
    """The moment ``anchor`` names for the patient, or None when they have none (no checkup yet, ...)."""
    if anchor == "enrolment":
        return enrolment.enrolled_at
    zone = zone_of(patient)
    if anchor == "checkup":
        day = session.scalar(select(func.max(CheckupReport.report_date)).where(CheckupReport.patient_id == patient.id))
        return _midnight(day, zone) if day is not None else None
    kind, _, rest = anchor.partition(":")
    if kind == "tag":
        tag = (rest or definition.enrol_on_tag or "").strip().lower()
        row = session.scalars(select(PatientTag).where(
            PatientTag.patient_id == patient.id,
            PatientTag.tag.matches(session, tag, owner_id=patient.id))).one_or_none()
        return row.added_at if row is not None else None
    if kind == "profile":
        profile = patient.profile
        if profile is None:
            return None
        for section in PROFILE_SECTIONS:
            value = (getattr(profile, section) or {}).get(rest)
            if isinstance(value, str):
                try:
                    return _midnight(date.fromisoformat(value[:10]), zone)
                except ValueError:
                    return None
        return None
    return None


# -- occurrences ------------------------------------------------------------------------------------------
def _row(patient: Patient, enrolment: PlanEnrolment, definition: PlanDefinition, index: int, occurrence: int,
         moment: datetime, now: datetime) -> dict[str, object]:
    step = definition.steps[index]
    channels = ["console"] if patient.is_test else list(step.channels)
    return {"id": uuid.uuid4(), "patient_id": patient.id, "flow_id": step.followup_flow_id,
            "content_key": step.message, "due_at": moment,
            "channel_order": channels, "channel_index": 0, "status": FollowUpStatus.SCHEDULED.value, "attempts": 0,
            "max_attempts_per_channel": step.attempts, "answer_window_hours": step.answer_window_hours,
            "next_action_at": moment, "source": "plan", "created_at": now, "plan_key": definition.id,
            "plan_version": definition.version, "step_index": index, "occurrence": occurrence,
            "enrolment_id": enrolment.id, "fire_version": enrolment.fire_version, "start_mode": step.start_mode,
            "on_silence": list(step.on_silence)}


def _first_rows(session: Session, patient: Patient, enrolment: PlanEnrolment, definition: PlanDefinition,
                now: datetime, grace: timedelta, steps: Iterable[int]) -> list[dict[str, object]]:
    rows = []
    zone = zone_of(patient)
    for index in steps:
        step = definition.steps[index]
        anchor = anchor_moment(session, patient, enrolment, definition, step.when.anchor)
        if anchor is None:
            continue
        found = first_occurrence(step.when, anchor, zone, not_before=now - grace)
        if found is not None:
            rows.append(_row(patient, enrolment, definition, index, found[0], found[1], now))
    return rows


def _insert(session: Session, rows: Sequence[dict[str, object]]) -> None:
    if rows:
        session.execute(insert(FollowUp), list(rows))


def active_enrolment(session: Session, patient_id: uuid.UUID, plan_key: str) -> PlanEnrolment | None:
    return session.scalars(select(PlanEnrolment).where(
        PlanEnrolment.patient_id == patient_id, PlanEnrolment.plan_key == plan_key,
        PlanEnrolment.status == EnrolmentStatus.ACTIVE.value)).first()


def enrol(session: Session, patient: Patient, plan_key: str, *, source: str = "manual", actor: Actor,
          grace: timedelta = DEFAULT_GRACE) -> PlanEnrolment | None:
    """Enrol the patient and schedule the plan's first occurrences; None when they are in the plan already.

    :raises ConflictError: the plan is an intervention program's, and this is not the program starting.
    """
    plan, definition = get_plan(session, plan_key)
    if _program_plan(plan.key) and not source.startswith(PROGRAM_SOURCE):
        raise _not_by_hand(plan.key)
    if active_enrolment(session, patient.id, plan.key) is not None:
        return None
    now = clock_of(session).now()
    enrolment = PlanEnrolment(patient_id=patient.id, plan_key=plan.key, plan_version=definition.version,
                              status=EnrolmentStatus.ACTIVE.value, source=source[:64], fire_version=1,
                              enrolled_at=now)
    session.add(enrolment)
    session.flush()
    rows = _first_rows(session, patient, enrolment, definition, now, grace, range(len(definition.steps)))
    _insert(session, rows)
    log(session, actor=actor, action="plan.enrol", resource_type="plan_enrolment", resource_id=enrolment.id,
        patient_id=patient.id, details={"plan": plan.key, "source": source.split(":", 1)[0], "rows": len(rows)})
    return enrolment


def enrol_many(session: Session, patient_ids: Sequence[uuid.UUID], plan_key: str, *, source: str = "manual",
               actor: Actor, grace: timedelta = DEFAULT_GRACE, chunk: int = 1000) -> int:
    """Enrol many patients at once (plans anchored on enrolment only are scheduled in bulk); return how many."""
    plan, definition = get_plan(session, plan_key)
    if _program_plan(plan.key) and not source.startswith(PROGRAM_SOURCE):
        raise _not_by_hand(plan.key)
    if any(step.when.anchor != "enrolment" for step in definition.steps):
        done = 0
        for patient_id in patient_ids:
            patient = session.get(Patient, patient_id)
            if patient is not None and enrol(session, patient, plan_key, source=source, actor=actor, grace=grace):
                done += 1
        return done
    now = clock_of(session).now()
    done = 0
    for start in range(0, len(patient_ids), chunk):
        ids = list(patient_ids[start:start + chunk])
        # By the patients only, the plan and status compared here: given those too, PostgreSQL may walk the
        # plan's index over every enrolment of the plan (a table grown by a bulk enrolment, not analysed yet),
        # once per chunk; by patient it reads each patient's few enrolments.
        already = {patient_id for patient_id, key, status in session.execute(
            select(PlanEnrolment.patient_id, PlanEnrolment.plan_key, PlanEnrolment.status)
            .where(PlanEnrolment.patient_id.in_(ids)))
            if key == plan.key and status == EnrolmentStatus.ACTIVE.value}
        patients = [patient for patient in session.scalars(select(Patient).where(Patient.id.in_(ids)))
                    if patient.id not in already]
        enrolments, rows = [], []
        for patient in patients:
            enrolment = PlanEnrolment(patient_id=patient.id, plan_key=plan.key, plan_version=definition.version,
                                      status=EnrolmentStatus.ACTIVE.value, source=source[:64], fire_version=1,
                                      enrolled_at=now)
            enrolments.append({"id": enrolment.id, "patient_id": patient.id, "plan_key": plan.key,
                               "plan_version": definition.version, "status": EnrolmentStatus.ACTIVE.value,
                               "source": source[:64], "fire_version": 1, "enrolled_at": now, "left_at": None})
            zone = zone_of(patient)
            for index, step in enumerate(definition.steps):
                found = first_occurrence(step.when, now, zone, not_before=now - grace)
                if found is not None:
                    rows.append(_row(patient, enrolment, definition, index, found[0], found[1], now))
        if enrolments:
            session.execute(insert(PlanEnrolment), enrolments)
        _insert(session, rows)
        done += len(enrolments)
        session.expunge_all()
    log(session, actor=actor, action="plan.enrol_many", resource_type="plan", resource_id=plan.id,
        details={"plan": plan.key, "patients": done})
    return done


def _cancel_pending(session: Session, enrolment_id: uuid.UUID, outcome: str) -> int:
    rows = list(session.scalars(select(FollowUp).where(FollowUp.enrolment_id == enrolment_id,
                                                       FollowUp.status.in_(PENDING))))
    for row in rows:
        row.status = FollowUpStatus.CANCELLED.value
        row.outcome = outcome
        row.next_action_at = None
    return len(rows)


def leave(session: Session, patient: Patient, plan_key: str, *, actor: Actor, reason: str = "manual") -> bool:
    """End the patient's enrolment in the plan; its rows not yet acted on are cancelled. False if not enrolled.

    :raises ConflictError: the plan is an intervention program's, and this is not the program ending.
    """
    if _program_plan(plan_key) and reason != PROGRAM_LEAVE_REASON:
        raise _not_by_hand(plan_key)
    enrolment = active_enrolment(session, patient.id, plan_key)
    if enrolment is None:
        return False
    enrolment.status = EnrolmentStatus.LEFT.value
    enrolment.left_at = clock_of(session).now()
    cancelled = _cancel_pending(session, enrolment.id, f"left:{reason}"[:32])
    log(session, actor=actor, action="plan.leave", resource_type="plan_enrolment", resource_id=enrolment.id,
        patient_id=patient.id, details={"plan": plan_key, "reason": reason, "cancelled": cancelled})
    return True


def enrolments_of(session: Session, patient_id: uuid.UUID, *, active_only: bool = True) -> list[PlanEnrolment]:
    query = select(PlanEnrolment).where(PlanEnrolment.patient_id == patient_id)
    if active_only:
        query = query.where(PlanEnrolment.status == EnrolmentStatus.ACTIVE.value)
    return list(session.scalars(query.order_by(PlanEnrolment.enrolled_at)))


# -- re-timing --------------------------------------------------------------------------------------------
@dataclass
class Retimed:
    moved: int = 0
    missed: int = 0
    cancelled: int = 0
    added: int = 0

    @property
    def changed(self) -> int:
        return self.moved + self.missed + self.cancelled + self.added


def _apply_step(row: FollowUp, step: Step, definition: PlanDefinition, patient: Patient) -> None:
    row.flow_id = step.followup_flow_id
    row.content_key = step.message
    row.plan_version = definition.version
    row.channel_order = ["console"] if patient.is_test else list(step.channels)
    row.channel_index = 0
    row.max_attempts_per_channel = step.attempts
    row.answer_window_hours = step.answer_window_hours
    row.on_silence = list(step.on_silence)
    row.start_mode = step.start_mode


def retime_enrolment(session: Session, enrolment: PlanEnrolment, definition: PlanDefinition, *,
                     grace: timedelta = DEFAULT_GRACE, patient: Patient | None = None) -> Retimed:
    """Move the enrolment's rows not yet acted on to ``definition``'s timing, in place (see the module docstring)."""
    patient = patient or session.get(Patient, enrolment.patient_id)
    result = Retimed()
    if patient is None:
        return result
    now = clock_of(session).now()
    zone = zone_of(patient)
    enrolment.fire_version += 1
    enrolment.plan_version = definition.version
    pending = list(session.scalars(select(FollowUp).where(FollowUp.enrolment_id == enrolment.id,
                                                          FollowUp.status.in_(PENDING))))
    anchors: dict[str, datetime | None] = {}
    covered: set[int] = set()
    for row in pending:
        index = row.step_index if row.step_index is not None else -1
        if not 0 <= index < len(definition.steps):
            row.status, row.outcome, row.next_action_at = FollowUpStatus.CANCELLED.value, "step_removed", None
            result.cancelled += 1
            continue
        step = definition.steps[index]
        if step.when.anchor not in anchors:
            anchors[step.when.anchor] = anchor_moment(session, patient, enrolment, definition, step.when.anchor)
        anchor = anchors[step.when.anchor]
        if anchor is None:
            row.status, row.outcome, row.next_action_at = FollowUpStatus.CANCELLED.value, "no_anchor", None
            result.cancelled += 1
            continue
        occurrence = (row.occurrence or 1) if step.when.recurring else 0
        moment = due_at(step.when, anchor, occurrence, zone)
        _apply_step(row, step, definition, patient)
        row.occurrence = occurrence
        row.fire_version = enrolment.fire_version
        if moment < now - grace:
            row.status, row.outcome, row.next_action_at = FollowUpStatus.SKIPPED.value, "missed", None
            row.due_at = moment
            result.missed += 1
            if not step.when.recurring:
                covered.add(index)
            continue
        row.due_at = row.next_action_at = moment
        row.status = FollowUpStatus.SCHEDULED.value
        covered.add(index)
        result.moved += 1
    missing = [index for index in range(len(definition.steps)) if index not in covered]
    if missing:
        result.added += _add_missing(session, patient, enrolment, definition, missing, now, grace)
    return result


def _add_missing(session: Session, patient: Patient, enrolment: PlanEnrolment, definition: PlanDefinition,
                 steps: list[int], now: datetime, grace: timedelta) -> int:
    """Schedule the steps that have no row ahead: a recurring one after its latest occurrence; a one-off once."""
    known = dict(session.execute(
        select(FollowUp.step_index, func.max(FollowUp.occurrence)).where(FollowUp.enrolment_id == enrolment.id)
        .group_by(FollowUp.step_index)).all())
    rows = []
    zone = zone_of(patient)
    for index in steps:
        step = definition.steps[index]
        if not step.when.recurring and index in known:
            continue
        anchor = anchor_moment(session, patient, enrolment, definition, step.when.anchor)
        if anchor is None:
            continue
        after = int(known.get(index) or 0) if step.when.recurring else 0
        found = first_occurrence(step.when, anchor, zone, not_before=now - grace, after=after)
        if found is not None:
            rows.append(_row(patient, enrolment, definition, index, found[0], found[1], now))
    _insert(session, rows)
    return len(rows)


def retime_plan(session: Session, plan_key: str, *, actor: Actor, grace: timedelta = DEFAULT_GRACE) -> int:
    """Re-time the rows of every patient enrolled in the plan to its latest version; return the rows changed."""
    plan, definition = get_plan(session, plan_key)
    changed = 0
    enrolments = list(session.scalars(select(PlanEnrolment).where(
        PlanEnrolment.plan_key == plan.key, PlanEnrolment.status == EnrolmentStatus.ACTIVE.value)))
    for enrolment in enrolments:
        changed += retime_enrolment(session, enrolment, definition, grace=grace).changed
    log(session, actor=actor, action="plan.retime", resource_type="plan", resource_id=plan.id,
        details={"plan": plan.key, "version": definition.version, "enrolments": len(enrolments), "rows": changed})
    return changed


def retime_patient(session: Session, patient: Patient, *, anchor: str | None = None, actor: Actor = PLANS_ACTOR,
                   grace: timedelta = DEFAULT_GRACE) -> int:
    """An anchor date of the patient moved (``anchor``: which; None: any, e.g. a new time zone): move their rows."""
    changed = 0
    for enrolment in enrolments_of(session, patient.id):
        plan, definition = get_plan(session, enrolment.plan_key)
        if anchor is not None and not any(step.when.anchor == anchor or step.when.anchor.startswith(anchor + ":")
                                          for step in definition.steps):
            continue
        changed += retime_enrolment(session, enrolment, definition, grace=grace, patient=patient).changed
    if changed:
        log(session, actor=actor, action="plan.retime_patient", resource_type="patient", resource_id=patient.id,
            patient_id=patient.id, details={"anchor": anchor or "any", "rows": changed})
    return changed


def schedule_next(session: Session, followup: FollowUp, *, grace: timedelta = DEFAULT_GRACE) -> FollowUp | None:
    """The next occurrence of ``followup``'s recurring step (the worker calls this when it first acts on one)."""
    if followup.enrolment_id is None or followup.step_index is None:
        return None
    enrolment = session.get(PlanEnrolment, followup.enrolment_id)
    patient = session.get(Patient, followup.patient_id)
    if enrolment is None or patient is None or enrolment.status != EnrolmentStatus.ACTIVE.value:
        return None
    definition = definition_at(session, enrolment.plan_key, enrolment.plan_version)
    if definition is None or followup.step_index >= len(definition.steps):
        return None
    step = definition.steps[followup.step_index]
    if not step.when.recurring:
        return None
    anchor = anchor_moment(session, patient, enrolment, definition, step.when.anchor)
    if anchor is None:
        return None
    now = clock_of(session).now()
    found = first_occurrence(step.when, anchor, zone_of(patient), not_before=now - grace,
                             after=followup.occurrence or 0)
    if found is None:
        return None
    values = _row(patient, enrolment, definition, followup.step_index, found[0], found[1], now)
    row = FollowUp(**values)
    session.add(row)
    return row


# -- triggers ---------------------------------------------------------------------------------------------
def tags_that_enrol(session: Session) -> frozenset[str]:
    """The tags some plan enrols on (read once for a chunk of patients: :func:`tag_changed` matters only for these)."""
    with session.no_autoflush:
        return frozenset(key for key in session.scalars(select(Plan.enrol_on_tag).where(Plan.enrol_on_tag.is_not(None)))
                         if key)


def tag_key(tag: str) -> str:
    """A tag as plans name it (``enrol_on_tag``)."""
    return tag.strip().lower()


def tag_changed(session: Session, patient: Patient, tag: str, *, added: bool, actor: Actor) -> int:
    """A tag was set (False -> True: enrol in the plans that enrol on it) or removed (leave the ones it enrolled)."""
    key = tag_key(tag)
    with session.no_autoflush:  # a turn's rows are written once, at its end: nothing is flushed for this look-up
        plans = list(session.scalars(select(Plan.key).where(Plan.enrol_on_tag == key)))
    if plans:
        session.flush()  # the tag row, which a step anchored on the tag reads
    changed = 0
    for plan_key in plans:
        if added:
            changed += enrol(session, patient, plan_key, source="tag", actor=actor) is not None
        else:
            enrolment = active_enrolment(session, patient.id, plan_key)
            if enrolment is not None and enrolment.source == "tag":
                changed += leave(session, patient, plan_key, actor=actor, reason="tag_removed")
    return changed


def event_happened(session: Session, patient_id: uuid.UUID, event: str, *, actor: Actor = PLANS_ACTOR) -> int:
    """``event`` (``report_imported``, ``questionnaire_finished:<flow>``) happened: enrol in the plans it starts.

    A patient already in such a plan stays in it. A new report also moves what is timed from the
    checkup (:func:`retime_patient`). Nothing is flushed and the record is not read unless a plan
    names the event or the patient is in a plan.
    """
    kind = event.partition(":")[0]
    with session.no_autoflush:
        keys = [key for key, events in session.execute(select(Plan.key, Plan.enrol_on_events).order_by(Plan.key))
                if event in (events or ()) or kind in (events or ())]
        enrolled = kind == "report_imported" and session.scalar(select(func.count()).select_from(PlanEnrolment).where(
            PlanEnrolment.patient_id == patient_id, PlanEnrolment.status == EnrolmentStatus.ACTIVE.value))
    if not keys and not enrolled:
        return 0
    patient = session.get(Patient, patient_id)
    if patient is None:
        return 0
    changed = 0
    if kind == "report_imported":
        changed += retime_patient(session, patient, anchor="checkup", actor=actor)
    for plan_key in keys:
        changed += enrol(session, patient, plan_key, source=f"event:{event}", actor=actor) is not None
    return changed


def reports_imported(session: Session, patient_ids: Iterable[uuid.UUID], *, actor: Actor = PLANS_ACTOR) -> int:
    """Checkup reports of these patients were imported: :func:`event_happened` for each (one query when no plan)."""
    with session.no_autoflush:
        if session.scalar(select(func.count()).select_from(Plan)) == 0:
            return 0
    return sum(event_happened(session, patient_id, "report_imported", actor=actor) for patient_id in patient_ids)
