"""An import's refusals name the row and the column, never the value of a PHI field, and its audit entry
holds no file name.

What an import says goes to a terminal, a log collector or (``POST /api/v1/reports``) back over the
wire; the audit trail is kept for years. Phone numbers, birth dates, card and ID numbers, result
dates and report ids are all PHI; so is a file's name ("zhang_san.xlsx"). The audit entry carries
the file's SHA-256 instead, which ties the entry to the file for whoever holds it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import text

from careloop.db import make_engine
from tests.care.imports.samples import csv_bytes, fhir_bundle, hl7_message, quantity
from tests.careloop.test_cli_import_reports import enrolled

PATIENT_HEADER = "card_no,name,gender,birth_date,phone,id_number,language,wechat_openid\n"
#: One bad field a row, each value distinctive enough to be found wherever it is repeated.
BAD_PATIENT_ROWS = [
    "P0002,赵六,F,1961-02-03,13907714,,zh,",  # phone
    "P0003,钱七,Q7X,1962-03-04,13912345678,,zh,",  # gender
    "P0004,孙八,M,1963-14-31,13912345679,,zh,",  # birth date
    "P0005,周九,M,2091-03-04,13912345670,,zh,",  # birth date
    "P0006,吴十,F,1964-05-06,13912345671,,xq,",  # language
    "P0007,郑一,F,1965-06-07,13912345672,11010519491231002Y,zh,",  # ID number
]
SBP_150 = ("8480-6", "150", "mm[Hg]", "F")
SECRET_VALUES = ["13907714", "Q7X", "1963-14-31", "2091-03-04", "'xq'", "11010519491231002Y"]


def audit_details(settings, action: str) -> list[dict[str, object]]:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT details FROM audit_log WHERE action = :action"),
                                      {"action": action}).scalars().all()
    finally:
        engine.dispose()
    return [json.loads(row) for row in rows]


def test_a_refused_patient_row_names_its_row_and_column_but_no_value(run_cli, tmp_path: Path):
    assert run_cli("init")[0] == 0
    path = tmp_path / "patients.csv"
    path.write_text(PATIENT_HEADER + "\n".join(BAD_PATIENT_ROWS) + "\n", encoding="utf-8")
    code, out, err = run_cli("import", "patients", str(path))
    assert code == 1
    told = [line.strip() for line in err.strip().splitlines()]
    assert [line.split(":")[1].strip() for line in told] == [
        "row 2, phone", "row 3, gender", "row 4, birth_date", "row 5, birth_date", "row 6, language",
        "row 7, id_number"]
    assert [value for value in SECRET_VALUES if value in out + err] == []


def test_the_patient_import_audit_holds_the_files_hash_not_its_name(run_cli, tmp_path: Path, fresh_settings):
    assert run_cli("init")[0] == 0
    path = tmp_path / "zhang_san.csv"
    path.write_text(PATIENT_HEADER + "P0001,张三,M,1960-01-02,13912345678,,zh,\n", encoding="utf-8")
    assert run_cli("import", "patients", str(path))[0] == 0
    [details] = audit_details(fresh_settings, "import.patients")
    assert "zhang_san" not in json.dumps(details)
    assert details == {"file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "created": 1, "updated": 0,
                       "unchanged": 0, "rejected": 0}


def test_the_report_import_audit_holds_the_files_hash_not_its_name(run_cli, tmp_path: Path, fresh_settings):
    enrolled(run_cli, tmp_path)
    path = tmp_path / "li_si.csv"
    path.write_bytes(csv_bytes([["C0001", "R1", "2024-03-05", "sbp", "146", "mmHg"]]))
    assert run_cli("import", "reports", str(path))[0] == 0
    [details] = audit_details(fresh_settings, "import.reports")
    assert "li_si" not in json.dumps(details)
    assert details["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_refused_report_names_where_but_no_card_date_id_or_report_id(run_cli, tmp_path: Path):
    enrolled(run_cli, tmp_path)
    taken = tmp_path / "taken.csv"
    taken.write_bytes(csv_bytes([["C0001", "R-TAKEN-77", "2024-03-05", "sbp", "146", "mmHg"]]))
    assert run_cli("import", "reports", str(taken))[0] == 0
    files = {
        "rows.csv": csv_bytes([
            ["C9981", "R1", "2024-03-05", "sbp", "146", "mmHg"],
            ["C0001", "R2", "2024-13-27", "sbp", "146", "mmHg"],
            ["C0001", "R3", "2091-07-19", "sbp", "146", "mmHg"],
            ["C0001", "R4", "1899-11-23", "sbp", "146", "mmHg"],
            ["C0002", "R-TAKEN-77", "2024-03-05", "sbp", "146", "mmHg"],
        ]),
        "msg.hl7": (hl7_message(card="C0001", report_id="H1", when="20241341", results=[SBP_150])
                    + hl7_message(card="C9982", report_id="H2", control="MSG2", results=[SBP_150])).encode(),
        "doc.json": fhir_bundle(card="C9983", observations=[quantity("8480-6", 120, "mmHg")]).replace(
            b'"id": "patient-1"', b'"id": "C9983"'),  # a sender that makes the card number the resource id
        "ref.json": fhir_bundle(card="C0001", observations=[quantity("8480-6", 120, "mmHg")]).replace(
            b'"subject": {"reference": "urn:uuid:patient-1"}, "effectiveDateTime"',
            b'"subject": {"reference": "Patient?identifier=urn:oid:2.16.156.10011.1.3|110101199003077777"}, '
            b'"effectiveDateTime"', 1),
    }
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    code, out, err = run_cli("import", "reports", *paths)
    assert code == 1
    problems = [line.strip() for line in err.splitlines() if line.startswith("  ")]
    assert len(problems) == 10, err
    assert [line.split(": ", 1)[1].split(":")[0] for line in problems] == [
        "row 3, date", "row 4, date", "row 5, date", "row 2, card_no", "row 6, report_id",
        "message 1 (line 1), OBR 1, OBR-7", "message 1 (line 1), OBX 1, OBX-14", "message 2 (line 5), PID, PID-3",
        "entry 1 (Patient), identifier", "entry 2 (DiagnosticReport/report-1), subject"]
    secrets = ["C9981", "2024-13-27", "2091-07-19", "1899-11-23", "R-TAKEN-77", "20241341", "C9982", "C9983",
               "110101199003077777"]
    assert [value for value in secrets if value in out + err] == []


def test_a_patient_not_found_by_a_command_is_not_repeated_back(run_cli, tmp_path: Path):
    assert run_cli("init")[0] == 0
    code, _, err = run_cli("report", "C7741", "--out", str(tmp_path / "r.pdf"))
    assert code == 1
    assert err.strip() == "error: no patient has this card number or id"
