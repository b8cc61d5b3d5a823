"""Keep everything, use what is understood: a 60-indicator Chinese checkup, codes outside the table kept
(encrypted, shown, exported, counted) and never read by trends, risk or rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bot.conversations import gather_facts
from care.assessments import gather_risk_inputs
from care.imports.report_formats import FORMATS, ReportSource
from care.imports.reports import ReportTally, import_document
from care.indicator_table import INDICATORS
from care.indicators import indicator_series
from care.models import CheckupReport, Observation, Patient
from care.observations import latest_values, observations_of, record_observation
from care.record_results import export_rows, recorded_results
from security.audit import Actor
from tests.care.imports.samples import CHECKUP_60, checkup_rows, csv_bytes, hl7_message, xlsx_bytes

ACTOR = Actor("system", "pytest", "tests")
UNKNOWN = sorted(name for name, _, _, key in CHECKUP_60 if key is None)


def run(db: Session, fmt: str, data: bytes, *, source: str = "centre") -> ReportTally:
    tally = import_document(db, ReportSource.from_bytes(f"upload.{fmt}", data), FORMATS[fmt], source_name=source,
                            actor=ACTOR)
    db.flush()
    return tally


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_a_60_indicator_checkup_in_chinese_printed_names_is_imported_whole(
    db: Session, make_patient: Callable[..., Patient], fmt: str
) -> None:
    patient = make_patient()
    rows = checkup_rows(patient.card_no)
    data = xlsx_bytes(rows) if fmt == "xlsx" else csv_bytes(rows)
    tally = run(db, fmt, data)
    assert tally.problems == []
    assert (tally.reports.imported, tally.rows.imported) == (1, 60)
    assert tally.kept["unknown_code"].to_dict() == {"rows": 6, "codes": UNKNOWN}
    assert tally.summary().endswith(
        "rows: 60 imported, 0 replaced, 0 skipped, 0 rejected; of the 60 rows written, 6 with codes not in the "
        f"indicator table: {', '.join(UNKNOWN)} (kept as they came, not used in rules or risk)"
    )
    used = {row.code: row for row in observations_of(db, patient)}
    assert len(used) == 54
    for name, _value, _unit, key in CHECKUP_60:
        if key is not None:
            assert INDICATORS[key].loinc in used, name
    assert round(used[INDICATORS["ua"].loinc].value or 0) == 352  # "352↑": the printed flag is not the value
    assert used[INDICATORS["u_bld"].loinc].value_text == "±"
    assert used[INDICATORS["u_leu"].loinc].value_text == "+"
    assert used[INDICATORS["tsh"].loinc].unit == "mIU/L"
    kept = {row.code: row for row in observations_of(db, patient, kept_too=True) if not row.recognised}
    assert sorted(kept) == UNKNOWN
    assert (kept["癌胚抗原(CEA)"].value, kept["癌胚抗原(CEA)"].unit) == (1.8, "ng/mL")
    assert (kept["尿胆原(URO)"].value, kept["尿胆原(URO)"].value_text) == (None, "正常")
    # Imported again: nothing changes.
    again = run(db, fmt, data)
    assert (again.reports.skipped, again.rows.skipped, again.rows.imported) == (1, 60, 0)
    assert len(observations_of(db, patient, kept_too=True)) == 60


def test_kept_values_and_their_texts_are_encrypted_at_rest(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient()
    run(db, "csv", csv_bytes([[patient.card_no, "R1", "2024-03-05", "CA19-9", "Negative-SECRET", "U/mL"]]))
    raw = db.execute(text("SELECT value, value_text, display, code, recognised FROM observations")).one()
    assert raw.value is None
    assert b"Negative-SECRET" not in bytes(raw.value_text)
    assert (raw.code, bool(raw.recognised)) == ("CA19-9", False)
    [row] = observations_of(db, patient, kept_too=True)
    assert row.value_text == "Negative-SECRET"


def test_an_hl7_obx_with_an_unknown_code_is_kept_not_refused(
    db: Session, make_patient: Callable[..., Patient]
) -> None:
    patient = make_patient()
    message = hl7_message(card=patient.card_no, report_id="H-UNK", results=[
        ("8480-6", "146", "mm[Hg]", "F"), ("2345-7", "104", "mg/dL", "F"), ("LOCAL-9", "阳性", "", "F"),
    ])
    tally = run(db, "hl7v2", message.encode())
    assert tally.problems == []
    assert (tally.reports.imported, tally.rows.imported) == (1, 3)
    assert tally.kept["unknown_code"].to_dict() == {"rows": 2, "codes": ["2345-7", "LOCAL-9"]}
    rows = {row.code: row for row in observations_of(db, patient, kept_too=True)}
    assert (rows["2345-7"].value, rows["2345-7"].unit, rows["2345-7"].code_system) == (104.0, "mg/dL",
                                                                                       "http://loinc.org")
    assert rows["LOCAL-9"].value_text == "阳性"
    assert rows["8480-6"].recognised


def test_kept_results_are_shown_in_the_record_and_exported(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient()
    run(db, "csv", csv_bytes([
        [patient.card_no, "R1", "2024-03-05", "血红蛋白(HGB)", "135", "g/L"],
        [patient.card_no, "R1", "2024-03-05", "载脂蛋白B(ApoB)", "0.98", "g/L"],
    ]))
    shown = {result.code: result for result in recorded_results(db, patient)}
    assert shown["718-7"].name.zh == "血红蛋白"
    assert (shown["718-7"].value, shown["718-7"].unit, shown["718-7"].used) == (135.0, "g/L", True)
    assert shown["载脂蛋白B(ApoB)"].used is False
    assert shown["载脂蛋白B(ApoB)"].day == date(2024, 3, 5)
    rows = list(export_rows(db, [patient], lang="en", actor=ACTOR))
    assert rows[0][:3] == ("card_no", "date", "code")
    assert (patient.card_no, "2024-03-05", "载脂蛋白B(ApoB)", "", "载脂蛋白B(ApoB)", 0.98, "g/L",
            "no (kept as it came)", "report:csv") in rows
    assert (patient.card_no, "2024-03-05", "718-7", "http://loinc.org", "Haemoglobin", 135.0, "g/L", "yes",
            "report:csv") in rows


def test_kept_results_never_reach_trends_risk_or_flow_facts(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient()
    record_observation(db, patient, code="8480-6", value=128.0, unit="mmHg", source="clinic", actor=ACTOR,
                       effective_at=datetime(2024, 3, 1, tzinfo=UTC))
    # The worst case: a kept row under a code the clinical layer reads, with a number in it.
    kept = record_observation(db, patient, code="8480-6", value=190.0, unit="kPa?", source="report:csv",
                              actor=ACTOR, effective_at=datetime(2024, 3, 5, tzinfo=UTC))
    kept.recognised = False
    tally = run(db, "csv", csv_bytes([[patient.card_no, "R1", "2024-03-06", "sbp", ">200", "mmHg"],
                                      [patient.card_no, "R1", "2024-03-06", "LOCAL-BP", "200", "mmHg"]]))
    assert (tally.problems, tally.rows.imported) == ([], 2)
    db.flush()
    assert indicator_series(db, patient) == {"sbp": [(date(2024, 3, 1), 128.0)]}
    assert {code: row.value for code, row in latest_values(db, patient).items()} == {"8480-6": 128.0}
    assert gather_facts(db, patient)["observations"] == {"8480-6": 128.0}
    assert gather_risk_inputs(db, patient, date(2026, 11, 29)).values.get("sbp") == 128.0
    assert len(observations_of(db, patient, kept_too=True)) == 4


def test_a_kept_code_longer_than_the_record_takes_is_refused(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient()
    tally = run(db, "csv", csv_bytes([[patient.card_no, "R1", "2024-03-05", "X" * 33, "1", "mg/L"]]))
    assert [(p.where, p.column, p.reason) for p in tally.problems] == [
        ("row 2", "code", "is longer than 32 characters")]
    assert db.scalars(select(Observation.id)).all() == []
    assert db.scalars(select(CheckupReport.id)).all() == []
