"""``careloop patients quiet-hours``: staff give a patient quiet hours of their own, show them and clear them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from care.models import AuditEntry
from care.patients import get_patient
from careloop.runtime import build_runtime
from careloop.settings import Settings

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def clinic(run_cli: Cli, tmp_path: Path) -> None:
    assert run_cli("init")[0] == 0
    patients = tmp_path / "patients.csv"
    patients.write_text("card_no,name,gender,birth_date,phone\nC001,王秀英,F,1958-03-02,13800000001\n",
                        encoding="utf-8")
    assert run_cli("import", "patients", str(patients))[0] == 0


def stored(settings: Settings) -> tuple[str | None, int]:
    runtime = build_runtime(settings)
    try:
        with runtime.db.unit_of_work() as session:
            audited = session.scalar(select(func.count()).select_from(AuditEntry)
                                     .where(AuditEntry.action == "patient.quiet_hours"))
            return get_patient(session, "C001").quiet_hours, int(audited or 0)
    finally:
        runtime.close()


def test_set_show_and_clear_a_patients_quiet_hours(clinic, run_cli: Cli, fresh_settings: Settings):
    assert run_cli("patients", "quiet-hours", "C001") == \
        (0, "C001: quiet hours 21:00-08:00 (Asia/Shanghai), the clinic's\n", "")
    code, out, err = run_cli("patients", "quiet-hours", "C001", "21:30-7:30")
    assert (code, err) == (0, "")
    assert out == "C001: quiet hours 21:30-07:30 (Asia/Shanghai), the patient's own (the clinic's: 21:00-08:00)\n"
    assert stored(fresh_settings) == ("21:30-07:30", 1)
    assert run_cli("patients", "quiet-hours", "C001", "--clear")[1] == \
        "C001: quiet hours 21:00-08:00 (Asia/Shanghai), the clinic's\n"
    assert stored(fresh_settings) == (None, 2)


@pytest.mark.parametrize(("argv", "code", "message"), [
    (("C001", "9pm-7am"), 2, "must be a range of local times HH:MM-HH:MM"),
    (("C001", "21:30-07:30", "--clear"), 2, "give a range or --clear, not both"),
    (("NOSUCH", "21:30-07:30"), 1, "no patient has this card number or id"),
])
def test_bad_input_says_why_in_one_line_and_changes_nothing(clinic, run_cli: Cli, fresh_settings: Settings,
                                                            argv, code, message):
    assert run_cli("patients", "quiet-hours", "C001", "22:00-06:00")[0] == 0
    result, out, err = run_cli("patients", "quiet-hours", *argv)
    assert (result, out) == (code, "")
    assert message in err
    assert err.count("\n") == 1
    assert stored(fresh_settings) == ("22:00-06:00", 1)
