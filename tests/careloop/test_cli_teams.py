"""``careloop teams ...``: care teams made and filled from the command line, and what the panel then shows."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from care import care_teams
from care.models import Patient
from careloop.runtime import build_runtime
from careloop.settings import Settings
from security.audit import AuditEntry

Cli = Callable[..., tuple[int, str, str]]
OPERATOR = f"cli:{getpass.getuser()}@{socket.gethostname()}"
TEAM_COMMANDS = [("teams", "add"), ("teams", "list"), ("teams", "show"), ("teams", "members", "add"),
                 ("teams", "members", "remove"), ("teams", "patients", "add"), ("teams", "patients", "remove")]


class Clinic:
    """The CLI's database, read through a runtime of its own."""

    def __init__(self, settings: Settings) -> None:
        self.runtime = build_runtime(settings)

    def audit(self, action: str) -> list[AuditEntry]:
        with self.runtime.db.unit_of_work() as session:
            return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))

    def team(self, name: str) -> tuple[list[str], list[str]]:
        """The team's members' e-mails and patients' card numbers."""
        with self.runtime.db.unit_of_work() as session:
            team = care_teams.get_team(session, name)
            return ([user.email for user in care_teams.members_of(session, team)],
                    sorted(patient.card_no or "" for patient in care_teams.patients_of(session, team)))

    def patient_id(self, card_no: str) -> str:
        with self.runtime.db.unit_of_work() as session:
            patients = list(session.scalars(select(Patient)))
            return next(str(patient.id) for patient in patients if patient.card_no == card_no)


@pytest.fixture
def clinic(run_cli: Cli, fresh_settings: Settings, tmp_path) -> Iterator[Clinic]:
    code, _, err = run_cli("init", "--admin-email", "boss@clinic.test")
    assert code == 0, err
    for email, role in (("nurse.a@clinic.test", "nurse"), ("nurse.b@clinic.test", "nurse")):
        assert run_cli("users", "add", "--email", email, "--role", role)[0] == 0
    patients = tmp_path / "patients.csv"
    patients.write_text("card_no,name,gender,birth_date,phone\n"
                        "C001,王秀英,F,1958-03-02,13800000001\n"
                        "C002,李建华,M,1961-07-12,13800000002\n", encoding="utf-8")
    assert run_cli("import", "patients", str(patients))[0] == 0
    opened = Clinic(fresh_settings)
    yield opened
    opened.runtime.close()


@pytest.mark.parametrize("path", TEAM_COMMANDS)
def test_every_teams_command_has_help(run_cli, path):
    code, out, err = run_cli(*path, "--help")
    assert code == 0, err
    assert "Usage: careloop " + " ".join(path) in out


def test_a_team_is_added_listed_and_filled(run_cli, clinic):
    code, out, err = run_cli("teams", "add", "Hypertension A")
    assert code == 0, err
    assert "Hypertension A" in out
    code, out, err = run_cli("teams", "members", "add", "Hypertension A", "nurse.a@clinic.test")
    assert code == 0, err
    code, out, err = run_cli("teams", "patients", "add", "Hypertension A", "C001", clinic.patient_id("C002"))
    assert code == 0, err
    assert clinic.team("Hypertension A") == (["nurse.a@clinic.test"], ["C001", "C002"])
    code, listing, err = run_cli("teams", "list")
    assert code == 0, err
    lines = listing.splitlines()
    assert lines[0].split() == ["team", "members", "patients"]
    assert lines[1].split() == ["Hypertension", "A", "nurse.a@clinic.test", "2"]
    code, shown, err = run_cli("teams", "show", "Hypertension A")
    assert code == 0, err
    assert "nurse.a@clinic.test" in shown
    assert "C001" in shown
    assert "C002" in shown
    assert "王秀英" not in shown  # card numbers only, never names
    views = [entry for entry in clinic.audit("patient.view") if '"care_team"' in (entry.details or "")]
    assert len(views) == 2


def test_every_change_is_audited_as_the_operator(run_cli, clinic):
    run_cli("teams", "add", "T")
    run_cli("teams", "members", "add", "T", "nurse.a@clinic.test")
    run_cli("teams", "patients", "add", "T", "C001")
    run_cli("teams", "patients", "remove", "T", "C001")
    run_cli("teams", "members", "remove", "T", "nurse.a@clinic.test")
    for action in ("care_team.create", "care_team.member_add", "care_team.patient_add", "care_team.patient_remove",
                   "care_team.member_remove"):
        [entry] = clinic.audit(action)
        assert (entry.actor_kind, entry.actor_id) == ("system", OPERATOR)
    assert clinic.team("T") == ([], [])


def test_adding_twice_changes_nothing_and_says_so(run_cli, clinic):
    run_cli("teams", "add", "T")
    run_cli("teams", "members", "add", "T", "nurse.a@clinic.test")
    code, out, _ = run_cli("teams", "members", "add", "T", "nurse.a@clinic.test")
    assert code == 0
    assert "already" in out
    code, out, _ = run_cli("teams", "patients", "remove", "T", "C001")
    assert code == 0
    assert "not in" in out
    assert len(clinic.audit("care_team.member_add")) == 1
    assert clinic.audit("care_team.patient_remove") == []


def test_a_second_team_of_the_same_name_is_refused_in_one_line(run_cli, clinic):
    assert run_cli("teams", "add", "Diabetes")[0] == 0
    code, out, err = run_cli("teams", "add", "diabetes")
    assert (code, out) == (1, "")
    assert err == "error: a care team named 'diabetes' already exists\n"


@pytest.mark.parametrize("name", ["", "   ", "x" * 65])
def test_a_bad_team_name_is_bad_usage(run_cli, clinic, name):
    code, out, err = run_cli("teams", "add", name)
    assert (code, out) == (2, "")
    assert err.startswith("error: ")
    assert len(err.splitlines()) == 1
    assert run_cli("teams", "list")[1].startswith("no care teams")


def test_an_unknown_team_is_a_failure_in_one_line(run_cli, clinic):
    for argv in (("teams", "show", "Nowhere"), ("teams", "members", "add", "Nowhere", "nurse.a@clinic.test"),
                 ("teams", "patients", "add", "Nowhere", "C001")):
        code, out, err = run_cli(*argv)
        assert (code, out) == (1, "")
        assert err == "error: no care team named 'Nowhere'\n"


def test_one_unknown_member_or_patient_changes_nothing(run_cli, clinic):
    run_cli("teams", "add", "T")
    code, out, err = run_cli("teams", "members", "add", "T", "nurse.a@clinic.test", "ghost@clinic.test")
    assert (code, out) == (1, "")
    assert err == "error: no staff account for ghost@clinic.test\n"
    code, out, err = run_cli("teams", "patients", "add", "T", "C001", "NOSUCH")
    assert (code, out) == (1, "")
    assert err.startswith("error: no patient has this card number or id")
    assert len(err.splitlines()) == 1
    assert clinic.team("T") == ([], [])
    assert clinic.audit("care_team.member_add") == []
    assert clinic.audit("care_team.patient_add") == []


def test_a_missing_argument_is_bad_usage(run_cli, clinic):
    code, _, err = run_cli("teams", "members", "add", "T")
    assert code == 2
    assert err.startswith("error: ")
    assert len(err.splitlines()) == 1


def test_an_empty_clinic_lists_no_teams(run_cli, clinic):
    code, out, _ = run_cli("teams", "list")
    assert code == 0
    assert out == "no care teams (add one with: careloop teams add NAME)\n"
