"""The patients as the panel shows them to a staff member: a list and a patient's page, within their care teams.

Each patient shown is decrypted, so each gets a ``patient.view`` entry naming the staff member who
looked; a patient outside the staff member's teams is never read (``care.care_teams``).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, bindparam, exists, func, or_, select
from sqlalchemy.orm import Session

from care.care_teams import Access, PatientScope, break_glass, check_access, teams_of_patient
from care.clinical.common import Lang
from care.errors import NotFoundError
from care.identifiers import IdentifierError, normalize_card_no, normalize_phone
from care.models import (
    BreakGlassGrant,
    EnrolmentStatus,
    Patient,
    PatientStatus,
    Plan,
    PlanEnrolment,
    StaffTask,
    TagDefinition,
    TagRule,
    TaskStatus,
    User,
)
from care.patient_record import PatientRecord, patient_record, trend_of
from care.tags import clean_tag, patient_ids_with_tag
from security.audit import Actor, log
from security.fields import clock_of
from security.roles import Permission

PER_PAGE = 50
#: The longest search text taken (a name, a card number or a phone number).
MAX_SEARCH = 64


@dataclass(frozen=True)
class PatientRow:
    """One patient on the list, decrypted (the phone masked: the list is for finding, not for dialling)."""

    id: uuid.UUID
    card_no: str
    name: str
    gender: str
    age: int | None
    phone_hint: str
    is_test: bool


@dataclass(frozen=True)
class PatientFilter:
    """What the list is narrowed to.

    ``text`` is a whole name, a card number or a phone number, each found through its blind index
    (never a part of one: the database holds no name in clear); ``tag`` a tag the patients have;
    ``plan`` the key of a plan they are enrolled in now.
    """

    text: str | None = None
    tag: str | None = None
    plan: str | None = None


@dataclass(frozen=True)
class PatientList:
    """One page of the patients a staff member may see, newest first."""

    rows: list[PatientRow]
    total: int
    page: int
    pages: int


def mask_phone(phone: str | None) -> str:
    """Show a phone number as its last four digits (``*******5678``), enough to tell two patients apart."""
    if not phone:
        return ""
    digits = phone[-4:]
    return "*" * max(0, min(7, len(phone) - 4)) + digits


def _text_matches(session: Session, text: str) -> ColumnElement[bool]:
    """The search text as each identifier it may be: card number, phone number, whole name (blind indexes)."""
    candidates: list[ColumnElement[bool]] = [Patient.name.matches(session, text)]
    for normalize, field in ((normalize_card_no, Patient.card_no), (normalize_phone, Patient.phone)):
        try:
            candidates.append(field.matches(session, normalize(text)))
        except IdentifierError:
            continue
    return or_(*candidates)


def filter_conditions(session: Session, scope: PatientScope, filters: PatientFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of the list: in ``scope``, not erased, and matching ``filters``.

    A tag's patients come from :func:`care.tags.patient_ids_with_tag` (its index is per patient, so
    SQL cannot find them); their ids are written into the query as literals, not as one bound
    parameter each, so a tag on tens of thousands of patients stays within SQLite's limit.

    :raises ValidationFailedError: the tag is not one line of at most 64 characters.
    """
    condition: list[ColumnElement[bool]] = [Patient.status != PatientStatus.ERASED.value, scope.clause(Patient.id)]
    text = (filters.text or "").strip()[:MAX_SEARCH]
    if text:
        condition.append(_text_matches(session, text))
    if filters.tag:
        tagged = patient_ids_with_tag(session, clean_tag(filters.tag))
        condition.append(Patient.id.in_(bindparam("tagged", tagged, expanding=True, literal_execute=True)))
    if filters.plan:
        condition.append(exists().where(PlanEnrolment.patient_id == Patient.id,
                                        PlanEnrolment.plan_key == filters.plan,
                                        PlanEnrolment.status == EnrolmentStatus.ACTIVE.value))
    return condition


def list_patients(session: Session, *, scope: PatientScope, actor: Actor, filters: PatientFilter | None = None,
                  page: int = 1, per_page: int | None = None) -> PatientList:
    """Return page ``page`` of the patients in ``scope`` that match ``filters``, newest first; audit each shown.

    Counted and cut in SQL (``LIMIT``/``OFFSET``): only the page's patients are loaded and decrypted.

    :raises ValidationFailedError: the tag filter is malformed.
    """
    per_page = per_page or PER_PAGE
    condition = filter_conditions(session, scope, filters or PatientFilter())
    total = int(session.scalar(select(func.count()).select_from(Patient).where(*condition)) or 0)
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    patients = session.scalars(select(Patient).where(*condition).order_by(Patient.created_at.desc(), Patient.id)
                               .offset((page - 1) * per_page).limit(per_page))
    today = clock_of(session).now().date()
    rows = []
    for patient in patients:
        rows.append(PatientRow(patient.id, patient.card_no or "", patient.name or "", patient.gender or "",
                               patient.age_on(today), mask_phone(patient.phone), patient.is_test))
        log(session, actor=actor, action="patient.view", resource_type="patient", resource_id=patient.id,
            patient_id=patient.id, details={"view": "patient_list"})
    return PatientList(rows, total, page, pages)


@dataclass(frozen=True)
class FilterChoices:
    """What the list's filters offer: the tags the clinic describes or sets by rule, and the plans."""

    tags: list[str]
    plans: list[tuple[str, str, str]]  # key, zh title, en title


def filter_choices(session: Session) -> FilterChoices:
    """Return the tags and plans to filter by (no patient is read)."""
    tags = set(session.scalars(select(TagDefinition.name))) | set(session.scalars(select(TagRule.tag)))
    plans = [(plan.key, plan.title_zh, plan.title_en) for plan in session.scalars(select(Plan).order_by(Plan.key))]
    return FilterChoices(sorted(tags), plans)


@dataclass(frozen=True)
class PatientPage:
    """A patient's page: who they are, which teams look after them, and (for clinical roles) their record."""

    patient: Patient
    age: int | None
    teams: list[str]
    open_tasks: list[StaffTask]
    access: Access
    #: when the break-glass opening this page ends (None: not opened by break-glass)
    break_glass_until: datetime | None = None
    #: None for a role without :attr:`Permission.RECORD_READ` (the front desk sees no clinical data).
    record: PatientRecord | None = None


def _openable(session: Session, patient_id: uuid.UUID, user: User) -> tuple[Patient, Access]:
    patient = session.get(Patient, patient_id)
    if patient is None or patient.status == PatientStatus.ERASED.value:
        raise NotFoundError(f"no patient {patient_id}")
    return patient, check_access(session, user, patient, break_glass_opens=True)


def patient_page(session: Session, patient_id: uuid.UUID, *, user: User, actor: Actor) -> PatientPage:
    """Open a patient's page for ``user``, audited with the reason they may see it.

    The record (tags, observations, trends, follow-ups, tasks) is read only for a role holding
    :attr:`~security.roles.Permission.RECORD_READ`.

    :raises NotFoundError: no such patient (or erased).
    :raises OutsideCareTeamError: the patient is outside the user's care teams; nothing was decrypted.
    """
    patient, access = _openable(session, patient_id, user)
    tasks = list(session.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id,
                                                         StaffTask.status != TaskStatus.DONE.value)
                                 .order_by(StaffTask.created_at)))
    clinical = user.can(Permission.RECORD_READ)
    log(session, actor=actor, action="patient.view", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"view": "patient_page" if clinical else "patient_profile",
                                        "access": access.reason})
    grant = session.get(BreakGlassGrant, access.grant_id) if access.grant_id is not None else None
    return PatientPage(patient, patient.age_on(clock_of(session).now().date()),
                       [team.name for team in teams_of_patient(session, patient)], tasks, access,
                       grant.expires_at if grant is not None else None,
                       patient_record(session, patient) if clinical else None)


def open_by_break_glass(session: Session, patient_id: uuid.UUID, *, user: User, reason: str,
                        actor: Actor) -> BreakGlassGrant:
    """Open a patient outside ``user``'s care teams by break-glass (:func:`care.care_teams.break_glass`).

    :raises NotFoundError: no such patient (or erased).
    :raises ValidationFailedError: the reason is too short or too long.
    :raises PermissionError: the role does not hold break-glass.
    :raises ConflictError: the user may open the patient already.
    """
    patient = session.get(Patient, patient_id)
    if patient is None or patient.status == PatientStatus.ERASED.value:
        raise NotFoundError(f"no patient {patient_id}")
    return break_glass(session, user, patient, reason=reason, actor=actor)


def trend_chart(session: Session, patient_id: uuid.UUID, code: str, *, user: User, actor: Actor,
                lang: Lang) -> bytes:
    """Draw the trend of indicator ``code`` of a patient as SVG, for ``user``; audited.

    :raises NotFoundError: no such patient, or they have no values of ``code``.
    :raises OutsideCareTeamError: the patient is outside the user's care teams.
    """
    from care.clinical.charts import render_trend  # matplotlib: loaded when the first chart is drawn

    patient, access = _openable(session, patient_id, user)
    trend = trend_of(session, patient, code)
    if trend is None:
        raise NotFoundError(f"no values of {code!r}")
    log(session, actor=actor, action="patient.view", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"view": "trend_chart", "code": trend.code, "access": access.reason})
    return render_trend(trend, lang=lang, fmt="svg")
