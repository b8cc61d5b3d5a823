"""``careloop import reports FILE...``: per-file counts, named problems, exit codes, idempotence."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import func, select, text

from careloop.db import make_engine
from careloop.settings import Settings
from tests.care.imports.samples import (
    CHECKUP_60,
    checkup_rows,
    csv_bytes,
    fhir_bundle,
    fixture,
    hl7_message,
    quantity,
    xlsx_bytes,
)

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
        ["C0002", "R2", "2024-03-05", "tc", "五", "mmol/L"],
        ["C9999", "R3", "2024-03-05", "sbp", "120", "mmHg"],
    ]))
    code, out, err = run_cli("import", "reports", str(path))
    assert code == 1
    assert "reports: 1 imported, 0 replaced, 0 skipped, 2 rejected; rows: 1 imported, 0 replaced, 0 skipped, " \
           "3 rejected" in out
    assert "bad.csv: row 3, value: sbp is outside the plausible range 60-300 mmHg (a unit or typing error?)" in err
    assert "bad.csv: row 4, value: is not a number" in err
    assert "bad.csv: row 5, card_no: no enrolled patient has this card number" in err
    assert "1350" not in err
    assert "五" not in err
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


def test_codes_outside_the_indicator_table_are_kept_and_counted(
    run_cli: Cli, tmp_path: Path, fresh_settings: Settings
) -> None:
    enrolled(run_cli, tmp_path)
    path = tmp_path / "checkup.xlsx"
    path.write_bytes(xlsx_bytes(checkup_rows("C0001")))
    code, out, err = run_cli("import", "reports", str(path))
    assert code == 0, err
    unknown = sorted(name for name, _, _, key in CHECKUP_60 if key is None)
    assert out.strip().endswith(
        "checkup.xlsx: reports: 1 imported, 0 replaced, 0 skipped, 0 rejected; rows: 60 imported, 0 replaced, "
        f"0 skipped, 0 rejected; of the 60 rows written, 6 with codes not in the indicator table: {', '.join(unknown)} "
        "(kept as they came, not used in rules or risk)"
    )
    assert count(fresh_settings, "observations") == 60
    code, out, _ = run_cli("import", "reports", str(path))
    assert (code, out.count("1 skipped")) == (0, 1)
    assert count(fresh_settings, "observations") == 60


def test_a_stand_alone_fhir_observation_and_a_searchset_import(
    run_cli: Cli, tmp_path: Path, fresh_settings: Settings
) -> None:
    enrolled(run_cli, tmp_path)
    esr = json.loads(fixture("esr_observation.json"))
    esr["subject"]["identifier"]["value"] = "C0001"
    (tmp_path / "esr.json").write_text(json.dumps(esr), encoding="utf-8")
    (tmp_path / "cbc.json").write_bytes(fixture("cbc_searchset.json").replace(b"UC-0002", b"C0002"))
    code, out, err = run_cli("import", "reports", str(tmp_path / "esr.json"), str(tmp_path / "cbc.json"))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert "esr.json: reports: 1 imported" in lines[0]
    assert "cbc.json: reports: 1 imported" in lines[1]
    assert "1 with codes not in the indicator table: 58413-6" in lines[1]
    assert count(fresh_settings, "observations") == 11


def test_a_mapping_file_for_one_import_and_stored_mappings(
    run_cli: Cli, tmp_path: Path, fresh_settings: Settings
) -> None:
    enrolled(run_cli, tmp_path)
    mapping = tmp_path / "map.csv"
    mapping.write_text("local_code,code,unit\nLIS-TC,tc,mg/dL\nLIS-HB,hgb,g/dL\n", encoding="utf-8")
    report = tmp_path / "r.csv"
    report.write_bytes(csv_bytes([["C0001", "R1", "2024-03-05", "LIS-TC", "201", ""],
                                  ["C0001", "R1", "2024-03-05", "LIS-HB", "13.5", ""]]))
    code, out, err = run_cli("import", "reports", "--map", str(mapping), str(report))
    assert code == 0, err
    assert "rows: 2 imported" in out
    assert "not in the indicator table" not in out

    # Stored for the source, the same local codes work without --map (and for POST /api/v1/reports).
    assert run_cli("import", "mappings", "add", "--source", "lis", str(mapping)) == (
        0, f"{mapping}: 2 added, 0 updated, 0 unchanged (source lis)\n", "")
    code, out, _ = run_cli("import", "mappings", "list")
    assert out.splitlines() == ["source\tlocal_code\tcode\tunit", "lis\tLIS-HB\thgb\tg/dL", "lis\tLIS-TC\ttc\tmg/dL"]
    other = tmp_path / "r2.csv"
    other.write_bytes(csv_bytes([["C0002", "R2", "2024-03-05", "LIS-TC", "180", ""]]))
    code, out, err = run_cli("import", "reports", "--source", "lis", str(other))
    assert code == 0, err
    assert "not in the indicator table" not in out
    assert run_cli("import", "mappings", "remove", "--source", "lis", "lis-tc")[0] == 0
    code, _, err = run_cli("import", "mappings", "remove", "--source", "lis", "lis-tc")
    assert (code, err) == (1, "error: no mapping of 'lis-tc' is stored for source lis\n")


def test_a_bad_mapping_file_names_its_rows_and_imports_nothing(
    run_cli: Cli, tmp_path: Path, fresh_settings: Settings
) -> None:
    enrolled(run_cli, tmp_path)
    mapping = tmp_path / "map.csv"
    mapping.write_text("local_code,code,unit\nA,nonsense,\nB,hgb,mmHg\n", encoding="utf-8")
    report = tmp_path / "r.csv"
    report.write_bytes(csv_bytes([["C0001", "R1", "2024-03-05", "sbp", "120", "mmHg"]]))
    code, _, err = run_cli("import", "reports", "--map", str(mapping), str(report))
    assert code == 1
    assert err.splitlines() == [
        "error: map.csv: 2 bad row(s)",
        "  map.csv: row 2, code: 'nonsense' is neither a code of the indicator table nor a LOINC code",
        "  map.csv: row 3, unit: unit 'mmHg' is not accepted for hgb",
    ]
    assert count(fresh_settings, "observations") == 0
    assert run_cli("import", "mappings", "add", str(mapping))[0] == 1


def test_the_export_holds_every_result_kept_ones_included(
    run_cli: Cli, tmp_path: Path, fresh_settings: Settings
) -> None:
    enrolled(run_cli, tmp_path)
    report = tmp_path / "r.csv"
    report.write_bytes(csv_bytes([["C0001", "R1", "2024-03-05", "总胆固醇(TC)", "5.2", "mmol/L"],
                                  ["C0001", "R1", "2024-03-05", "癌胚抗原(CEA)", "1.8", "ng/mL"]]))
    assert run_cli("import", "reports", str(report))[0] == 0
    out = tmp_path / "obs.xlsx"
    code, printed, err = run_cli("export", "observations", "--out", str(out), "--lang", "zh")
    assert code == 0, err
    assert printed == f"{out}: 2 results of 2 patient(s) written\n"
    rows = list(load_workbook(out, read_only=True).worksheets[0].iter_rows(values_only=True))
    assert rows[0] == ("卡号", "日期", "代码", "代码体系", "名称", "结果", "单位", "参与评估", "来源")
    assert ("C0001", "2024-03-05", "14647-2", "http://loinc.org", "总胆固醇", 5.2, "mmol/L", "是", "report:csv") in rows
    assert ("C0001", "2024-03-05", "癌胚抗原(CEA)", None, "癌胚抗原(CEA)", 1.8, "ng/mL", "否（原样保存）",
            "report:csv") in rows
    code, _, err = run_cli("export", "observations", "--out", str(out), "--patient", "NOSUCH")
    assert code == 1
    assert err.strip() == "error: no patient has this card number or id"
