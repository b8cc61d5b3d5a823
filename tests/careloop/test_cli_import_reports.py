"""``careloop import reports FILE...``: per-file counts, named problems, exit codes, idempotence."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select, text

from careloop.db import make_engine
from careloop.settings import Settings
from tests.care.imports.samples import csv_bytes, fhir_bundle, hl7_message, quantity, xlsx_bytes

Cli = Callable[..., tuple[int, str, str]]
PATIENTS = (
    "card_no,name,gender,birth_date,phone\n"
    "C0001,王芳,F,1960-05-17,13812345678\n"
    "C0002,李强,M,1955-01-02,13812345679\n"
)


def enrolled(run_cli: Cli, tmp_path: Path) -> None:
    assert run_cli("init")[0] == 0
    patients = tmp_path / "patients.csv"
    patients.write_text(PATIENTS, encoding="utf-8")
    assert run_cli("import", "patients", str(patients))[0] == 0


def count(settings: Settings, table: str) -> int:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(text(table))).scalar_one())
    finally:
        engine.dispose()


def test_each_format_imports_and_prints_its_counts(run_cli: Cli, tmp_path: Path, fresh_settings: Settings) -> None:
    enrolled(run_cli, tmp_path)
    files = {
        "r.csv": csv_bytes([["C0001", "R1", "2024-03-05", "sbp", "146", "mmHg"],
                            ["C0001", "R1", "2024-03-05", "tc", "201", "mg/dL"]]),
        "r.xlsx": xlsx_bytes([["C0002", "R2", "2024-03-06", "fpg", "6.1", "mmol/L"]]),
        "r.hl7": hl7_message(card="C0001", report_id="H1", results=[("8480-6", "150", "mm[Hg]", "F")]).encode(),
        "r.json": fhir_bundle(card="C0002", report_id="F1", observations=[quantity("14771-0", 5.5, "mmol/L")]),
    }
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    code, out, err = run_cli("import", "reports", *paths)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].endswith("r.csv: reports: 1 imported, 0 replaced, 0 skipped, 0 rejected; "
                             "rows: 2 imported, 0 replaced, 0 skipped, 0 rejected")
    assert all("reports: 1 imported" in line for line in lines)
    assert count(fresh_settings, "observations") == 5
    assert count(fresh_settings, "checkup_reports") == 4

    code, out, _ = run_cli("import", "reports", *paths)
    assert code == 0
    assert all("reports: 0 imported, 0 replaced, 1 skipped" in line for line in out.splitlines())
    assert count(fresh_settings, "observations") == 5


def test_rejected_rows_are_named_and_exit_1(run_cli: Cli, tmp_path: Path, fresh_settings: Settings) -> None:
    enrolled(run_cli, tmp_path)
    path = tmp_path / "bad.csv"
    path.write_bytes(csv_bytes([
        ["C0001", "R1", "2024-03-05", "sbp", "146", "mmHg"],
        ["C0002", "R2", "2024-03-05", "sbp", "1350", "mmHg"],
        ["C0002", "R2", "2024-03-05", "xyz", "1", "mmol/L"],
        ["C9999", "R3", "2024-03-05", "sbp", "120", "mmHg"],
    ]))
    code, out, err = run_cli("import", "reports", str(path))
    assert code == 1
    assert "reports: 1 imported, 0 replaced, 0 skipped, 2 rejected; rows: 1 imported, 0 replaced, 0 skipped, " \
           "3 rejected" in out
    assert "bad.csv: row 3, value: sbp is outside the plausible range 60-300 mmHg (a unit or typing error?)" in err
    assert "bad.csv: row 4, code: unknown indicator code 'xyz'" in err
    assert "bad.csv: row 5, card_no: no enrolled patient has card number C9999" in err
    assert count(fresh_settings, "observations") == 1


def test_unknown_and_unreadable_files_are_one_line_each(run_cli: Cli, tmp_path: Path) -> None:
    enrolled(run_cli, tmp_path)
    (tmp_path / "r.txt").write_text("hello", encoding="utf-8")
    (tmp_path / "r.json").write_text("{not json", encoding="utf-8")
    code, _, err = run_cli("import", "reports", str(tmp_path / "r.txt"), str(tmp_path / "r.json"),
                           str(tmp_path / "missing.csv"))
    assert code == 1
    assert "r.txt: unknown file type '.txt'" in err
    assert "r.json is not valid JSON" in err
    assert "missing.csv: no such file" in err
    assert "Traceback" not in err


def test_the_file_import_is_audited_without_values(run_cli: Cli, tmp_path: Path, fresh_settings: Settings) -> None:
    enrolled(run_cli, tmp_path)
    path = tmp_path / "r.csv"
    path.write_bytes(csv_bytes([["C0001", "R1", "2024-03-05", "sbp", "146", "mmHg"]]))
    assert run_cli("import", "reports", "--source", "centre-a", str(path))[0] == 0
    engine = make_engine(fresh_settings.database_url)
    try:
        with engine.connect() as connection:
            details = connection.execute(
                text("SELECT details FROM audit_log WHERE action = 'import.reports'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert '"reports_imported":1' in details
    assert '"source":"centre-a"' in details
    assert "146" not in details
