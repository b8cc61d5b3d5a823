"""``careloop interventions ...``: a clinic checks and adds a program, starts it for a patient, follows the progress and
ends it; on an empty database and with bad input every command answers in one clear line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from care.models import FollowUp, InterventionEnrolment, StageSummaryRecord
from careloop.runtime import build_runtime
from careloop.settings import Settings

Cli = Callable[..., tuple[int, str, str]]
LIBRARY = Path(__file__).resolve().parents[2] / "care" / "interventions" / "library"


@pytest.fixture
def clinic(run_cli: Cli, fresh_settings: Settings, tmp_path: Path) -> Iterator[Callable[[type], int]]:
    code, _, err = run_cli("init")
    assert code == 0, err
    patients = tmp_path / "patients.csv"
    patients.write_text("card_no,name,gender,birth_date,phone\nC001,王秀英,F,1958-03-02,13800000001\n",
                        encoding="utf-8")
    assert run_cli("import", "patients", str(patients))[0] == 0
    runtime = build_runtime(fresh_settings)

    def count(model: type) -> int:
        with runtime.db.unit_of_work() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

    yield count
    runtime.close()


def ok(run_cli: Cli, *argv: str) -> str:
    code, out, err = run_cli(*argv)
    assert (code, err) == (0, ""), (argv, out, err)
    return out


def fails(run_cli: Cli, *argv: str, code: int = 1) -> str:
    answer, out, err = run_cli(*argv)
    assert (answer, out) == (code, ""), (argv, out, err)
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 or code == 2, err
    return err


def test_validate_lists_each_problem_with_its_line_and_field(run_cli, tmp_path):
    out = ok(run_cli, "interventions", "validate", str(LIBRARY / "hypertension_3m.yaml"))
    assert "program 'hypertension_3m' v1 is valid (2 goal(s), 1 check-in(s), 7 message(s), 90 days)" in out
    assert "program 'weight_3m' v1 is valid" in ok(run_cli, "interventions", "validate", "weight_3m")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nversion: 1\ntitle: {zh: 坏, en: Bad}\nduration_days: 30\n"
                   "goals: [{id: g, indicator: sbp, target: {below: 130}}]\n"
                   "education:\n  - {day: 3, message: nowhere}\n", encoding="utf-8")
    err = fails(run_cli, "interventions", "validate", str(bad))
    assert f"{bad}:7: education[0].message: no message 'nowhere' in the content library" in err


def test_on_an_empty_database_every_listing_says_there_is_nothing_and_the_rest_say_why(run_cli, clinic):
    assert ok(run_cli, "interventions", "programs").startswith(
        "no programs (add one with: careloop interventions add FILE; built-in: hypertension_3m, weight_3m)")
    assert ok(run_cli, "interventions", "list") == "no enrolments\n"
    assert "diet_salt" in ok(run_cli, "interventions", "programs", "--content")
    assert fails(run_cli, "interventions", "show", "hypertension_3m") == (
        "error: no intervention program 'hypertension_3m' (careloop interventions programs)\n")
    assert "no intervention program 'hypertension_3m'" in fails(run_cli, "interventions", "start", "C001",
                                                                 "hypertension_3m")
    assert fails(run_cli, "interventions", "progress", "C001") == (
        "error: C001: the patient is in no intervention (careloop interventions start)\n")
    assert fails(run_cli, "interventions", "end", "C001", "--reason", "done") == (
        "error: the patient is in no intervention\n")
    assert clinic(InterventionEnrolment) == 0


def test_bad_input_says_so_in_one_line_and_changes_nothing(run_cli, clinic, tmp_path):
    assert fails(run_cli, "interventions", "add", "no_such_program") == (
        "error: no_such_program: no such program file (nor a built-in program of this id: hypertension_3m, "
        "weight_3m)\n")
    ok(run_cli, "interventions", "add", "hypertension_3m")
    assert fails(run_cli, "interventions", "start", "NOBODY", "hypertension_3m") == (
        "error: NOBODY: no patient has this card number or id\n")
    assert "Missing option '--reason'" in fails(run_cli, "interventions", "end", "C001", code=2)
    assert "'--reason': must say why" in fails(run_cli, "interventions", "end", "C001", "--reason", "  ", code=2)
    older = tmp_path / "older.yaml"
    older.write_text((LIBRARY / "hypertension_3m.yaml").read_text(encoding="utf-8").replace("duration_days: 90",
                                                                                          "duration_days: 85"),
                     encoding="utf-8")
    assert fails(run_cli, "interventions", "add", str(older)) == (
        "error: program 'hypertension_3m' is at version 1: give this one a higher version\n")
    broken = tmp_path / "broken.yaml"
    broken.write_bytes(b"\xff\xfe not text")
    assert "cannot read the file" in fails(run_cli, "interventions", "add", str(broken))
    assert (clinic(InterventionEnrolment), clinic(FollowUp)) == (0, 0)


def test_add_start_list_progress_and_end(run_cli, clinic):
    assert ok(run_cli, "interventions", "add", "hypertension_3m") == (
        "Program 'hypertension_3m' v1 added (plan 'iv_hypertension_3m').\n")
    assert ok(run_cli, "interventions", "add", str(LIBRARY / "hypertension_3m.yaml")) == (
        "Program 'hypertension_3m' v1 unchanged (plan 'iv_hypertension_3m').\n")
    assert "hypertension_3m  v1       90    0       tag 高血压" in ok(run_cli, "interventions", "programs")
    shown = ok(run_cli, "interventions", "show", "hypertension_3m")
    assert "goal sbp_below_130: 收缩压 < 130 mmHg（90天内） / Systolic BP < 130 mmHg (within 90 days)" in shown
    assert "check-in: home_monitoring every {'days': 14} at 09:30; channels wechat, sms, voice" in shown
    assert "day 7 10:00: diet_salt (diet)" in shown
    assert "iv_hypertension_3m  v1       0" in ok(run_cli, "plans", "list")

    assert ok(run_cli, "interventions", "start", "C001", "hypertension_3m").startswith(
        "Started 'hypertension_3m'; it ends on ")
    assert ok(run_cli, "interventions", "start", "C001", "hypertension_3m") == "Already in 'hypertension_3m'.\n"
    assert clinic(FollowUp) == 8  # the first check-in and the seven education messages
    listed = ok(run_cli, "interventions", "list", "--patient", "C001")
    assert "C001     hypertension_3m  v1       active  manual" in listed
    progress = ok(run_cli, "interventions", "progress", "C001")
    assert "hypertension_3m: 高血压3个月管理; active, day 0" in progress
    assert "progress: no data yet; goals met 0 of 2" in progress
    assert "goal sbp_below_130: baseline - -> latest - mmHg, target < 130: no data" in progress
    assert "check-ins: 0 of 0 answered (-)" in progress
    assert "education: 0 of 7 message(s) sent" in progress

    ended = ok(run_cli, "interventions", "end", "C001", "--reason", "moved to another city")
    assert ended.startswith("Ended 'hypertension_3m'; stage summary ")
    assert ended.endswith(" drafted (unsigned).\n")
    assert "ended   manual" in ok(run_cli, "interventions", "list")
    assert ok(run_cli, "interventions", "list", "--active") == "no enrolments\n"
    assert "enrolments: 0 active, 1 ended" in ok(run_cli, "interventions", "show", "hypertension_3m")
    assert clinic(StageSummaryRecord) == 1
    assert "hypertension_3m: 高血压3个月管理; ended" in ok(run_cli, "interventions", "progress", "C001")
