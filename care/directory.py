"""The patients as the panel shows them to a staff member: a list and a patient's page, within their care teams.

Each patient shown is decrypted, so each gets a ``patient.view`` entry naming the staff member who
looked; a patient outside the staff member's teams is never read (``care.care_teams``).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from care.care_teams import Access, PatientScope, check_access, teams_of_patient
from care.errors import NotFoundError
from care.identifiers import IdentifierError, normalize_card_no
from care.models import Patient, PatientStatus, StaffTask, TaskStatus, User
from security.audit import Actor, log
from security.fields import clock_of

PER_PAGE = 50


@dataclass(frozen=True)
class PatientRow:
    """One patient on the list, decrypted."""

    id: uuid.UUID
    card_no: str
    name: str
    gender: str
    age: int | None
    is_test: bool


@dataclass(frozen=True)
class PatientList:
    """One page of the patients a staff member may see, newest first."""

    rows: list[PatientRow]
    total: int
    page: int
    pages: int


def list_patients(session: Session, *, scope: PatientScope, actor: Actor, card_no: str | None = None,
                  page: int = 1, per_page: int = PER_PAGE) -> PatientList:
    """Return page ``page`` of the patients in ``scope`` (or the one with ``card_no``, if in it); audit each shown.

    A card number that is not well formed finds no one.
    """
    condition = [Patient.status != PatientStatus.ERASED.value, scope.clause(Patient.id)]
    if card_no is not None:
        try:
            condition.append(Patient.card_no.matches(session, normalize_card_no(card_no)))
        except IdentifierError:
            return PatientList([], 0, 1, 1)
    total = int(session.scalar(select(func.count()).select_from(Patient).where(*condition)) or 0)
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    patients = session.scalars(select(Patient).where(*condition).order_by(Patient.created_at.desc(), Patient.id)
                               .offset((page - 1) * per_page).limit(per_page))
    today = clock_of(session).now().date()
    rows = []
    for patient in patients:
        rows.append(PatientRow(patient.id, patient.card_no or "", patient.name or "", patient.gender or "",
                               patient.age_on(today), patient.is_test))
        log(session, actor=actor, action="patient.view", resource_type="patient", resource_id=patient.id,
            patient_id=patient.id, details={"view": "patient_list"})
    return PatientList(rows, total, page, pages)


@dataclass(frozen=True)
class PatientPage:
    """A patient's page: who they are, which teams look after them, their open tasks."""

    patient: Patient
    age: int | None
    teams: list[str]
    open_tasks: list[StaffTask]
    access: Access


def patient_page(session: Session, patient_id: uuid.UUID, *, user: User, actor: Actor) -> PatientPage:
    """Open a patient's page for ``user``, audited with the reason they may see it.

    :raises NotFoundError: no such patient (or erased).
    :raises OutsideCareTeamError: the patient is outside the user's care teams; nothing was decrypted.
    """
    patient = session.get(Patient, patient_id)
    if patient is None or patient.status == PatientStatus.ERASED.value:
        raise NotFoundError(f"no patient {patient_id}")
    access = check_access(session, user, patient)
    tasks = list(session.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id,
                                                         StaffTask.status != TaskStatus.DONE.value)
                                 .order_by(StaffTask.created_at)))
    log(session, actor=actor, action="patient.view", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"view": "patient_page", "access": access.reason})
    return PatientPage(patient, patient.age_on(clock_of(session).now().date()),
                       [team.name for team in teams_of_patient(session, patient)], tasks, access)
