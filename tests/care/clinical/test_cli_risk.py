"""``careloop risk MODEL --input JSON`` and ``careloop risk --list`` (CONTRACT.md command table)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from careloop.cli import run

CONTRACT_KEYS = ["model", "value", "unit", "category", "citation", "missing"]


def risk(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(["risk", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_computes_one_model_and_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = risk(capsys, "phq9", "--input", '{"items": [1,2,1,2,1,1,1,0,1]}')
    assert (code, err) == (0, "")
    assert out.count("\n") == 1
    data = json.loads(out)
    assert list(data)[:6] == CONTRACT_KEYS
    assert (data["value"], data["category"], data["missing"]) == (10, "moderate", [])
    assert "suicide_risk" in data["flags"]
    assert "Kroenke" in data["citation"]


def test_whole_numbers_print_as_integers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = risk(capsys, "bp", "--input", '{"sbp": 145, "dbp": 85}')
    data = json.loads(out)
    assert (code, data["value"], data["unit"], data["category"]) == (0, 145, "mmHg", "grade1")
    assert '"value": 145,' in out


def test_chinese_labels_are_not_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = risk(capsys, "bmi", "--input", '{"weight": 70, "height": 170}')
    assert "超重" in out
    assert json.loads(out)["value"] == 24.2


def test_missing_inputs_exit_1_with_value_null(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = risk(capsys, "china-par", "--input", '{"sex": "female", "age": 60}')
    data = json.loads(out)
    assert code == 1
    assert err == ""
    assert data["value"] is None
    assert data["category"] == "incomplete"
    assert data["missing"] == ["sbp", "bp_treated", "tc", "hdl", "waist", "smoker", "diabetes", "region_north"]


def test_not_applicable_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    inputs = {"sex": "male", "age": 50, "bmi": 25, "waist": 90, "sbp": 130, "family_history_diabetes": "none",
              "diabetes": True}  # fmt: skip
    code, out, _ = risk(capsys, "cdrs", "--input", json.dumps(inputs))
    assert code == 1
    assert json.loads(out)["category"] == "not_applicable"


def test_input_from_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps({"sex": "male", "age": 50, "creatinine": 88.4}), encoding="utf-8")
    code, out, _ = risk(capsys, "egfr", "--input", f"@{path}")
    assert code == 0
    assert (json.loads(out)["value"], json.loads(out)["category"]) == (91.7, "G1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["qrisk3", "--input", "{}"], "error: unknown risk model 'qrisk3'"),
        (["bp", "--input", "{sbp: 1}"], "error: --input is not valid JSON"),
        (["bp", "--input", "[130, 85]"], "error: --input must be a JSON object"),
        (["bp", "--input", '{"sbp": "130", "dbp": 85}'], "error: input 'sbp' must be a number in mmHg"),
        (["china-par", "--input", '{"smoker": 1}'], "error: input 'smoker' must be true or false, got the number 1"),
        (["bp", "--input", '{"sbp": 130, "dbp": 85, "sbpp": 1}'], "error: unknown input 'sbpp' for model bp"),
        (["bp", "--input", "@/nonexistent/inputs.json"], "error: cannot read input file"),
        (["bp"], "error: --input JSON is required"),
        ([], "error: give a MODEL"),
        (["bp", "--list"], "error: --list takes no MODEL"),
    ],
)
def test_bad_usage_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, out, err = risk(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.startswith(message)
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_list_names_every_model_and_its_inputs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = risk(capsys, "--list")
    assert code == 0
    for name in ("china-par", "framingham", "pce", "findrisc", "cdrs", "phq9", "gad7", "bmi", "waist", "bp",
                 "fpg", "lipids", "uric-acid", "egfr"):  # fmt: skip
        assert f"\n{name}: " in f"\n{out}"
    assert "family_history_diabetes (\"none\" | \"second_degree\" | \"first_degree\")" in out
    assert "sbp (number, mmHg, 60-300)" in out


def test_real_console_script() -> None:
    script = Path(sys.executable).parent / "careloop"
    done = subprocess.run(
        [str(script), "risk", "gad7", "--input", '{"items": [2,2,1,1,0,1,1]}'],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["model"], data["value"], data["category"]) == ("gad7", 8, "mild")
    missing = subprocess.run(
        [str(script), "risk", "bp", "--input", '{"sbp": 120}'], capture_output=True, text=True, timeout=60, check=False
    )
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["missing"] == ["dbp"]
