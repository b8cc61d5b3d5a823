"""Care teams: staff members and patients grouped, and which patients a staff member may see because of them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from care import care_teams
from care.care_teams import OutsideCareTeamError
from care.errors import ConflictError, NotFoundError, ValidationFailedError
from care.models import Patient
from care.tasks import create_task, work_queue
from care.test_patients import own_test_patient
from security.audit import Actor, AuditEntry
from tests.conftest import TEST_ACTOR


@pytest.fixture
def staff_member(db):
    from care import staff

    staff.ensure_roles(db)
    serial = iter(range(1, 1000))

    def make(role: str = "nurse"):
        return staff.create_user(db, email=f"{role}{next(serial)}@clinic.test", display_name=f"Test {role}",
                                 role_name=role, actor=TEST_ACTOR).user

    return make


def visible(db, user) -> set:
    scope = care_teams.scope_of(user)
    return set(db.scalars(select(Patient.id).where(scope.clause(Patient.id))))


def test_a_team_is_made_once_by_name(db):
    team = care_teams.create_team(db, "  Diabetes clinic ", actor=TEST_ACTOR)
    assert team.name == "Diabetes clinic"
    with pytest.raises(ConflictError, match="already"):
        care_teams.create_team(db, "diabetes CLINIC", actor=TEST_ACTOR)
    assert care_teams.get_team(db, "DIABETES clinic").id == team.id
    [entry] = db.scalars(select(AuditEntry).where(AuditEntry.action == "care_team.create")).all()
    assert entry.resource_id == str(team.id)


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "line\nbreak"])
def test_a_team_name_must_be_a_short_line(db, name):
    with pytest.raises(ValidationFailedError) as failure:
        care_teams.create_team(db, name, actor=TEST_ACTOR)
    assert failure.value.problems[0].field == "name"


def test_an_unknown_team_is_not_found(db):
    with pytest.raises(NotFoundError, match="no care team"):
        care_teams.get_team(db, "Nowhere")


def test_members_and_patients_are_added_and_removed_once_each_audited(db, staff_member, make_patient):
    team = care_teams.create_team(db, "Team A", actor=TEST_ACTOR)
    nurse, patient = staff_member(), make_patient()
    assert care_teams.add_member(db, team, nurse, actor=TEST_ACTOR) is True
    assert care_teams.add_member(db, team, nurse, actor=TEST_ACTOR) is False
    assert care_teams.add_patient(db, team, patient, actor=TEST_ACTOR) is True
    assert care_teams.add_patient(db, team, patient, actor=TEST_ACTOR) is False
    db.flush()
    assert [user.id for user in care_teams.members_of(db, team)] == [nurse.id]
    assert [p.id for p in care_teams.patients_of(db, team)] == [patient.id]
    assert [t.name for t in care_teams.teams_of_patient(db, patient)] == ["Team A"]
    assert care_teams.remove_member(db, team, nurse, actor=TEST_ACTOR) is True
    assert care_teams.remove_member(db, team, nurse, actor=TEST_ACTOR) is False
    assert care_teams.remove_patient(db, team, patient, actor=TEST_ACTOR) is True
    assert care_teams.remove_patient(db, team, patient, actor=TEST_ACTOR) is False
    db.flush()
    actions = [entry.action for entry in db.scalars(select(AuditEntry).where(AuditEntry.action.like("care_team.%"))
                                                     .order_by(AuditEntry.occurred_at))]
    assert sorted(actions) == sorted(["care_team.create", "care_team.member_add", "care_team.patient_add",
                                      "care_team.member_remove", "care_team.patient_remove"])
    patient_entries = db.scalars(select(AuditEntry).where(AuditEntry.action.like("care_team.patient_%"))).all()
    assert {entry.patient_id for entry in patient_entries} == {patient.id}


def test_the_list_counts_members_and_patients(db, staff_member, make_patient):
    first = care_teams.create_team(db, "B team", actor=TEST_ACTOR)
    care_teams.create_team(db, "A team", actor=TEST_ACTOR)
    care_teams.add_member(db, first, staff_member(), actor=TEST_ACTOR)
    for _ in range(3):
        care_teams.add_patient(db, first, make_patient(), actor=TEST_ACTOR)
    db.flush()
    summaries = care_teams.list_teams(db)
    assert [(s.name, len(s.member_emails), s.patient_count) for s in summaries] == [("A team", 0, 0), ("B team", 1, 3)]


def test_a_nurse_sees_the_patients_of_every_team_she_is_in_and_no_other(db, staff_member, make_patient):
    nurse, colleague = staff_member(), staff_member()
    one, two, other, nobody = make_patient(), make_patient(), make_patient(), make_patient()
    first = care_teams.create_team(db, "First", actor=TEST_ACTOR)
    second = care_teams.create_team(db, "Second", actor=TEST_ACTOR)
    third = care_teams.create_team(db, "Third", actor=TEST_ACTOR)
    care_teams.add_member(db, first, nurse, actor=TEST_ACTOR)
    care_teams.add_member(db, second, nurse, actor=TEST_ACTOR)
    care_teams.add_member(db, third, colleague, actor=TEST_ACTOR)
    care_teams.add_patient(db, first, one, actor=TEST_ACTOR)
    care_teams.add_patient(db, second, two, actor=TEST_ACTOR)
    care_teams.add_patient(db, second, one, actor=TEST_ACTOR)  # in two of her teams: seen once
    care_teams.add_patient(db, third, other, actor=TEST_ACTOR)
    db.flush()
    assert visible(db, nurse) == {one.id, two.id}
    assert visible(db, colleague) == {other.id}
    assert nobody.id not in visible(db, nurse) | visible(db, colleague)


@pytest.mark.parametrize("role", ["admin", "clinic_lead"])
def test_admins_and_the_clinic_lead_see_everyone_even_patients_in_no_team(db, staff_member, make_patient, role):
    lead = staff_member(role)
    nobody = make_patient()
    scope = care_teams.scope_of(lead)
    assert scope.sees_all
    assert nobody.id in visible(db, lead)
    assert care_teams.check_access(db, lead, nobody).reason == "all_patients"


def test_a_staff_member_sees_their_own_test_patient_and_not_anothers(db, staff_member):
    mine, theirs = staff_member("health_manager"), staff_member("health_manager")
    my_patient = own_test_patient(db, mine, actor=TEST_ACTOR)
    their_patient = own_test_patient(db, theirs, actor=TEST_ACTOR)
    db.flush()
    assert visible(db, mine) == {my_patient.id}
    assert care_teams.check_access(db, mine, my_patient).reason == "own_test_patient"
    with pytest.raises(OutsideCareTeamError):
        care_teams.check_access(db, mine, their_patient)


def test_a_refusal_says_whether_break_glass_could_open_it_later(db, staff_member, make_patient):
    doctor, nurse = staff_member("doctor"), staff_member("nurse")
    patient = make_patient()
    with pytest.raises(OutsideCareTeamError) as for_doctor:
        care_teams.check_access(db, doctor, patient)
    assert for_doctor.value.break_glass_possible is True  # doctors hold break_glass; the flow is a later issue
    with pytest.raises(OutsideCareTeamError) as for_nurse:
        care_teams.check_access(db, nurse, patient)
    assert for_nurse.value.break_glass_possible is False


def test_the_work_queue_shows_only_what_the_scope_allows(db, staff_member, make_patient):
    nurse = staff_member()
    mine, not_mine = make_patient(name="本队"), make_patient(name="他队")
    team = care_teams.create_team(db, "Mine", actor=TEST_ACTOR)
    care_teams.add_member(db, team, nurse, actor=TEST_ACTOR)
    care_teams.add_patient(db, team, mine, actor=TEST_ACTOR)
    for patient in (mine, not_mine):
        create_task(db, patient, kind="flow_alert", priority="high", reason="r", actor=TEST_ACTOR)
    db.flush()
    actor = Actor("user", str(nurse.id))
    assert [item.name for item in work_queue(db, actor=actor, scope=care_teams.scope_of(nurse))] == ["本队"]
    assert {item.name for item in work_queue(db, actor=actor, scope=care_teams.EVERY_PATIENT)} == {"本队", "他队"}


def test_a_disabled_member_sees_nothing(db, staff_member, make_patient):
    nurse = staff_member()
    patient = make_patient()
    team = care_teams.create_team(db, "Team", actor=TEST_ACTOR)
    care_teams.add_member(db, team, nurse, actor=TEST_ACTOR)
    care_teams.add_patient(db, team, patient, actor=TEST_ACTOR)
    nurse.is_active = False
    db.flush()
    assert visible(db, nurse) == set()
