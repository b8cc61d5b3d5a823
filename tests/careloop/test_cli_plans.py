"""``careloop plans ...``: a clinic checks, adds, lists, shows a plan, and enrols and removes a patient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from care.models import FollowUp, PlanEnrolment, PlanVersion
from careloop.runtime import build_runtime
from careloop.settings import Settings

Cli = Callable[..., tuple[int, str, str]]
LIBRARY = Path(__file__).resolve().parents[2] / "care" / "plans" / "library"


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


def test_validate_lists_each_problem_with_its_line_and_field(run_cli, tmp_path):
    assert "plan 'bp_monthly' v1 is valid (1 step(s))" in ok(run_cli, "plans", "validate", str(LIBRARY /
                                                                                               "bp_monthly.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nversion: 1\ntitle: {zh: 坏, en: Bad}\nsteps:\n  - flow: nowhere\n"
                   "    when: {every: {months: 1}, at: '7pm'}\n", encoding="utf-8")
    code, _, err = run_cli("plans", "validate", str(bad))
    assert code == 1
    assert f"{bad}:5: steps[0].flow: no flow 'nowhere' in the library" in err
    assert f"{bad}:6: steps[0].when.at: must be a local time HH:MM" in err
    assert len(err.strip().splitlines()) == 1


def test_add_list_show_enrol_and_leave(run_cli, clinic, tmp_path):
    assert ok(run_cli, "plans", "list").startswith("no plans")
    assert ok(run_cli, "plans", "add", "bp_monthly") == "Plan 'bp_monthly' v1 added.\n"
    assert ok(run_cli, "plans", "add", str(LIBRARY / "bp_monthly.yaml")) == "Plan 'bp_monthly' v1 unchanged.\n"
    assert "bp_monthly  v1       0         tag 高血压" in ok(run_cli, "plans", "list")
    assert ok(run_cli, "plans", "enrol", "C001", "bp_monthly") == "Enrolled in 'bp_monthly'.\n"
    assert ok(run_cli, "plans", "enrol", "C001", "bp_monthly") == "Already enrolled in 'bp_monthly'.\n"
    assert (clinic(PlanEnrolment), clinic(FollowUp)) == (1, 1)

    newer = tmp_path / "bp_v2.yaml"
    newer.write_text((LIBRARY / "bp_monthly.yaml").read_text(encoding="utf-8")
                     .replace("version: 1", "version: 2").replace("{months: 1}", "{weeks: 2}"), encoding="utf-8")
    assert "v2 new version; 1 follow-up(s) of enrolled patients re-timed" in ok(run_cli, "plans", "add", str(newer))
    shown = ok(run_cli, "plans", "show", "bp_monthly")
    assert "step 1: home_monitoring, every {'weeks': 2} after enrolment at 09:30" in shown
    assert "follow-ups: scheduled 1" in shown
    assert clinic(PlanVersion) == 2

    assert ok(run_cli, "plans", "leave", "C001", "bp_monthly") == "Left 'bp_monthly'.\n"
    assert "follow-ups: cancelled 1" in ok(run_cli, "plans", "show", "bp_monthly")


def test_bad_input_says_so_in_one_line_and_changes_nothing(run_cli, clinic, tmp_path):
    code, _, err = run_cli("plans", "add", "no_such_plan")
    assert (code, err) == (1, "error: no_such_plan: no such plan file (nor a built-in plan of this id)\n")
    code, _, err = run_cli("plans", "enrol", "C001", "bp_monthly")
    assert (code, err) == (1, "error: no plan 'bp_monthly' (careloop plans list)\n")
    code, _, err = run_cli("plans", "enrol", "C999", "bp_monthly")
    assert code == 1
    assert "no patient" in err
    code, _, err = run_cli("plans", "show", "nothing")
    assert code == 1
    assert clinic(PlanEnrolment) == 0
