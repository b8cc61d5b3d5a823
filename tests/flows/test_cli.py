"""``careloop flows validate|list`` and ``careloop simulate``: through the CLI entry point, and once as a process."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from careloop.cli import run
from flows.registry import LIBRARY_DIR
from tests.flows.helpers import FIXTURES

NOW = "2025-01-06T09:00:00+08:00"


def simulate(monkeypatch: pytest.MonkeyPatch, lines: str, *args: str) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    return run(["simulate", *args, "--now", NOW])


def test_validate_prints_each_problem_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "broken" / "unknown_target.yaml"
    assert run(["flows", "validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{path}:ask: 'next' names the node 'nowhere', which does not exist",
        f"{path}:check: 'cases[1].next' names the node 'also_nowhere', which does not exist",
        f"{path}:check: no path from the start leads to this node",
        f"{path}:done: no path from the start leads to this node",
    ]
    assert err == "4 problems in 1 file.\n"


def test_validate_a_directory_of_broken_flows(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["flows", "validate", str(FIXTURES / "broken")]) == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 46
    assert err == "46 problems in 20 files.\n"


def test_validate_the_library_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["flows", "validate", str(LIBRARY_DIR), str(FIXTURES / "valid")]) == 0
    assert capsys.readouterr().out == "ok: 14 flow files checked, no problems.\n"


@pytest.mark.parametrize("args", [["flows", "validate"], ["flows", "validate", "/no/such/file.yaml"]])
def test_validate_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    assert run(args) == 2
    assert capsys.readouterr().err


def test_list_shows_id_version_and_title(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["flows", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "version", "title"]
    assert [line.split()[0] for line in lines[1:]] == [
        "diabetes_followup", "gad7", "home_monitoring", "hypertension_followup",
        "intake", "national_diabetes_followup", "national_hypertension_followup", "phq9", "post_checkup",
        "satisfaction", "weight_checkin",
    ]  # fmt: skip
    assert "phq9                                  2  情绪健康问卷（PHQ-9） / Mood questionnaire (PHQ-9)" in lines


def test_list_with_an_extra_library_and_every_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["flows", "list", "--library", str(FIXTURES / "versions"), "--all-versions"]) == 0
    demo = [line.split()[:2] for line in capsys.readouterr().out.splitlines() if line.startswith("demo")]
    assert demo == [["demo", "1"], ["demo", "2"]]


def test_simulate_runs_a_flow_and_prints_results_and_events(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert simulate(monkeypatch, "2\n3\n1\n2\n1\n4\n1\n2\n1\n2\n", "phq9") == 0
    out = capsys.readouterr().out
    assert out.startswith("[phq9 v2 · zh · text]\n")
    first = "（1/9）做事时提不起劲或没有兴趣\n1. 完全不会\n2. 好几天\n3. 一半以上的天数\n4. 几乎每天\n请回复数字1-4"
    assert first in out
    assert "> 2\n" in out
    assert "--- session ended: completed ---" in out
    results = out.split("results:\n", 1)[1].split("events:\n", 1)[0].splitlines()
    assert results == [
        "phq9_q1 = 1 [several_days]", "phq9_q2 = 2 [more_than_half]", "phq9_q3 = 0 [not_at_all]",
        "phq9_q4 = 1 [several_days]", "phq9_q5 = 0 [not_at_all]", "phq9_q6 = 3 [nearly_every_day]",
        "phq9_q7 = 0 [not_at_all]", "phq9_q8 = 1 [several_days]", "phq9_q9 = 0 [not_at_all]",
        "phq9_suicide_risk = false [negative]", "phq9_total = 8 [mild]",
        "phq9_difficulty = 1 [somewhat_difficult]",
    ]  # fmt: skip
    events = out.split("events:\n", 1)[1].splitlines()
    assert events[0] == 'session_started {"flow_id": "phq9", "lang": "zh", "version": 2}'
    assert events[-1] == 'session_ended {"status": "completed"}'
    assert 'followup_scheduled {"due_at": "2025-02-05T09:00:00+08:00", "flow_id": "phq9", "in_days": 30}' in events


def test_simulate_in_english_on_the_phone(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("home_monitoring", "--lang", "en", "--channel", "voice")
    assert simulate(monkeypatch, "blood pressure 135 over 85\n", *args) == 0
    out = capsys.readouterr().out
    assert "Please say your reading, for example: blood pressure 135 over 85, or fasting glucose 6.1." in out
    assert "[gather] speech (en-US)" in out
    assert "reading = 135/85 mmHg [bp]" in out


def test_simulate_voice_shows_the_keypad(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate(monkeypatch, "", "gad7", "--channel", "voice") == 0
    out = capsys.readouterr().out
    assert "[keypad] 1=完全不会  2=好几天  3=一半以上的天数  4=几乎每天" in out
    assert "[gather] dtmf speech (zh-CN, 1 key)" in out
    assert "--- input ended; the session is still waiting at 'q1' ---" in out
    assert "results:\n(none)\n" in out


def test_simulate_timers_and_facts(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    lines = "65\n/remind\n/remind\n/remind\n/expire\n"
    args = ("mechanics", "--library", str(FIXTURES / "valid"), "--age", "70", "--tag", "vip", "--obs", "sbp=150")
    assert simulate(monkeypatch, lines, *args) == 0
    out = capsys.readouterr().out
    assert "您好，70岁的朋友！" in out
    assert out.split("results:")[0].count("提醒您回复哦。") == 2
    assert "(no reminder is due: the reminders for this question are used up)" in out
    assert "这次问答已结束。" in out
    assert "--- session ended: expired ---" in out
    assert "weight = 65.0 [ok]" in out


def test_simulate_stops_on_quit(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate(monkeypatch, "1\n/quit\n2\n", "gad7") == 0
    out = capsys.readouterr().out
    assert "--- stopped; the session is still waiting at 'q2' ---" in out
    assert "gad7_q1 = 0 [not_at_all]" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nope"], 1, "error: no installed flow nope"),
        (["phq9", "--version", "9"], 1, "error: no installed flow phq9 v9"),
        (["phq9", "--lang", "fr"], 2, "Invalid value for '--lang'"),
        (["phq9", "--obs", "sbp"], 2, "expected CODE=NUMBER"),
    ],
)
def test_simulate_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    assert simulate(monkeypatch, "", *args) == code
    assert message in capsys.readouterr().err


def test_the_installed_command_runs_as_a_real_process() -> None:
    careloop = Path(sys.executable).parent / "careloop"
    simulated = subprocess.run(
        [str(careloop), "simulate", "home_monitoring", "--lang", "en", "--now", NOW],
        input="BP 128/82\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert simulated.returncode == 0, simulated.stderr
    assert "Recorded: 128/82 mmHg." in simulated.stdout
    assert "reading = 128/82 mmHg [bp]" in simulated.stdout
    assert 'observation_recorded {"code": "8480-6"' in simulated.stdout
    broken = subprocess.run(
        [str(careloop), "flows", "validate", str(FIXTURES / "broken" / "bad_code.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert broken.returncode == 1
    assert "'code' '68509-1' is not a valid LOINC code" in broken.stdout


def test_validate_refuses_a_flow_that_writes_an_unknown_profile_field(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "host" / "unknown_profile_field.yaml"
    assert run(["flows", "validate", str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:save_smoking: 'field' names 'smoking_now', which is not a profile field",
    ]
