"""Care teams, and which patients a staff member may see because of them.

A care team is a named group of staff members and the patients they look after. A staff member
sees (on the work queue, the patient list, a patient's page) the patients of every team they are
in, and their own test patient (``care.test_patients``); a role holding
:attr:`~security.roles.Permission.ALL_PATIENTS` (administrators, the clinic lead) sees every patient.
A patient in no team is therefore seen only by those. A disabled account sees no one.

Every view that shows a patient goes through :func:`scope_of` (lists: its SQL clause) or
:func:`check_access` (one patient). Break-glass (:func:`break_glass`: a role holding it, a written
reason, two hours, audited and kept for review) opens one patient outside one's teams in
:func:`check_access` and nowhere else: never on a list, never to change the record through a task.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, false, func, or_, select, true
from sqlalchemy.orm import Session

from care.errors import CareError, ConflictError, NotFoundError, Problem, ValidationFailedError
from care.models import BreakGlassGrant, CareTeam, CareTeamMember, CareTeamPatient, Patient, User
from security.audit import Actor, log
from security.fields import clock_of
from security.roles import Permission

MAX_NAME = 64


# -- the teams ------------------------------------------------------------------------------------------
def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > MAX_NAME or not name.strip().isprintable():
        raise ValidationFailedError([Problem("name", f"a team name is one line of 1-{MAX_NAME} characters")])
    return cleaned


def _key(name: str) -> str:
    return name.casefold()[:MAX_NAME]


def create_team(session: Session, name: str, *, actor: Actor) -> CareTeam:
    """Make a care team named ``name`` (spaces tidied); audited.

    :raises ValidationFailedError: the name is empty, longer than 64 characters or not one line.
    :raises ConflictError: a team of that name (in any case) already exists.
    """
    cleaned = _clean_name(name)
    if session.scalar(select(func.count()).select_from(CareTeam).where(CareTeam.name_key == _key(cleaned))):
        raise ConflictError(f"a care team named {cleaned!r} already exists")
    team = CareTeam(name=cleaned, name_key=_key(cleaned), created_at=clock_of(session).now())
    session.add(team)
    log(session, actor=actor, action="care_team.create", resource_type="care_team", resource_id=team.id)
    return team


def get_team(session: Session, name: str) -> CareTeam:
    """Return the team named ``name`` (in any case).

    :raises NotFoundError: there is none.
    """
    team = session.scalars(select(CareTeam).where(CareTeam.name_key == _key(" ".join(name.split())))).one_or_none()
    if team is None:
        raise NotFoundError(f"no care team named {name!r}")
    return team


@dataclass(frozen=True)
class TeamSummary:
    """One team as listed: its name, its members' e-mails, how many patients it looks after."""

    name: str
    member_emails: list[str]
    patient_count: int


def list_teams(session: Session) -> list[TeamSummary]:
    """Return every team by name, with its members and its number of patients (no patient is decrypted)."""
    teams = list(session.scalars(select(CareTeam).order_by(CareTeam.name_key)))
    members: dict[uuid.UUID, list[str]] = {team.id: [] for team in teams}
    for team_id, email in session.execute(select(CareTeamMember.team_id, User.email)
                                          .join(User, User.id == CareTeamMember.user_id).order_by(User.email)):
        members[team_id].append(email)
    counts: dict[uuid.UUID, int] = {
        team_id: count for team_id, count in session.execute(
            select(CareTeamPatient.team_id, func.count()).group_by(CareTeamPatient.team_id))}
    return [TeamSummary(team.name, members[team.id], int(counts.get(team.id, 0))) for team in teams]


def members_of(session: Session, team: CareTeam) -> list[User]:
    """Return the team's staff members, by e-mail."""
    return list(session.scalars(select(User).join(CareTeamMember, CareTeamMember.user_id == User.id)
                                .where(CareTeamMember.team_id == team.id).order_by(User.email)))


def patients_of(session: Session, team: CareTeam) -> list[Patient]:
    """Return the team's patients, in the order they were added (the caller audits what it shows of them)."""
    return list(session.scalars(select(Patient).join(CareTeamPatient, CareTeamPatient.patient_id == Patient.id)
                                .where(CareTeamPatient.team_id == team.id)
                                .order_by(CareTeamPatient.added_at, CareTeamPatient.id)))


def teams_of_patient(session: Session, patient: Patient) -> list[CareTeam]:
    """Return the teams that look after ``patient``, by name."""
    return list(session.scalars(select(CareTeam).join(CareTeamPatient, CareTeamPatient.team_id == CareTeam.id)
                                .where(CareTeamPatient.patient_id == patient.id).order_by(CareTeam.name_key)))


def add_member(session: Session, team: CareTeam, user: User, *, actor: Actor) -> bool:
    """Put ``user`` in ``team``; False (and nothing audited) when they already were."""
    if _member_row(session, team, user) is not None:
        return False
    session.add(CareTeamMember(team_id=team.id, user_id=user.id, added_at=clock_of(session).now()))
    log(session, actor=actor, action="care_team.member_add", resource_type="care_team", resource_id=team.id,
        details={"user": str(user.id)})
    return True


def remove_member(session: Session, team: CareTeam, user: User, *, actor: Actor) -> bool:
    """Take ``user`` out of ``team`` (they stop seeing its patients at their next request); False if not in it."""
    row = _member_row(session, team, user)
    if row is None:
        return False
    session.delete(row)
    log(session, actor=actor, action="care_team.member_remove", resource_type="care_team", resource_id=team.id,
        details={"user": str(user.id)})
    return True


def add_patient(session: Session, team: CareTeam, patient: Patient, *, actor: Actor) -> bool:
    """Put ``patient`` in ``team``'s care; False (and nothing audited) when they already were."""
    if _patient_row(session, team, patient) is not None:
        return False
    session.add(CareTeamPatient(team_id=team.id, patient_id=patient.id, added_at=clock_of(session).now()))
    log(session, actor=actor, action="care_team.patient_add", resource_type="care_team", resource_id=team.id,
        patient_id=patient.id)
    return True


def remove_patient(session: Session, team: CareTeam, patient: Patient, *, actor: Actor) -> bool:
    """Take ``patient`` out of ``team``'s care; False when they were not in it."""
    row = _patient_row(session, team, patient)
    if row is None:
        return False
    session.delete(row)
    log(session, actor=actor, action="care_team.patient_remove", resource_type="care_team", resource_id=team.id,
        patient_id=patient.id)
    return True


def _member_row(session: Session, team: CareTeam, user: User) -> CareTeamMember | None:
    return session.scalars(select(CareTeamMember).where(CareTeamMember.team_id == team.id,
                                                        CareTeamMember.user_id == user.id)).one_or_none()


def _patient_row(session: Session, team: CareTeam, patient: Patient) -> CareTeamPatient | None:
    return session.scalars(select(CareTeamPatient).where(CareTeamPatient.team_id == team.id,
                                                         CareTeamPatient.patient_id == patient.id)).one_or_none()


# -- who sees whom ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PatientScope:
    """The patients one staff member may see: everyone, or their teams' and their own test patients."""

    sees_all: bool
    viewer_id: uuid.UUID | None = None

    def clause(self, patient_id: ColumnElement[Any] | Any) -> ColumnElement[bool]:
        """A SQL condition on a patient id column (``Patient.id``, ``StaffTask.patient_id``...) for this scope."""
        if self.sees_all:
            return true()
        if self.viewer_id is None:
            return false()
        in_my_teams = (select(CareTeamPatient.patient_id)
                       .join(CareTeamMember, CareTeamMember.team_id == CareTeamPatient.team_id)
                       .where(CareTeamMember.user_id == self.viewer_id))
        my_test_patients = select(Patient.id).where(Patient.test_owner_id == self.viewer_id,
                                                    Patient.is_test.is_(True))
        return or_(patient_id.in_(in_my_teams), patient_id.in_(my_test_patients))

    def permits(self, session: Session, patient_id: uuid.UUID) -> bool:
        """Tell whether the patient with this id is in the scope."""
        if self.sees_all:
            return True
        return bool(session.scalar(select(func.count()).select_from(Patient)
                                   .where(Patient.id == patient_id, self.clause(Patient.id))))


#: The whole clinic: for the system's own work and the operator's command line, never for a staff view.
EVERY_PATIENT = PatientScope(sees_all=True)
NO_PATIENT = PatientScope(sees_all=False)


def scope_of(user: User) -> PatientScope:
    """Return the patients ``user`` may see (nobody when the account is disabled)."""
    if not user.is_active:
        return NO_PATIENT
    if user.can(Permission.ALL_PATIENTS):
        return EVERY_PATIENT
    return PatientScope(sees_all=False, viewer_id=user.id)


class OutsideCareTeamError(CareError):
    """The patient is not in any of the staff member's care teams (nor their own test patient).

    ``break_glass_possible`` tells whether the staff member's role holds break-glass, so that a
    page can offer it once that issue lands; today the refusal stands.
    """

    def __init__(self, patient_id: uuid.UUID, *, break_glass_possible: bool) -> None:
        super().__init__(f"patient {patient_id} is not in any of your care teams")
        self.patient_id = patient_id
        self.break_glass_possible = break_glass_possible


@dataclass(frozen=True)
class Access:
    """Why a staff member may open a patient's record (audit entries can name it)."""

    reason: Literal["all_patients", "care_team", "own_test_patient", "break_glass"]
    #: the break-glass grant that opened it, if one did
    grant_id: uuid.UUID | None = None


def check_access(session: Session, user: User, patient: Patient, *, break_glass_opens: bool = False) -> Access:
    """Tell why ``user`` may open ``patient``, or refuse.

    ``break_glass_opens``: a live break-glass grant of the user's opens the patient too (the patient
    page and its charts ask for that; nothing that changes the record or speaks as the patient does).

    :raises OutsideCareTeamError: the patient is outside the user's teams; nothing was read of them.
    """
    if user.is_active and user.can(Permission.ALL_PATIENTS):
        return Access("all_patients")
    if user.is_active and patient.is_test and patient.test_owner_id == user.id:
        return Access("own_test_patient")
    if user.is_active and session.scalar(
            select(func.count()).select_from(CareTeamPatient)
            .join(CareTeamMember, CareTeamMember.team_id == CareTeamPatient.team_id)
            .where(CareTeamPatient.patient_id == patient.id, CareTeamMember.user_id == user.id)):
        return Access("care_team")
    may_break_glass = user.is_active and user.can(Permission.BREAK_GLASS)
    grant = live_grant(session, user, patient) if break_glass_opens and may_break_glass else None
    if grant is not None:
        return Access("break_glass", grant.id)
    raise OutsideCareTeamError(patient.id, break_glass_possible=may_break_glass)


# -- break-glass ------------------------------------------------------------------------------------------
#: How long a break-glass opening lasts: the time to deal with the emergency, not a standing access.
BREAK_GLASS_LIFETIME = timedelta(hours=2)
#: A written reason: enough words to be reviewed, short enough to be one note.
REASON_LENGTH = (10, 1000)


def live_grant(session: Session, user: User, patient: Patient) -> BreakGlassGrant | None:
    """Return the user's break-glass grant on ``patient`` that has not run out, if any."""
    now = clock_of(session).now()
    return session.scalars(select(BreakGlassGrant).where(
        BreakGlassGrant.user_id == user.id, BreakGlassGrant.patient_id == patient.id,
        BreakGlassGrant.granted_at <= now, BreakGlassGrant.expires_at > now)
        .order_by(BreakGlassGrant.expires_at.desc()).limit(1)).first()


def break_glass(session: Session, user: User, patient: Patient, *, reason: str, actor: Actor) -> BreakGlassGrant:
    """Open ``patient`` to ``user`` outside their care teams for :data:`BREAK_GLASS_LIFETIME`, for ``reason``.

    The grant keeps the reason (encrypted) for review; the audit entry ``break_glass.open`` names the
    grant and its end, never the reason. A patient the user may already open gets no grant.

    :raises ValidationFailedError: the reason is shorter than 10 or longer than 1000 characters.
    :raises PermissionError: the user's role does not hold break-glass, or the account is disabled.
    :raises ConflictError: the user may open the patient already (no break-glass needed).
    """
    if not user.is_active or not user.can(Permission.BREAK_GLASS):
        raise PermissionError("this role may not break the glass")
    text = " ".join(reason.split()) if isinstance(reason, str) else ""
    shortest, longest = REASON_LENGTH
    if not shortest <= len(text) <= longest:
        raise ValidationFailedError([Problem("reason", f"must be {shortest}-{longest} characters")])
    try:
        check_access(session, user, patient)
    except OutsideCareTeamError:
        pass
    else:
        raise ConflictError("you may open this patient already")
    now = clock_of(session).now()
    grant = BreakGlassGrant(user_id=user.id, patient_id=patient.id, granted_at=now,
                            expires_at=now + BREAK_GLASS_LIFETIME)
    session.add(grant)
    grant.reason = text
    log(session, actor=actor, action="break_glass.open", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"grant": str(grant.id), "expires_at": grant.expires_at.isoformat()})
    return grant


@dataclass(frozen=True)
class BreakGlassEntry:
    """One break-glass opening as reviewers list it."""

    grant: BreakGlassGrant
    user_email: str
    reason: str


def break_glass_for_review(session: Session, *, since: datetime, limit: int = 200) -> list[BreakGlassEntry]:
    """Return the break-glass openings since ``since``, newest first, with who opened and why (the caller
    audits that the reasons were read)."""
    rows = session.execute(select(BreakGlassGrant, User.email).join(User, User.id == BreakGlassGrant.user_id)
                           .where(BreakGlassGrant.granted_at >= since)
                           .order_by(BreakGlassGrant.granted_at.desc(), BreakGlassGrant.id).limit(limit))
    return [BreakGlassEntry(grant, email, grant.reason or "") for grant, email in rows]
