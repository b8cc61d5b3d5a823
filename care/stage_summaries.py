"""Stage summaries (健康阶段总结): computed, saved, edited, signed (who, when) and versioned.

The content is :func:`care.clinical.summary.compute_stage_summary` over the record: indicator
series (:mod:`care.indicators`), stored risk assessments (:mod:`care.assessments`), follow-up
adherence counted from :class:`FollowUp` statuses (sent: invited, in progress, completed or
unanswered; answered: completed; by due date in the period; education messages, which nobody
answers, are not follow-ups here) and, when the caller gives them, goals and interventions (an
intervention's end drafts its summary with its goals: :mod:`care.interventions.service`). It is
stored encrypted with the clinician's conclusion.

Versions: a summary starts at version 1, unsigned; edits change the unsigned version in place;
signing fixes it; an edit after signing makes the next version (unsigned, content copied or
recomputed), so a signed version never changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from care.assessments import risk_history
from care.clinical.common import Label
from care.clinical.summary import (
    Adherence,
    Goal,
    Intervention,
    StageSummary,
    StageSummaryInput,
    compute_stage_summary,
)
from care.errors import CareError, ConflictError, NotFoundError, Problem, ValidationFailedError
from care.indicators import indicator_series, sex_of, zone_of
from care.models import FollowUp, FollowUpStatus, Patient, StageSummaryRecord, User
from security.audit import Actor, log
from security.fields import clock_of
from security.roles import Permission

SENT = frozenset({
    FollowUpStatus.INVITED.value, FollowUpStatus.IN_PROGRESS.value, FollowUpStatus.COMPLETED.value,
    FollowUpStatus.UNANSWERED.value,
})
ANSWERED = frozenset({FollowUpStatus.COMPLETED.value})
MAX_CONCLUSION = 4000


class SigningNotAllowedError(CareError):
    """The account may not sign stage summaries (inactive, or without the ``summary.sign`` permission)."""


def followup_adherence(session: Session, patient: Patient, start: date, end: date) -> tuple[int, int]:
    """Return (sent, answered): follow-ups due in the period (patient's calendar), by status."""
    zone = zone_of(patient)
    begin = datetime.combine(start, time(0), tzinfo=zone)
    finish = datetime.combine(date.fromordinal(end.toordinal() + 1), time(0), tzinfo=zone)
    rows = session.execute(
        select(FollowUp.status, func.count()).where(
            FollowUp.patient_id == patient.id, FollowUp.due_at >= begin, FollowUp.due_at < finish,
            FollowUp.content_key.is_(None),
        ).group_by(FollowUp.status)
    ).all()
    sent = sum(count for status, count in rows if status in SENT)
    answered = sum(count for status, count in rows if status in ANSWERED)
    return sent, answered


def compute_summary(session: Session, patient: Patient, start: date, end: date, *, goals: Sequence[Goal] = (),
                    interventions: Sequence[Intervention] = ()) -> StageSummary:
    """Compute the stage summary of the period from the record (with ``goals`` met or not, ``interventions``)."""
    sent, answered = followup_adherence(session, patient, start, end)
    return compute_stage_summary(
        StageSummaryInput(
            period_start=start,
            period_end=end,
            series=indicator_series(session, patient),
            goals=tuple(goals),
            risks=[(day, result) for day, result in risk_history(session, patient) if result.value is not None],
            followups_sent=sent,
            followups_answered=answered,
            interventions=tuple(interventions),
            sex=sex_of(patient),
            age=patient.age_on(end),
        )
    )


def _check_conclusion(conclusion: str | None) -> str | None:
    if conclusion is not None and len(conclusion) > MAX_CONCLUSION:
        raise ValidationFailedError([Problem("conclusion", f"is longer than {MAX_CONCLUSION} characters")])
    return conclusion.strip() if conclusion is not None else None


def create_stage_summary(
    session: Session, patient: Patient, *, period_start: date, period_end: date, actor: Actor,
    conclusion: str | None = None, goals: Sequence[Goal] = (), interventions: Sequence[Intervention] = (),
) -> StageSummaryRecord:
    """Compute and save version 1 of a new stage summary (unsigned), with ``goals`` and ``interventions`` if given.

    Raises:
        ValidationFailedError: the period ends before it starts, or the conclusion is too long.
    """
    if period_end < period_start:
        raise ValidationFailedError([Problem("period_end", "is before period_start")])
    text = _check_conclusion(conclusion)
    content = compute_summary(session, patient, period_start, period_end, goals=goals,
                              interventions=interventions).to_dict()
    now = clock_of(session).now()
    record = StageSummaryRecord(
        summary_id=uuid.uuid4(), version=1, patient_id=patient.id, period_start=period_start,
        period_end=period_end, content=content, conclusion=text, created_by=actor.id[:64], created_at=now,
        updated_at=now,
    )
    session.add(record)
    log(session, actor=actor, action="summary.create", resource_type="stage_summary", resource_id=record.id,
        patient_id=patient.id, details={"version": 1})
    return record


def summary_versions(session: Session, summary_id: uuid.UUID) -> list[StageSummaryRecord]:
    """Return every version of a summary, oldest first."""
    query = select(StageSummaryRecord).where(StageSummaryRecord.summary_id == summary_id)
    return list(session.scalars(query.order_by(StageSummaryRecord.version)))


def revise_stage_summary(
    session: Session, record: StageSummaryRecord, *, actor: Actor, conclusion: str | None = None,
    recompute: bool = False,
) -> StageSummaryRecord:
    """Edit the conclusion (and, with ``recompute``, refresh the content); return the version edited.

    An unsigned version is edited in place; a signed one stays as it is and the edit makes the next
    version.

    Raises:
        ConflictError: ``record`` is not the latest version.
        ValidationFailedError: the conclusion is too long.
    """
    versions = summary_versions(session, record.summary_id)
    if versions[-1].id != record.id:
        raise ConflictError(f"version {record.version} is not the latest (version {versions[-1].version} is)")
    text = _check_conclusion(conclusion)
    patient = session.get(Patient, record.patient_id)
    if patient is None:
        raise NotFoundError("the summary's patient no longer exists")
    content = (
        compute_summary(session, patient, record.period_start, record.period_end).to_dict()
        if recompute else record.content
    )
    now = clock_of(session).now()
    target = record
    if record.signed:
        target = StageSummaryRecord(
            summary_id=record.summary_id, version=record.version + 1, patient_id=record.patient_id,
            period_start=record.period_start, period_end=record.period_end, content=content,
            conclusion=record.conclusion, created_by=actor.id[:64], created_at=now, updated_at=now,
        )
        session.add(target)
    else:
        target.content = content
    if text is not None:
        target.conclusion = text
    target.updated_at = now
    log(session, actor=actor, action="summary.edit", resource_type="stage_summary", resource_id=target.id,
        patient_id=record.patient_id, details={"version": target.version, "recomputed": recompute})
    return target


def sign_stage_summary(
    session: Session, record: StageSummaryRecord, *, signer: User, actor: Actor
) -> StageSummaryRecord:
    """Sign a version: who and when; a signed version is never changed afterwards.

    Raises:
        SigningNotAllowedError: ``signer`` may not sign summaries.
        ConflictError: the version is already signed.
    """
    if not signer.can(Permission.SUMMARY_SIGN):
        raise SigningNotAllowedError(f"{signer.email} may not sign stage summaries")
    if record.signed:
        raise ConflictError(f"version {record.version} was already signed")
    record.signed_by = signer.id
    record.signed_at = clock_of(session).now()
    log(session, actor=actor, action="summary.sign", resource_type="stage_summary", resource_id=record.id,
        patient_id=record.patient_id, details={"version": record.version, "signer": str(signer.id)})
    return record


def latest_signed_summary(session: Session, patient: Patient) -> StageSummaryRecord | None:
    """Return the signed version of the patient's most recent period (the newest signed version), if any."""
    query = (
        select(StageSummaryRecord)
        .where(StageSummaryRecord.patient_id == patient.id, StageSummaryRecord.signed_at.is_not(None))
        .order_by(StageSummaryRecord.period_end.desc(), StageSummaryRecord.version.desc())
        .limit(1)
    )
    return session.scalars(query).one_or_none()


def stored_summary(record: StageSummaryRecord) -> StageSummary:
    """Return the saved content as a :class:`StageSummary` carrying its lines (what the printed report shows)."""
    content: dict[str, Any] = record.content or {}
    follow: dict[str, Any] = content.get("adherence") or {}
    text = follow.get("text") or {"zh": "", "en": ""}
    return StageSummary(
        period_start=record.period_start,
        period_end=record.period_end,
        indicators=(),
        goals=(),
        risks=(),
        adherence=Adherence(int(follow.get("sent", 0)), int(follow.get("answered", 0)), follow.get("rate"),
                            Label(**text)),
        interventions_done=(),
        lines=tuple(Label(**line) for line in content.get("lines", ())),
        rule_packs=dict(content.get("rule_packs", {})),
        version=str(content.get("version", "")),
    )
