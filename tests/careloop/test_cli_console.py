"""``careloop console``: a patient's conversation from the terminal, one message a line."""

from __future__ import annotations

import io

import pytest


def test_console_runs_a_home_reading_as_the_patient(run_cli, monkeypatch):
    assert run_cli("demo", "--no-serve")[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("血压\n血压135/85\nexit\nnot read\n"))
    code, out, err = run_cli("console", "DEMO00011")
    assert code == 0, err
    assert "请发来您今天测的血压或血糖" in out
    assert "已记录：135/85 mmHg" in out


def test_console_refuses_an_unknown_patient_with_one_line(run_cli, monkeypatch):
    assert run_cli("init")[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("你好\n"))
    code, _, err = run_cli("console", "NOPE-404")
    assert code == 1
    assert err.strip() == "error: no patient has this card number or id"


@pytest.mark.parametrize("argv", [["console"], ["console", "a", "b"]])
def test_console_usage_errors_exit_2(run_cli, argv):
    assert run_cli(*argv)[0] == 2
