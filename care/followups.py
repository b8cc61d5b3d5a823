"""Scheduling follow-ups (the automation issue adds plans that create them by rule)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from itertools import islice

from sqlalchemy import select
from sqlalchemy.orm import Session

from care.care_teams import EVERY_PATIENT, OutsideCareTeamError, PatientScope
from care.errors import NotFoundError, Problem, ValidationFailedError
from care.models import Channel, FlowResult, FollowUp, FollowUpStatus, Patient, User
from care.spreadsheet import safe_cell
from security.audit import Actor, log
from security.fields import clock_of

DEFAULT_ORDER = (Channel.WECHAT.value, Channel.SMS.value, Channel.VOICE.value)
ORDERABLE = {Channel.WECHAT.value, Channel.SMS.value, Channel.VOICE.value, Channel.CONSOLE.value}


def schedule_followup(
    session: Session, patient: Patient, *, flow_id: str, due_at: datetime, actor: Actor,
    channel_order: Sequence[str] = DEFAULT_ORDER, source: str = "manual", max_attempts_per_channel: int = 2,
    answer_window_hours: int = 48,
) -> FollowUp:
    """Schedule ``flow_id`` for the patient at ``due_at`` over the first usable channel of ``channel_order``.

    A test patient's follow-ups run on the console channel only, whatever the order asked.
    """
    problems = []
    unknown = [channel for channel in channel_order if channel not in ORDERABLE]
    if unknown or not channel_order:
        problems.append(Problem("channel_order", f"must list channels among {', '.join(sorted(ORDERABLE))}"))
    if due_at.tzinfo is None:
        problems.append(Problem("due_at", "must carry a time zone"))
    if not flow_id:
        problems.append(Problem("flow_id", "is required"))
    if problems:
        raise ValidationFailedError(problems)
    if patient.is_test:
        channel_order = [Channel.CONSOLE.value]
    followup = FollowUp(
        patient_id=patient.id, flow_id=flow_id, due_at=due_at, channel_order=list(channel_order), channel_index=0,
        status=FollowUpStatus.SCHEDULED.value, attempts=0, max_attempts_per_channel=max_attempts_per_channel,
        answer_window_hours=answer_window_hours, next_action_at=due_at, source=source,
        created_at=clock_of(session).now(),
    )
    session.add(followup)
    log(session, actor=actor, action="followup.schedule", resource_type="followup", resource_id=followup.id,
        patient_id=patient.id, details={"flow": flow_id})
    return followup


#: The longest note staff may keep on a follow-up (a call's summary, not a document).
NOTES_LIMIT = 4000

#: How a follow-up ended, as the staff member who completes or closes its record says.
FOLLOWUP_OUTCOMES: dict[str, tuple[str, str]] = {
    "completed_by_patient": ("患者已自行完成", "Completed by the patient"),
    "completed_by_phone": ("电话随访完成", "Completed by phone"),
    "completed_in_clinic": ("门诊随访完成", "Completed in the clinic"),
    "no_response": ("无应答", "No response"),
    "unreachable": ("联系不上", "Could not be reached"),
    "refused": ("拒绝随访", "Refused"),
    "moved_away": ("已迁出", "Moved away"),
    "deceased": ("已故", "Deceased"),
}


def check_outcome(outcome: str, notes: str | None, outcomes: Mapping[str, object]) -> None:
    """Refuse an outcome code not in ``outcomes`` or notes longer than :data:`NOTES_LIMIT` (both named).

    :raises ValidationFailedError: with a problem for each.
    """
    problems = []
    if outcome not in outcomes:
        problems.append(Problem("outcome", f"must be one of {', '.join(outcomes)}"))
    if notes is not None and len(notes) > NOTES_LIMIT:
        problems.append(Problem("notes", f"must be at most {NOTES_LIMIT} characters"))
    if problems:
        raise ValidationFailedError(problems)


def record_followup_outcome(session: Session, followup_id: uuid.UUID, *, outcome: str, notes: str | None,
                            staff_id: uuid.UUID | None, actor: Actor, scope: PatientScope) -> FollowUp:
    """Complete the follow-up record's staff part: its outcome code, who recorded it, and their notes.

    An open follow-up (still scheduled, invited or in progress) ends with it: completed for an outcome
    that completes the visit, no response otherwise; nothing more is sent for it.

    :raises ValidationFailedError: unknown outcome, or notes too long.
    :raises NotFoundError: no such follow-up.
    :raises OutsideCareTeamError: its patient is outside ``scope``.
    """
    check_outcome(outcome, notes, FOLLOWUP_OUTCOMES)
    followup = session.get(FollowUp, followup_id)
    if followup is None:
        raise NotFoundError(f"no follow-up {followup_id}")
    if not scope.permits(session, followup.patient_id):
        raise OutsideCareTeamError(followup.patient_id, break_glass_possible=False)
    now = clock_of(session).now()
    followup.outcome = outcome
    followup.staff_id = staff_id
    followup.staff_notes = notes.strip() if notes and notes.strip() else None
    if followup.status not in ENDED:
        followup.status = (FollowUpStatus.COMPLETED.value if outcome.startswith("completed")
                           else FollowUpStatus.UNANSWERED.value)
        followup.completed_at = now
        followup.next_action_at = None
    log(session, actor=actor, action="followup.record", resource_type="followup", resource_id=followup.id,
        patient_id=followup.patient_id, details={"outcome": outcome, "status": followup.status})
    return followup


def list_followups(session: Session, *, patient: Patient | None = None, due_only: bool = False,
                   scope: PatientScope = EVERY_PATIENT, limit: int = 200, offset: int = 0) -> list[FollowUp]:
    """Follow-ups, the soonest due first: one patient's, or those of the patients in ``scope``;
    ``due_only``: only those not yet ended whose due time has come."""
    query = select(FollowUp).where(scope.clause(FollowUp.patient_id))
    if patient is not None:
        query = query.where(FollowUp.patient_id == patient.id)
    if due_only:
        query = query.where(FollowUp.status.not_in(ENDED), FollowUp.due_at <= clock_of(session).now())
    return list(session.scalars(query.order_by(FollowUp.due_at, FollowUp.id).offset(offset).limit(limit)))


#: The statuses of a follow-up that has ended (its record can still be completed by staff).
ENDED = (FollowUpStatus.COMPLETED.value, FollowUpStatus.UNANSWERED.value, FollowUpStatus.CANCELLED.value)


EXPORT_HEADER = {
    "zh": ("卡号", "随访内容", "计划时间", "状态", "渠道", "完成时间", "随访结果", "随访人员", "备注", "回答"),
    "en": ("card", "flow", "due", "status", "channel", "completed", "outcome", "staff", "notes", "answers"),
}


EXPORT_CHUNK = 500


def export_rows(session: Session, followups: Iterable[FollowUp], *, lang: str,
                actor: Actor) -> Iterator[tuple[object, ...]]:
    """The follow-up records as workbook rows (header first): each follow-up's fields, outcome, staff
    notes and answers (``name=label`` joined), every cell safe to open; the export of each patient's
    follow-ups is audited once.

    Read in chunks of :data:`EXPORT_CHUNK` follow-ups: their patients, answers and staff members in
    one query each per chunk, not per row.
    """
    yield EXPORT_HEADER["en" if lang == "en" else "zh"]
    audited: set[uuid.UUID] = set()
    remaining = iter(followups)
    while chunk := list(islice(remaining, EXPORT_CHUNK)):
        patients = {patient.id: patient for patient in session.scalars(
            select(Patient).where(Patient.id.in_({followup.patient_id for followup in chunk})))}
        answers: dict[uuid.UUID, list[str]] = {}
        conversations = {followup.session_id for followup in chunk if followup.session_id is not None}
        if conversations:
            for result in session.scalars(select(FlowResult).where(FlowResult.session_id.in_(conversations))
                                          .order_by(FlowResult.recorded_at, FlowResult.id)):
                if result.session_id is not None:
                    answers.setdefault(result.session_id, []).append(f"{result.name}={result.label or result.value}")
        staff_ids = {followup.staff_id for followup in chunk if followup.staff_id is not None}
        staff = ({user.id: user for user in session.scalars(select(User).where(User.id.in_(staff_ids)))}
                 if staff_ids else {})
        for followup in chunk:
            patient = patients.get(followup.patient_id)
            if patient is None:
                continue
            if patient.id not in audited:
                audited.add(patient.id)
                log(session, actor=actor, action="followup.export", resource_type="patient", resource_id=patient.id,
                    patient_id=patient.id, details={})
            member = staff.get(followup.staff_id) if followup.staff_id is not None else None
            outcome = FOLLOWUP_OUTCOMES.get(followup.outcome or "")
            row = (patient.card_no, followup.flow_id, followup.due_at.isoformat(), followup.status,
                   followup.current_channel or "", followup.completed_at.isoformat() if followup.completed_at else "",
                   (outcome[1] if lang == "en" else outcome[0]) if outcome else followup.outcome or "",
                   member.email if member else "",
                   followup.staff_notes or "",
                   "; ".join(answers.get(followup.session_id, []) if followup.session_id is not None else []))
            yield tuple(safe_cell(value) for value in row)
