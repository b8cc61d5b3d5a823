"""Interventions in the database: publish a program, start and end enrolments, progress, what a tag starts.

* :func:`add_program` stores a checked program as a new version, and publishes the follow-up plan
  that carries it out (``iv_<program id>``, same version: a new program version re-times the
  enrolled patients' rows, as a new plan version does, and their enrolments take its goals and
  duration).
* :func:`start` enrols a patient (by hand, or by tag: once, never again after that enrolment ended)
  and puts them in the program's plan, whose rows are the check-ins and education messages the
  follow-up worker sends (consent, quiet hours, caps, silence: :mod:`bot.followups`).
* :func:`end` closes an enrolment (the worker's :func:`end_due` when its duration ran out, or staff
  by hand), takes the patient out of the plan (rows not yet sent are cancelled) and drafts a stage
  summary with the program's goals (:mod:`care.stage_summaries`), in zh and en, its conclusion in
  the patient's language.
* :func:`progress` computes the figures of :mod:`care.interventions.progress`.
"""

from __future__ import annotations

import uuid
from collections.abc import Container
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from care import plans
from care.clinical.common import Label, format_number
from care.clinical.summary import Intervention
from care.clinical.summary import InterventionStatus as SummaryStatus
from care.errors import ConflictError, NotFoundError, Problem, ValidationFailedError
from care.interventions.content import content_library
from care.interventions.definition import ProgramDefinition, from_dict, parse_program, plan_text
from care.interventions.progress import Progress, compute_progress, local_day
from care.models import (
    InterventionEnrolment,
    InterventionProgram,
    InterventionProgramVersion,
    InterventionStatus,
    Patient,
    PatientStatus,
    StageSummaryRecord,
)
from care.plans.service import PROGRAM_LEAVE_REASON, PROGRAM_SOURCE, active_enrolment
from care.stage_summaries import create_stage_summary
from security.audit import Actor, log
from security.dialects import claim_rows
from security.fields import clock_of

INTERVENTIONS_ACTOR = Actor("system", "interventions", "worker")
MAX_REASON = 500
_CACHE = "careloop.intervention_definitions"


# -- publishing -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Published:
    program: InterventionProgram
    definition: ProgramDefinition
    change: str  # "added", "new version", "unchanged"
    moved: int = 0


def add_program(session: Session, text: str, *, flow_ids: Container[str], actor: Actor, source: str = "program",
                grace: timedelta = plans.DEFAULT_GRACE) -> Published:
    """Store the program in ``text`` (a new one, or a new version) and publish its plan.

    :raises care.interventions.ProgramInvalidError: the file's problems, each with its line and field.
    :raises ConflictError: the version is not higher than the stored one (and the content differs).
    """
    content_ids = content_library().ids()
    definition = parse_program(text, flow_ids=flow_ids, content_ids=content_ids, source=source)
    now = clock_of(session).now()
    program = session.scalars(select(InterventionProgram).where(InterventionProgram.key == definition.id)) \
        .one_or_none()
    if program is not None:
        if definition.version <= program.version:
            stored = _definition(session, program, definition.version)
            if stored is not None and stored.as_dict() == definition.as_dict():
                return Published(program, definition, "unchanged")
            raise ConflictError(f"program {program.key!r} is at version {program.version}: "
                                "give this one a higher version")
        change = "new version"
    else:
        program = InterventionProgram(key=definition.id, created_at=now, version=definition.version)
        session.add(program)
        change = "added"
    program.title_zh, program.title_en = definition.title_zh, definition.title_en
    program.version = definition.version
    program.duration_days = definition.duration_days
    program.start_on_tag = definition.start_on_tag
    program.updated_at = now
    session.add(InterventionProgramVersion(program_id=program.id, version=definition.version,
                                           definition=definition.as_dict(), source_text=text, created_at=now))
    session.flush()
    log(session, actor=actor, action="intervention.program_add" if change == "added"
        else "intervention.program_version", resource_type="intervention_program", resource_id=program.id,
        details={"program": program.key, "version": definition.version})
    published = plans.add_plan(session, plan_text(definition), flow_ids=flow_ids, content_ids=content_ids,
                               actor=actor, source=f"{PROGRAM_SOURCE}{definition.id}", grace=grace)
    if change == "new version":
        # The plan re-timed the enrolled patients' rows to the new version: their goals and end follow it too.
        for enrolment in session.scalars(select(InterventionEnrolment).where(
                InterventionEnrolment.program_key == program.key,
                InterventionEnrolment.status == InterventionStatus.ACTIVE.value)):
            enrolment.program_version = definition.version
            enrolment.ends_at = enrolment.started_at + timedelta(days=definition.duration_days)
    return Published(program, definition, change, published.moved)


def _definition(session: Session, program: InterventionProgram, version: int | None = None) -> ProgramDefinition | None:
    wanted = program.version if version is None else version
    cache: dict[tuple[str, int], ProgramDefinition] = session.info.setdefault(_CACHE, {})
    found = cache.get((program.key, wanted))
    if found is None:
        row = session.scalars(select(InterventionProgramVersion).where(
            InterventionProgramVersion.program_id == program.id,
            InterventionProgramVersion.version == wanted)).one_or_none()
        if row is None:
            return None
        found = cache[(program.key, wanted)] = from_dict(row.definition)
    return found


def get_program(session: Session, key: str, version: int | None = None) -> tuple[InterventionProgram,
                                                                                ProgramDefinition]:
    """The program ``key`` and its definition (the latest, or ``version``); :class:`NotFoundError` when none."""
    program = session.scalars(select(InterventionProgram).where(InterventionProgram.key == key)).one_or_none()
    definition = _definition(session, program, version) if program is not None else None
    if program is None or definition is None:
        raise NotFoundError(f"no intervention program {key!r} (careloop interventions programs)")
    return program, definition


def program_versions(session: Session, program: InterventionProgram) -> list[InterventionProgramVersion]:
    return list(session.scalars(select(InterventionProgramVersion)
                                .where(InterventionProgramVersion.program_id == program.id)
                                .order_by(InterventionProgramVersion.version)))


def list_programs(session: Session) -> list[tuple[InterventionProgram, int]]:
    """Every program with its number of active enrolments."""
    counts = dict(session.execute(
        select(InterventionEnrolment.program_key, func.count())
        .where(InterventionEnrolment.status == InterventionStatus.ACTIVE.value)
        .group_by(InterventionEnrolment.program_key)).all())
    return [(program, int(counts.get(program.key, 0)))
            for program in session.scalars(select(InterventionProgram).order_by(InterventionProgram.key))]


# -- enrolments -------------------------------------------------------------------------------------------
def enrolments_of(session: Session, patient_id: uuid.UUID, *, active_only: bool = False) -> list[InterventionEnrolment]:
    """The patient's enrolments, newest first (only the active ones with ``active_only``)."""
    query = select(InterventionEnrolment).where(InterventionEnrolment.patient_id == patient_id)
    if active_only:
        query = query.where(InterventionEnrolment.status == InterventionStatus.ACTIVE.value)
    return list(session.scalars(query.order_by(InterventionEnrolment.started_at.desc(),
                                               InterventionEnrolment.program_key)))


def list_enrolments(session: Session, *, program_key: str | None = None, active_only: bool = False,
                    limit: int = 200) -> list[InterventionEnrolment]:
    """Enrolments of every patient (of one program), newest first, at most ``limit``."""
    query = select(InterventionEnrolment)
    if program_key is not None:
        query = query.where(InterventionEnrolment.program_key == program_key)
    if active_only:
        query = query.where(InterventionEnrolment.status == InterventionStatus.ACTIVE.value)
    return list(session.scalars(query.order_by(InterventionEnrolment.started_at.desc()).limit(limit)))


def active_in(session: Session, patient_id: uuid.UUID, program_key: str) -> InterventionEnrolment | None:
    return session.scalars(select(InterventionEnrolment).where(
        InterventionEnrolment.patient_id == patient_id, InterventionEnrolment.program_key == program_key,
        InterventionEnrolment.status == InterventionStatus.ACTIVE.value)).first()


def start(session: Session, patient: Patient, program_key: str, *, source: str = "manual", actor: Actor,
          grace: timedelta = plans.DEFAULT_GRACE) -> InterventionEnrolment | None:
    """Enrol the patient in the program and its plan; None when they are in it already.

    By tag (``source="tag"``) a patient is enrolled once: not while an enrolment is active, and not
    again after an enrolment by tag ended (staff may start it again by hand).
    """
    program, definition = get_program(session, program_key)
    if active_in(session, patient.id, program.key) is not None:
        return None
    if source == "tag" and session.scalar(select(InterventionEnrolment.id).where(
            InterventionEnrolment.patient_id == patient.id, InterventionEnrolment.program_key == program.key,
            InterventionEnrolment.source == "tag").limit(1)) is not None:
        return None
    now = clock_of(session).now()
    plan_enrolment = plans.enrol(session, patient, definition.plan_key, source=f"{PROGRAM_SOURCE}{program.key}",
                                 actor=actor, grace=grace) \
        or active_enrolment(session, patient.id, definition.plan_key)
    enrolment = InterventionEnrolment(
        patient_id=patient.id, program_key=program.key, program_version=definition.version,
        status=InterventionStatus.ACTIVE.value, source=source[:64], started_at=now,
        ends_at=now + timedelta(days=definition.duration_days),
        plan_enrolment_id=plan_enrolment.id if plan_enrolment is not None else None)
    session.add(enrolment)
    session.flush()
    log(session, actor=actor, action="intervention.start", resource_type="intervention_enrolment",
        resource_id=enrolment.id, patient_id=patient.id,
        details={"program": program.key, "version": definition.version, "source": source.split(":", 1)[0]})
    return enrolment


def tags_that_start(session: Session) -> frozenset[str]:
    """The tags some program starts on (read once for a chunk of patients: :func:`tag_set` matters only for these)."""
    with session.no_autoflush:
        return frozenset(key for key in session.scalars(
            select(InterventionProgram.start_on_tag).where(InterventionProgram.start_on_tag.is_not(None))) if key)


def tag_set(session: Session, patient: Patient, tag: str, *, actor: Actor) -> int:
    """A tag was set (False -> True): start the programs that start on it (once each); return how many started."""
    key = tag.strip().lower()
    with session.no_autoflush:  # a turn's rows are written once, at its end: nothing is flushed for this look-up
        keys = list(session.scalars(select(InterventionProgram.key).where(InterventionProgram.start_on_tag == key)))
    return sum(start(session, patient, program_key, source="tag", actor=actor) is not None for program_key in keys)


def progress(session: Session, enrolment: InterventionEnrolment, *, actor: Actor) -> tuple[ProgramDefinition,
                                                                                          Progress]:
    """The enrolment's program version and its figures now (read from the record: audited as a view of it)."""
    patient = session.get(Patient, enrolment.patient_id)
    if patient is None:
        raise NotFoundError("the enrolment's patient no longer exists")
    _, definition = get_program(session, enrolment.program_key, enrolment.program_version)
    figures = compute_progress(session, patient, enrolment, definition, clock_of(session).now())
    log(session, actor=actor, action="patient.view", resource_type="intervention_enrolment",
        resource_id=enrolment.id, patient_id=patient.id, details={"view": "intervention_progress"})
    return definition, figures


# -- the end ----------------------------------------------------------------------------------------------
def _conclusion(definition: ProgramDefinition, figures: Progress, patient: Patient,
                enrolment: InterventionEnrolment) -> str:
    """The summary's draft conclusion in the patient's language (staff edit and sign it)."""
    english = patient.language == "en"
    start_day = local_day(patient, enrolment.started_at).isoformat()
    end_day = local_day(patient, enrolment.ended_at or enrolment.ends_at).isoformat()
    met, total = figures.goals_met, len(figures.goals)
    if english:
        head = (f"{definition.title_en} ({start_day} to {end_day}) "
                + ("completed" if enrolment.outcome == "completed" else "ended early")
                + f": {met} of {total} goal(s) met.")
    else:
        head = (f"{definition.title_zh}（{start_day}至{end_day}）"
                + ("已完成" if enrolment.outcome == "completed" else "已提前结束")
                + f"：{total}个目标中达成{met}个。")
    return "\n".join([head, *figures.lines(patient.language)])


def end(session: Session, enrolment: InterventionEnrolment, *, actor: Actor, outcome: str = "ended",
        reason: str | None = None) -> StageSummaryRecord:
    """Close the enrolment, take the patient out of the program's plan, draft its stage summary; return the summary.

    ``outcome`` is ``completed`` (the duration ran out) or ``ended`` (by hand, before that).

    :raises ConflictError: the enrolment has ended already.
    :raises ValidationFailedError: the reason is too long.
    """
    if enrolment.status != InterventionStatus.ACTIVE.value:
        raise ConflictError(f"the enrolment in {enrolment.program_key!r} has ended already")
    text = reason.strip() if reason is not None else None
    if text is not None and len(text) > MAX_REASON:
        raise ValidationFailedError([Problem("reason", f"is longer than {MAX_REASON} characters")])
    patient = session.get(Patient, enrolment.patient_id)
    if patient is None:
        raise NotFoundError("the enrolment's patient no longer exists")
    _, definition = get_program(session, enrolment.program_key, enrolment.program_version)
    now = clock_of(session).now()
    enrolment.status = InterventionStatus.ENDED.value
    enrolment.ended_at = min(now, enrolment.ends_at) if outcome == "completed" else now
    enrolment.outcome = outcome
    enrolment.ended_by = actor.id[:64]
    enrolment.end_reason = text or None
    plans.leave(session, patient, definition.plan_key, actor=actor, reason=PROGRAM_LEAVE_REASON)
    figures = compute_progress(session, patient, enrolment, definition, now)
    goals = [goal for goal in (item.as_goal() for item in figures.goals) if goal is not None]
    done: SummaryStatus = "done" if outcome == "completed" else "cancelled"
    summary = create_stage_summary(
        session, patient, period_start=local_day(patient, enrolment.started_at),
        period_end=local_day(patient, enrolment.ended_at), actor=actor,
        conclusion=_conclusion(definition, figures, patient, enrolment), goals=goals,
        interventions=[Intervention(Label(definition.title_zh, definition.title_en), done,
                                    local_day(patient, enrolment.ended_at) if done == "done" else None)])
    enrolment.summary_id = summary.summary_id
    log(session, actor=actor, action="intervention.end", resource_type="intervention_enrolment",
        resource_id=enrolment.id, patient_id=patient.id,
        details={"program": enrolment.program_key, "outcome": outcome, "goals_met": figures.goals_met,
                 "goals": len(figures.goals),
                 "progress": None if figures.percent is None else float(format_number(figures.percent, 0)),
                 "summary": str(summary.summary_id)})
    return summary


def end_for_patient(session: Session, patient: Patient, *, program_key: str | None, actor: Actor,
                    reason: str | None) -> tuple[InterventionEnrolment, StageSummaryRecord]:
    """End the patient's active enrolment (in ``program_key``, or their only one) by hand.

    :raises NotFoundError: no active enrolment (in that program).
    :raises ConflictError: several are active and no program was named.
    """
    active = enrolments_of(session, patient.id, active_only=True)
    if program_key is not None:
        get_program(session, program_key)
        active = [enrolment for enrolment in active if enrolment.program_key == program_key]
    if not active:
        raise NotFoundError("the patient is in no intervention" + (f" {program_key!r}" if program_key else ""))
    if len(active) > 1:
        raise ConflictError("the patient is in several interventions (" + ", ".join(
            sorted(enrolment.program_key for enrolment in active)) + "): name one with --program")
    return active[0], end(session, active[0], actor=actor, outcome="ended", reason=reason)


def end_due(session: Session, *, actor: Actor = INTERVENTIONS_ACTOR, limit: int = 50) -> int:
    """End the enrolments whose duration ran out (the worker's job); return how many ended.

    The rows are claimed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so workers running at once
    each end different enrolments.
    """
    now = clock_of(session).now()
    # An erased patient's record cannot be summed up (their key is gone): their enrolment is not the worker's.
    query = claim_rows(session, select(InterventionEnrolment)
        .join(Patient, Patient.id == InterventionEnrolment.patient_id)
        .where(InterventionEnrolment.status == InterventionStatus.ACTIVE.value, InterventionEnrolment.ends_at <= now,
               Patient.status != PatientStatus.ERASED.value)
        .order_by(InterventionEnrolment.ends_at).limit(limit), of=InterventionEnrolment)
    ended = 0
    for enrolment in list(session.scalars(query)):
        end(session, enrolment, actor=actor, outcome="completed")
        ended += 1
    return ended
