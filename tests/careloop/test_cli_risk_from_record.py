"""``careloop risk MODEL --patient REF``: a model computed from what the patient's record holds."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from care.patients import get_patient
from care.profiles import set_profile_field
from careloop.runtime import build_runtime
from careloop.settings import Settings
from security.audit import Actor
from tests.care.imports.samples import csv_bytes

Cli = Callable[..., tuple[int, str, str]]
ACTOR = Actor("system", "pytest", "tests")


def enrol(run_cli: Cli, tmp_path: Path, settings: Settings, profile: dict[str, object]) -> None:
    """A man of 60 today, with the checkup of China-PAR's first worked example and ``profile``."""
    today = date.today()  # the CLI runs on the wall clock
    born = date(today.year - 61, 7, 1) if (today.month, today.day) < (7, 1) else date(today.year - 60, 7, 1)
    assert run_cli("init")[0] == 0
    (tmp_path / "patients.csv").write_text(
        f"card_no,name,gender,birth_date,phone,language\nC0001,王建国,M,{born.isoformat()},13812345678,zh\n",
        encoding="utf-8")
    assert run_cli("import", "patients", str(tmp_path / "patients.csv"))[0] == 0
    rows = [["C0001", "R1", f"{today.year - 1}-05-12", code, value, unit] for code, value, unit in (
        ("sbp", "130", "mmHg"), ("dbp", "80", "mmHg"), ("tc", "210", "mg/dL"), ("hdl", "55", "mg/dL"),
        ("waist", "80", "cm"))]
    (tmp_path / "checkup.csv").write_bytes(csv_bytes(rows))
    assert run_cli("import", "reports", str(tmp_path / "checkup.csv"))[0] == 0
    runtime = build_runtime(settings)
    try:
        with runtime.db.unit_of_work() as session:
            patient = get_patient(session, "C0001")
            for name, value in profile.items():
                set_profile_field(session, patient, name, value, actor=ACTOR)
    finally:
        runtime.close()


def test_china_par_runs_from_the_record(run_cli: Cli, tmp_path: Path, fresh_settings: Settings) -> None:
    enrol(run_cli, tmp_path, fresh_settings, {"bp_treated": False, "smoker": False, "diabetes": True,
                                              "region_north": True, "urban": True, "family_history_ascvd": False})
    code, out, err = run_cli("risk", "china-par", "--patient", "C0001")
    assert (code, err) == (0, "")
    answer = json.loads(out)
    assert answer["value"] == pytest.approx(10.82, abs=0.3)
    assert answer["category"] == "high"
    assert answer["sources"]["region_north"] == "profile"
    assert answer["sources"]["sbp"].startswith("observation ")


def test_what_the_record_lacks_is_named_as_missing(run_cli: Cli, tmp_path: Path, fresh_settings: Settings) -> None:
    enrol(run_cli, tmp_path, fresh_settings, {"smoker": False})
    code, out, _ = run_cli("risk", "china-par", "--patient", "C0001")
    answer = json.loads(out)
    assert code == 1
    assert answer["value"] is None
    assert {"diabetes", "region_north"} <= set(answer["missing"])


def test_an_unknown_patient_or_both_sources_of_inputs_are_refused(
    run_cli: Cli, tmp_path: Path, fresh_settings: Settings
) -> None:
    enrol(run_cli, tmp_path, fresh_settings, {})
    code, out, err = run_cli("risk", "china-par", "--patient", "NOPE")
    assert (code, out) == (1, "")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run_cli("risk", "bp", "--patient", "C0001", "--input", '{"sbp": 120, "dbp": 80}')
    assert code == 2
    assert "either --input" in err


def test_the_clinics_defaults_say_where_its_patients_live_and_the_patients_own_answer_wins(
    run_cli: Cli, tmp_path: Path, fresh_settings: Settings
) -> None:
    enrol(run_cli, tmp_path, fresh_settings, {"bp_treated": False, "smoker": False, "diabetes": True,
                                              "urban": True, "family_history_ascvd": False})
    clinic = fresh_settings.with_overrides(region_north=True, urban=False)  # CARELOOP_REGION_NORTH, CARELOOP_URBAN
    code, out, err = run_cli("risk", "china-par", "--patient", "C0001", settings=clinic)
    assert (code, err) == (0, "")
    answer = json.loads(out)
    assert answer["sources"]["region_north"] == "clinic"
    assert answer["sources"]["urban"] == "profile"  # the patient said city; the clinic's default is not used
    assert answer["value"] == pytest.approx(10.82, abs=0.3)  # the inputs of the first test above
