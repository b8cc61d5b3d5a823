"""``careloop tags ...``: a clinic defines its tags and the rules that set them, and the worker applies them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from care.models import AuditEntry, Patient, PatientTag, TagRule, TagRuleRun
from care.tags import tags_of
from careloop.runtime import build_runtime
from careloop.settings import Settings

Cli = Callable[..., tuple[int, str, str]]


class Clinic:
    """The CLI's database, read through a runtime of its own."""

    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self.runtime = build_runtime(settings)
        self.tmp_path = tmp_path

    def tags(self) -> dict[str, set[str]]:
        """Each patient's tags, by card number."""
        with self.runtime.db.unit_of_work() as session:
            return {patient.card_no or "": tags_of(session, patient) for patient in session.scalars(select(Patient))}

    def count(self, model: type) -> int:
        with self.runtime.db.unit_of_work() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

    def results(self, name: str, rows: list[str]) -> Path:
        path = self.tmp_path / name
        path.write_text("card_no,report_id,date,code,value,unit\n" + "".join(f"{row}\n" for row in rows),
                        encoding="utf-8")
        return path


@pytest.fixture
def clinic(run_cli: Cli, fresh_settings: Settings, tmp_path: Path) -> Iterator[Clinic]:
    code, _, err = run_cli("init")
    assert code == 0, err
    patients = tmp_path / "patients.csv"
    patients.write_text("card_no,name,gender,birth_date,phone\n"
                        "C001,王秀英,F,1958-03-02,13800000001\n"
                        "C002,李建华,M,1961-07-12,13800000002\n"
                        "C003,张伟,M,1975-01-30,13800000003\n", encoding="utf-8")
    assert run_cli("import", "patients", str(patients))[0] == 0
    opened = Clinic(fresh_settings, tmp_path)
    yield opened
    opened.runtime.close()


def ok(run_cli: Cli, *argv: str) -> str:
    code, out, err = run_cli(*argv)
    assert (code, err) == (0, ""), (argv, out, err)
    return out


def work(run_cli: Cli) -> None:
    """Run the worker's due work once (it says on stderr which clinic settings are defaults)."""
    code, _, err = run_cli("worker", "--once")
    assert code == 0, err


def test_a_rule_set_up_from_the_command_line_tags_an_import_and_a_normal_value_removes_it(run_cli, clinic):
    ok(run_cli, "tags", "define", "高血压", "--colour", "#D9534F", "--description-zh", "血压≥140/90 mmHg",
       "--description-en", "Blood pressure 140/90 mmHg or more")
    out = ok(run_cli, "tags", "rules", "add", "高血压风险", "--tag", "高血压", "--expr",
             "latest.sbp >= 140 or latest.dbp >= 90")
    assert out.startswith("Rule '高血压风险' v1 sets '高血压'; evaluating it on 3 patient(s) in the background")
    assert "running 0/3" in ok(run_cli, "tags", "rules", "list")

    ok(run_cli, "import", "reports", str(clinic.results("r1.csv", [
        "C001,R1,2026-11-20,sbp,152,mmHg", "C002,R2,2026-11-20,dbp,96,mmHg", "C003,R3,2026-11-20,sbp,118,mmHg"])))
    assert clinic.tags() == {"C001": set(), "C002": set(), "C003": set()}  # the worker sets them
    work(run_cli)
    assert clinic.tags() == {"C001": {"高血压"}, "C002": {"高血压"}, "C003": set()}
    listed = ok(run_cli, "tags", "list").splitlines()
    assert listed[0].split() == ["tag", "colour", "patients", "rules", "description"]
    assert listed[1].split()[:4] == ["高血压", "#d9534f", "2", "1"]
    assert "血压≥140/90 mmHg / Blood pressure 140/90 mmHg or more" in listed[1]
    assert "done 3/3" in ok(run_cli, "tags", "rules", "list")

    ok(run_cli, "import", "reports", str(clinic.results("r2.csv", [
        "C001,R4,2026-11-28,sbp,124,mmHg", "C001,R4,2026-11-28,dbp,78,mmHg"])))
    work(run_cli)
    assert clinic.tags() == {"C001": set(), "C002": {"高血压"}, "C003": set()}


def test_editing_a_rule_makes_a_version_and_evaluates_it_again(run_cli, clinic):
    ok(run_cli, "import", "reports", str(clinic.results("r.csv", [
        "C001,R1,2026-11-20,bmi,29,kg/m2", "C002,R2,2026-11-20,bmi,33,kg/m2"])))
    ok(run_cli, "tags", "rules", "add", "Obesity", "--tag", "肥胖", "--expr", "bmi >= 28")
    work(run_cli)
    assert clinic.tags()["C001"] == {"肥胖"}
    out = ok(run_cli, "tags", "rules", "edit", "obesity", "--expr", "bmi >= 32")
    assert out.startswith("Rule 'Obesity' is now v2 (enabled); evaluating it on 3 patient(s)")
    work(run_cli)
    assert clinic.tags() == {"C001": set(), "C002": {"肥胖"}, "C003": set()}
    assert ok(run_cli, "tags", "rules", "edit", "obesity", "--enabled") == "Rule 'Obesity' unchanged (v2)\n"
    ok(run_cli, "tags", "rules", "edit", "obesity", "--disabled")
    work(run_cli)
    assert clinic.tags()["C002"] == set()
    rows = ok(run_cli, "tags", "rules", "list").splitlines()
    assert rows[1].split()[:5] == ["Obesity", "肥胖", "v3", "no", "done"]


def test_preview_says_what_a_rule_would_do_and_writes_nothing(run_cli, clinic):
    ok(run_cli, "import", "reports", str(clinic.results("r.csv", [
        "C001,R1,2026-11-20,bmi,29,kg/m2", "C002,R2,2026-11-20,bmi,33,kg/m2"])))
    ok(run_cli, "tags", "rules", "add", "Obesity", "--tag", "肥胖", "--expr", "bmi >= 28")
    work(run_cli)
    before = [clinic.count(model) for model in (PatientTag, TagRule, TagRuleRun, AuditEntry)]
    out = ok(run_cli, "tags", "rules", "preview", "--tag", "肥胖", "--expr", "bmi >= 32 or latest.bmi is None")
    assert out == "would tag 1 patient(s), untag 1 (it holds for 2 of 3 patient(s))\n"
    assert [clinic.count(model) for model in (PatientTag, TagRule, TagRuleRun, AuditEntry)] == before


@pytest.mark.parametrize(("argv", "message"), [
    (["tags", "define", "x", "--colour", "red"], "error: --colour: must be a colour like #d9534f\n"),
    (["tags", "define", " ", "--colour", "#ffffff"], "error: NAME: must be one line of 1-64 characters\n"),
    (["tags", "rules", "add", "r", "--tag", "t", "--expr", "latest.sbpp >= 140 or age > 60"],
     "error: --expr: unknown name 'latest.sbpp' (see 'Tag rules' in README.md for the facts a rule can read)\n"),
    (["tags", "rules", "add", "r", "--tag", "t", "--expr", "bmi >="], "error: --expr: syntax error: invalid syntax\n"),
    (["tags", "rules", "add", "r", "--tag", "", "--expr", "bmi >= 28"],
     "error: --tag: must be one line of 1-64 characters\n"),
    (["tags", "rules", "edit", "nothing", "--expr", "bmi > 1"],
     "error: no tag rule named 'nothing' (see: careloop tags rules list)\n"),
    (["tags", "rules", "preview", "--tag", "t", "--expr", "phq9.score > 1"], "error: --expr: unknown name "
     "'phq9.score' (see 'Tag rules' in README.md for the facts a rule can read)\n"),
])
def test_bad_values_exit_1_with_one_line_naming_the_option_and_change_nothing(run_cli, clinic, argv, message):
    before = [clinic.count(model) for model in (TagRule, TagRuleRun, AuditEntry)]
    assert run_cli(*argv) == (1, "", message)
    assert [clinic.count(model) for model in (TagRule, TagRuleRun, AuditEntry)] == before


def test_a_second_rule_of_the_same_name_and_an_empty_edit_are_refused(run_cli, clinic):
    ok(run_cli, "tags", "rules", "add", "Obesity", "--tag", "肥胖", "--expr", "bmi >= 28")
    assert run_cli("tags", "rules", "add", "OBESITY", "--tag", "肥胖", "--expr", "bmi >= 30") == (
        1, "", "error: a tag rule named 'OBESITY' already exists (change it with: careloop tags rules edit)\n")
    assert run_cli("tags", "rules", "edit", "obesity") == (1, "", "error: edit: give --expr, --enabled or --disabled\n")


def test_empty_lists_say_how_to_begin(run_cli, clinic):
    assert ok(run_cli, "tags", "list").startswith("no tags defined")
    assert ok(run_cli, "tags", "rules", "list").startswith("no tag rules")
    assert ok(run_cli, "tags", "rules", "preview", "--tag", "t", "--expr", "age > 200") == (
        "would tag 0 patient(s), untag 0 (it holds for 0 of 3 patient(s))\n")
