"""Exports (.xlsx) staff make in the panel: patients, follow-up records, questionnaire results, observations.

An export is a row (:class:`care.models.ExportJob`) made by :func:`request_export`; whoever runs it
(the panel starts a thread) opens it with :func:`open_run` and calls :meth:`ExportRun.step` until it
returns False, committing after each step, so the progress (``done`` of ``total`` patients) is seen
from any process. The patients are those of the requester's care teams matching the filters (a tag,
a plan), test patients left out, read in chunks by id; follow-ups, questionnaire results and
observations are narrowed by a date range too. Every cell goes through
:func:`care.spreadsheet.safe_cell`; each patient's export is audited, and the export as a whole
(``export.create``: kind, filters, rows). The file is written 0600 under a random name in the
exports folder, and removed when downloaded (:func:`take_download`) or an hour after it was made
(:func:`purge_files`)::

    job = request_export(session, kind="observations", filters=ExportFilter(tag="高血压"), lang="zh",
                         user=user, actor=actor)
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from care.care_teams import PatientScope, scope_of
from care.clinical.common import Lang
from care.directory import PatientFilter, filter_conditions
from care.errors import NotFoundError, Problem, ValidationFailedError
from care.followups import EXPORT_HEADER as FOLLOWUP_HEADER
from care.followups import export_rows as followup_rows
from care.models import ExportJob, ExportStatus, FlowResult, FollowUp, Patient, User
from care.patients import real_patients
from care.record_results import EXPORT_HEADER as OBSERVATION_HEADER
from care.record_results import export_rows as observation_rows
from care.spreadsheet import safe_cell
from security.audit import Actor, log
from security.fields import clock_of
from security.files import open_private

#: Patients per step of an export (one commit of progress each).
CHUNK = 200
#: How long a made file is kept when nobody downloads it.
KEEP_FOR = timedelta(hours=1)
#: An export not advanced for this long stopped (its web process ended): it is marked failed.
STALLED_AFTER = timedelta(minutes=10)
MAX_TAG = 64


@dataclass(frozen=True)
class ExportFilter:
    """What staff narrowed an export to; the dates bound the follow-ups' due day, the results' and observations' day."""

    tag: str | None = None
    plan: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def as_json(self) -> dict[str, str]:
        values = {"tag": self.tag, "plan": self.plan,
                  "from": self.date_from.isoformat() if self.date_from else None,
                  "to": self.date_to.isoformat() if self.date_to else None}
        return {key: value for key, value in values.items() if value}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> ExportFilter:
        return cls(tag=data.get("tag"), plan=data.get("plan"),
                   date_from=date.fromisoformat(data["from"]) if data.get("from") else None,
                   date_to=date.fromisoformat(data["to"]) if data.get("to") else None)

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """The date range as instants: from the start of the first day to the end of the last (UTC)."""
        start = datetime.combine(self.date_from, time(), UTC) if self.date_from else None
        end = datetime.combine(self.date_to + timedelta(days=1), time(), UTC) if self.date_to else None
        return start, end


# -- kinds ---------------------------------------------------------------------------------------------------
Rows = Callable[[Session, "ExportRun", list[Patient]], Iterator[Sequence[object]]]


@dataclass(frozen=True)
class ExportKind:
    """One kind of export: its sheet title, whether a date range applies, its header and its rows per chunk."""

    name: str
    title_zh: str
    title_en: str
    dated: bool
    header: Callable[[Session, ExportRun], Sequence[str]]
    rows: Rows

    def title(self, lang: str) -> str:
        return self.title_en if lang == "en" else self.title_zh


PATIENT_HEADER = {
    "zh": ("卡号", "姓名", "性别", "出生日期", "手机号", "语言", "状态", "建档日期"),
    "en": ("card_no", "name", "gender", "birth_date", "phone", "language", "status", "enrolled"),
}


def _patient_rows(session: Session, run: ExportRun, patients: list[Patient]) -> Iterator[Sequence[object]]:
    for patient in patients:
        log(session, actor=run.actor, action="patient.export", resource_type="patient", resource_id=patient.id,
            patient_id=patient.id, details={})
        yield (patient.card_no, patient.name, patient.gender,
               patient.birth_date.isoformat() if patient.birth_date else "", patient.phone or "", patient.language,
               patient.status, patient.created_at.date().isoformat())


def _followup_rows(session: Session, run: ExportRun, patients: list[Patient]) -> Iterator[Sequence[object]]:
    start, end = run.filters.bounds()
    query = select(FollowUp).where(FollowUp.patient_id.in_([patient.id for patient in patients]))
    if start is not None:
        query = query.where(FollowUp.due_at >= start)
    if end is not None:
        query = query.where(FollowUp.due_at < end)
    followups = session.scalars(query.order_by(FollowUp.patient_id, FollowUp.due_at, FollowUp.id))
    rows = followup_rows(session, followups, lang=run.lang, actor=run.actor)
    next(rows)  # the header, written once at the top
    yield from rows


def _observation_rows(session: Session, run: ExportRun, patients: list[Patient]) -> Iterator[Sequence[object]]:
    lang: Lang = "en" if run.lang == "en" else "zh"
    low = run.filters.date_from.isoformat() if run.filters.date_from else None
    high = run.filters.date_to.isoformat() if run.filters.date_to else None
    rows = observation_rows(session, patients, lang=lang, actor=run.actor)
    next(rows)
    for row in rows:
        day = str(row[1])  # the result's day, ISO: compared as text
        if (low is None or day >= low) and (high is None or day <= high):
            yield row


RESULT_COLUMNS = {"zh": ("卡号", "问卷", "版本", "日期"), "en": ("card_no", "flow", "version", "date")}


def _result_conditions(run: ExportRun) -> list[ColumnElement[bool]]:
    start, end = run.filters.bounds()
    conditions: list[ColumnElement[bool]] = []
    if start is not None:
        conditions.append(FlowResult.recorded_at >= start)
    if end is not None:
        conditions.append(FlowResult.recorded_at < end)
    return conditions


def _result_header(session: Session, run: ExportRun) -> Sequence[str]:
    # One column per result name (names come from the flows, the same for every patient: kept in clear).
    names = session.scalars(select(FlowResult.name).distinct().join(Patient, Patient.id == FlowResult.patient_id)
                            .where(*run.patient_conditions, *_result_conditions(run)).order_by(FlowResult.name))
    run.result_names = list(names)
    return (*RESULT_COLUMNS["en" if run.lang == "en" else "zh"], *run.result_names)


def _result_rows(session: Session, run: ExportRun, patients: list[Patient]) -> Iterator[Sequence[object]]:
    """One row per conversation (questionnaire answered): its results, each in the column of its name."""
    by_id = {patient.id: patient for patient in patients}
    results = session.scalars(select(FlowResult).where(FlowResult.patient_id.in_(list(by_id)),
                                                       *_result_conditions(run))
                              .order_by(FlowResult.patient_id, FlowResult.session_id, FlowResult.recorded_at,
                                        FlowResult.id))
    position = {name: index for index, name in enumerate(run.result_names)}
    current: tuple[uuid.UUID, uuid.UUID | None] | None = None
    row: list[object] = []
    counted: dict[uuid.UUID, int] = {}
    for result in results:
        key = (result.patient_id, result.session_id)
        if key != current:
            if row:
                yield row
            current = key
            row = [by_id[result.patient_id].card_no, result.flow_id, result.flow_version,
                   result.recorded_at.date().isoformat(), *([""] * len(position))]
            counted[result.patient_id] = counted.get(result.patient_id, 0) + 1
        if result.name in position:
            value = result.label if result.label not in (None, "") else result.value
            row[4 + position[result.name]] = "" if value is None else value if isinstance(value, int | float) \
                else str(value)
    if row:
        yield row
    for patient_id, conversations in counted.items():
        log(session, actor=run.actor, action="flow_result.export", resource_type="patient", resource_id=patient_id,
            patient_id=patient_id, details={"questionnaires": conversations})


KINDS: dict[str, ExportKind] = {kind.name: kind for kind in (
    ExportKind("patients", "患者", "Patients", False,
               lambda _session, run: PATIENT_HEADER["en" if run.lang == "en" else "zh"], _patient_rows),
    ExportKind("followups", "随访记录", "Follow-up records", True,
               lambda _session, run: FOLLOWUP_HEADER["en" if run.lang == "en" else "zh"], _followup_rows),
    ExportKind("results", "问卷结果", "Questionnaire results", True, _result_header, _result_rows),
    ExportKind("observations", "检查结果", "Observations", True,
               lambda _session, run: OBSERVATION_HEADER["en" if run.lang == "en" else "zh"], _observation_rows),
)}


# -- requesting ------------------------------------------------------------------------------------------------
def request_export(session: Session, *, kind: str, filters: ExportFilter, lang: str, user: User,
                   actor: Actor) -> ExportJob:
    """Queue an export of ``kind`` for ``user``; audited (``export.request``).

    :raises ValidationFailedError: naming ``kind``, ``tag``, ``date_to`` (a range that ends before it starts).
    """
    problems = []
    if kind not in KINDS:
        problems.append(Problem("kind", f"one of {', '.join(KINDS)}"))
    if filters.tag is not None and (len(filters.tag) > MAX_TAG or not filters.tag.isprintable()):
        problems.append(Problem("tag", f"a tag is one line of at most {MAX_TAG} characters"))
    if filters.date_from and filters.date_to and filters.date_to < filters.date_from:
        problems.append(Problem("date_to", "the range ends before it starts"))
    if problems:
        raise ValidationFailedError(problems)
    now = clock_of(session).now()
    job = ExportJob(id=uuid.uuid4(), kind=kind, lang="en" if lang == "en" else "zh", filters=filters.as_json(),
                    requested_by=user.id, status=ExportStatus.QUEUED.value, total=0, done=0, rows=0,
                    created_at=now, updated_at=now)
    session.add(job)
    log(session, actor=actor, action="export.request", resource_type="export", resource_id=job.id,
        details={"kind": kind, **_flat(job.filters)})
    return job


def _flat(filters: dict[str, str]) -> dict[str, str]:
    """The filters as audit details (flat: ``filter_tag``, ``filter_from``...)."""
    return {f"filter_{key}": value for key, value in filters.items()}


def job_of(session: Session, job_id: uuid.UUID, user: User) -> ExportJob:
    """Return the export ``job_id`` of ``user`` (nobody sees another's).

    :raises NotFoundError: there is none of theirs.
    """
    job = session.get(ExportJob, job_id)
    if job is None or job.requested_by != user.id:
        raise NotFoundError("no such export")
    return job


def recent_jobs(session: Session, user: User, *, limit: int = 20) -> list[ExportJob]:
    """Return the user's latest exports, newest first."""
    return list(session.scalars(select(ExportJob).where(ExportJob.requested_by == user.id)
                                .order_by(ExportJob.created_at.desc(), ExportJob.id).limit(limit)))


# -- running -------------------------------------------------------------------------------------------------
@dataclass
class ExportRun:
    """An export being written: its job, who asked (their scope), the workbook, how far it is."""

    job_id: uuid.UUID
    kind: ExportKind
    lang: str
    filters: ExportFilter
    actor: Actor
    scope: PatientScope
    folder: Path
    patient_conditions: list[ColumnElement[bool]]
    workbook: Any
    sheet: Any
    last_id: uuid.UUID | None = None
    result_names: list[str] = field(default_factory=list)

    def step(self, session: Session, *, chunk: int = CHUNK) -> bool:
        """Write the next chunk of patients; return False when the export is finished (file saved, audited)."""
        job = session.get(ExportJob, self.job_id)
        if job is None:
            return False
        query = select(Patient).where(*self.patient_conditions).order_by(Patient.id).limit(chunk)
        if self.last_id is not None:
            query = query.where(Patient.id > self.last_id)
        patients = list(session.scalars(query))
        now = clock_of(session).now()
        if not patients:
            self._finish(session, job, now)
            return False
        for row in self.kind.rows(session, self, patients):
            self.sheet.append([safe_cell(value) for value in row])
            job.rows += 1
        self.last_id = patients[-1].id
        job.done += len(patients)
        job.updated_at = now
        return True

    def _finish(self, session: Session, job: ExportJob, now: datetime) -> None:
        name = f"{secrets.token_hex(16)}.xlsx"
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with os.fdopen(open_private(self.folder / name, os.O_WRONLY | os.O_TRUNC), "wb") as handle:
            self.workbook.save(handle)
        job.file_name, job.status = name, ExportStatus.DONE.value
        job.finished_at, job.updated_at, job.expires_at = now, now, now + KEEP_FOR
        log(session, actor=self.actor, action="export.create", resource_type="export", resource_id=job.id,
            details={"kind": job.kind, **_flat(job.filters), "rows": job.rows, "patients": job.done})


def open_run(session: Session, job_id: uuid.UUID, *, folder: Path, actor: Actor) -> ExportRun:
    """Start writing the queued export ``job_id``: count its patients, open the workbook with its header.

    :raises NotFoundError: no queued export of that id (or its requester is gone).
    """
    from openpyxl import Workbook  # imported by the export itself: the web process loads it only when needed

    job = session.get(ExportJob, job_id)
    user = session.get(User, job.requested_by) if job is not None else None
    if job is None or user is None or job.status != ExportStatus.QUEUED.value:
        raise NotFoundError("no such queued export")
    filters = ExportFilter.from_json(job.filters)
    scope = scope_of(user)
    conditions = [*filter_conditions(session, scope, PatientFilter(tag=filters.tag, plan=filters.plan)),
                  real_patients()]
    kind = KINDS[job.kind]
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(kind.title(job.lang))
    run = ExportRun(job.id, kind, job.lang, filters, actor, scope, folder, conditions, workbook, sheet)
    sheet.append([safe_cell(value) for value in kind.header(session, run)])
    job.total = int(session.scalar(select(func.count()).select_from(Patient).where(*conditions)) or 0)
    job.status = ExportStatus.RUNNING.value
    job.updated_at = clock_of(session).now()
    return run


def fail(session: Session, job_id: uuid.UUID, reason: str) -> None:
    """Mark the export failed (the reason is for staff, never a patient's data)."""
    job = session.get(ExportJob, job_id)
    if job is not None:
        job.status, job.error = ExportStatus.FAILED.value, reason[:200]
        job.finished_at = job.updated_at = clock_of(session).now()


# -- the file ----------------------------------------------------------------------------------------------
def take_download(session: Session, job_id: uuid.UUID, *, user: User, folder: Path, actor: Actor) -> IO[bytes]:
    """Open the export's file for its requester and remove it from the folder at once (it is read once).

    The open file stays readable until closed; audited (``export.download``).

    :raises NotFoundError: no finished export of theirs whose file is still kept.
    """
    job = job_of(session, job_id, user)
    now = clock_of(session).now()
    if job.status != ExportStatus.DONE.value or job.file_name is None or (job.expires_at and job.expires_at <= now):
        raise NotFoundError("the export's file is not kept any more")
    path = folder / job.file_name
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise NotFoundError("the export's file is not kept any more") from None
    path.unlink()
    job.status, job.file_name, job.updated_at = ExportStatus.REMOVED.value, None, now
    log(session, actor=actor, action="export.download", resource_type="export", resource_id=job.id,
        details={"kind": job.kind, "rows": job.rows})
    return handle


def exports_folder(blob_dir: Path) -> Path:
    """Return the folder of the export files: beside the blobs (``instance/exports`` by default)."""
    return Path(blob_dir).parent / "exports"


def purge_files(session: Session, folder: Path) -> int:
    """Remove the files of exports kept past their hour, and mark failed the exports that stopped; return how many.

    The panel calls it on its exports page, the worker every few minutes (``purge_exports``).
    """
    now = clock_of(session).now()
    removed = 0
    for job in session.scalars(select(ExportJob).where(
            ExportJob.status.in_([ExportStatus.QUEUED.value, ExportStatus.RUNNING.value]),
            ExportJob.updated_at <= now - STALLED_AFTER)):
        job.status, job.error = ExportStatus.FAILED.value, "the export stopped before it was finished"
        job.finished_at = job.updated_at = now
        removed += 1
    for job in session.scalars(select(ExportJob).where(ExportJob.status == ExportStatus.DONE.value,
                                                       ExportJob.expires_at <= now)):
        if job.file_name:
            (folder / job.file_name).unlink(missing_ok=True)
        job.status, job.file_name, job.updated_at = ExportStatus.REMOVED.value, None, now
        removed += 1
    return removed
