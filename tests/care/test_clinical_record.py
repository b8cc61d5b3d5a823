"""Trends, stored risk assessments, advice edits and stage summaries over the record."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from care import staff
from care.advice_lines import edit_advice_line, patient_advice, restore_advice_line, suppress_advice_line
from care.assessments import assess_risks, latest_risk_results, risk_history
from care.clinical.common import Label
from care.errors import ConflictError, ValidationFailedError
from care.followups import schedule_followup
from care.imports.report_formats import FORMATS, ReportSource
from care.imports.reports import import_document
from care.indicators import patient_trends
from care.models import AuditEntry, FollowUpStatus, Patient, RiskAssessment, StageSummaryRecord
from care.profiles import set_profile_field
from care.results import save_result
from care.stage_summaries import (
    SigningNotAllowedError,
    create_stage_summary,
    latest_signed_summary,
    revise_stage_summary,
    sign_stage_summary,
    summary_versions,
)
from security.audit import Actor
from security.clock import FixedClock
from tests.care.imports.samples import csv_bytes

ACTOR = Actor("system", "pytest", "tests")
YEARS = (2020, 2021, 2022, 2023, 2024)
#: Five annual checkups; tc is reported in mg/dL in 2020-2021 and mmol/L afterwards.
HISTORY: dict[str, tuple[tuple[str, str], ...]] = {
    "sbp": (("128", "mmHg"), ("133", "mmHg"), ("138", "mmHg"), ("142", "mmHg"), ("146", "mmHg")),
    "waist": (("96", "cm"), ("94", "cm"), ("92", "cm"), ("90", "cm"), ("88", "cm")),
    "weight": (("75.0", "kg"), ("75.2", "kg"), ("74.9", "kg"), ("75.1", "kg"), ("75.0", "kg")),
    "tc": (("197.2", "mg/dL"), ("201.1", "mg/dL"), ("5.4", "mmol/L"), ("5.5", "mmol/L"), ("5.6", "mmol/L")),
    "hdl": (("1.40", "mmol/L"), ("1.30", "mmol/L"), ("1.20", "mmol/L"), ("1.08", "mmol/L"), ("0.95", "mmol/L")),
    "dbp": (("80", "mmHg"), ("84", "mmHg"), ("79", "mmHg"), ("86", "mmHg"), ("82", "mmHg")),
}


def import_history(db: Session, patient: Patient) -> None:
    rows = [
        [patient.card_no, f"Y{year}", f"{year}-05-12", code, value, unit]
        for code, series in HISTORY.items()
        for year, (value, unit) in zip(YEARS, series, strict=True)
    ]
    tally = import_document(db, ReportSource.from_bytes("history.csv", csv_bytes(rows)), FORMATS["csv"],
                            source_name="centre", actor=ACTOR)
    assert not tally.problems
    assert tally.reports.imported == 5
    db.flush()


def test_five_year_history_gives_the_expected_trend_lines(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient(gender="M", birth_date=date(1964, 5, 1))
    import_history(db, patient)
    trends = {trend.code: trend for trend in patient_trends(db, patient)}
    assert [p.when for p in trends["sbp"].points] == [date(year, 5, 12) for year in YEARS]
    assert trends["sbp"].text.zh == "收缩压连续4年上升, 由128升至146 mmHg"
    assert trends["sbp"].text.en == "Systolic BP rose 4 years in a row, from 128 to 146 mmHg"
    assert trends["sbp"].flag == "high"
    assert trends["sbp"].category is not None
    assert trends["sbp"].category.key == "grade1"
    assert trends["waist"].text.zh == "腰围连续4年下降, 由96.0降至88.0 cm"
    assert trends["weight"].text.zh == "体重2020–2024年间保持稳定, 在74.9~75.2 kg之间"
    # 197.2 mg/dL = 5.10 mmol/L; steps of 0.1 are within the tolerance, so "overall" (rule TREND-1)
    assert trends["tc"].text.zh == "总胆固醇2020–2024年间总体上升, 由5.10升至5.60 mmol/L"
    assert trends["hdl"].text.zh.startswith("高密度脂蛋白胆固醇连续4年下降")
    assert trends["hdl"].flag == "low"
    assert trends["dbp"].text.zh == "舒张压2020–2024年间有波动, 在79~86 mmHg之间, 最近一次为82 mmHg"
    assert trends["sbp"].slope_per_year == pytest.approx(4.5, abs=0.01)


def _china_par_patient(db: Session, make_patient: Callable[..., Patient]) -> Patient:
    """The paper's 60-year-old man (clinical-spec.md 1.5): 10.82% -> high."""
    patient = make_patient(gender="M", birth_date=date(1966, 1, 10))
    rows = [[patient.card_no, "CP1", "2026-03-01", *row] for row in (
        ("sbp", "130", "mmHg"), ("dbp", "80", "mmHg"), ("tc", "210", "mg/dL"), ("hdl", "55", "mg/dL"),
        ("waist", "80", "cm"), ("weight", "70", "kg"), ("height", "170", "cm"),
    )]
    import_document(db, ReportSource.from_bytes("cp.csv", csv_bytes(rows)), FORMATS["csv"], source_name="centre",
                    actor=ACTOR)
    for name, value in (("bp_treated", False), ("smoker", False), ("diabetes", True), ("region_north", True),
                        ("urban", True), ("family_history_ascvd", False)):
        set_profile_field(db, patient, name, value, actor=ACTOR)
    db.flush()
    return patient


def test_risk_is_assessed_from_the_record_and_stored_encrypted(
    db: Session, make_patient: Callable[..., Patient]
) -> None:
    patient = _china_par_patient(db, make_patient)
    rows = assess_risks(db, patient, actor=ACTOR, on=date(2026, 6, 1))
    db.flush()
    by_model = {row.model: row for row in rows}
    china_par = by_model["china-par"]
    assert china_par.value == pytest.approx(10.8)
    assert china_par.category == "high"
    assert china_par.rule_pack.startswith("ChinaPAR-2016")
    assert china_par.missing == []
    assert china_par.inputs is not None
    assert china_par.inputs["diabetes"] is True
    assert china_par.result["sources"]["sbp"] == "observation 2026-03-01"
    assert by_model["bmi"].value == pytest.approx(24.2)
    assert by_model["bmi"].category == "overweight"
    assert by_model["bp"].category == "high_normal"
    # FINDRISC lacks answers it needs: stored as incomplete with the missing inputs named, nothing guessed.
    assert by_model["findrisc"].value is None
    assert by_model["findrisc"].category == "incomplete"
    assert "physically_active" in by_model["findrisc"].missing
    assert "phq9" not in by_model  # never answered: not applicable
    raw = db.execute(text("SELECT category, value FROM risk_assessments WHERE id = :id"),
                     {"id": china_par.id if db.get_bind().dialect.name == "postgresql" else china_par.id.hex}).one()
    assert b"high" not in bytes(raw[0])
    assert b"10.8" not in bytes(raw[1])
    assert db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == patient.id,
                                                      AuditEntry.action == "risk.assess")).all() == ["risk.assess"]


def test_risk_is_stored_per_day_so_it_can_be_trended(
    db: Session, make_patient: Callable[..., Patient], clock: FixedClock
) -> None:
    patient = _china_par_patient(db, make_patient)
    assess_risks(db, patient, actor=ACTOR, on=date(2026, 6, 1))
    assess_risks(db, patient, actor=ACTOR, on=date(2026, 6, 1))  # the same day again: replaced, not added
    set_profile_field(db, patient, "smoker", True, actor=ACTOR)
    assess_risks(db, patient, actor=ACTOR, on=date(2026, 9, 1))
    db.flush()
    history = risk_history(db, patient, model="china-par")
    assert [day for day, _ in history] == [date(2026, 6, 1), date(2026, 9, 1)]
    assert history[0][1].value == pytest.approx(10.8)
    assert history[1][1].value == pytest.approx(12.0)  # smoking now: higher
    count = db.scalar(select(func.count()).select_from(RiskAssessment).where(RiskAssessment.model == "china-par"))
    assert count == 2
    latest = {result.model: result for result in latest_risk_results(db, patient)}
    assert latest["china-par"].value == history[1][1].value
    assert latest["china-par"].category_label.zh == "高危"


def test_questionnaire_answers_feed_phq9(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient()
    session_id = uuid.uuid4()
    for number, score in enumerate([1, 2, 1, 2, 1, 1, 1, 0, 1], start=1):
        save_result(db, patient, flow_id="phq9", flow_version=1, name=f"phq9_q{number}", value=score, category=None,
                    session_id=session_id, actor=ACTOR)
    db.flush()
    by_model = {row.model: row for row in assess_risks(db, patient, actor=ACTOR)}
    assert by_model["phq9"].value == 10
    assert by_model["phq9"].category == "moderate"
    assert by_model["phq9"].result["flags"] == ["suicide_risk"]
    advice = patient_advice(db, patient)
    assert advice.lines[0].id == "safety.crisis_line"


def test_a_clinician_suppresses_and_edits_advice_lines(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = _china_par_patient(db, make_patient)
    assess_risks(db, patient, actor=ACTOR)
    db.flush()
    before = patient_advice(db, patient)
    ids = [line.id for line in before.lines]
    assert ids
    first, second = ids[0], ids[1]
    suppress_advice_line(db, patient, first, actor=ACTOR)
    edit_advice_line(db, patient, second, Label("每天散步30分钟。", "Walk 30 minutes a day."), actor=ACTOR)
    db.flush()
    after = patient_advice(db, patient)
    assert first not in [line.id for line in after.lines]
    assert after.suppressed == (first,)
    [edited] = [line for line in after.lines if line.id == second]
    assert edited.edited
    assert edited.text.zh == "每天散步30分钟。"
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == patient.id,
                                                         AuditEntry.action.like("advice.%"))).all()
    assert sorted(actions) == ["advice.edit", "advice.suppress"]
    assert restore_advice_line(db, patient, first, actor=ACTOR)
    db.flush()
    assert first in [line.id for line in patient_advice(db, patient).lines]


def test_locked_and_unknown_advice_lines_cannot_be_edited(db: Session, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient()
    with pytest.raises(ConflictError, match="locked"):
        suppress_advice_line(db, patient, "safety.crisis_line", actor=ACTOR)
    with pytest.raises(ValidationFailedError, match="is not an advice line"):
        edit_advice_line(db, patient, "no.such.line", Label("x", "x"), actor=ACTOR)


def _signer(db: Session, role: str = "doctor") -> staff.User:
    account = staff.create_user(db, email=f"{role}-{uuid.uuid4().hex[:6]}@clinic.test", display_name="李医生",
                                role_name=role, actor=ACTOR)
    db.flush()
    return account.user


def test_stage_summary_is_saved_signed_and_versioned(
    db: Session, make_patient: Callable[..., Patient], clock: FixedClock
) -> None:
    patient = make_patient(gender="M", birth_date=date(1964, 5, 1))
    import_history(db, patient)
    for index, status in enumerate([FollowUpStatus.COMPLETED, FollowUpStatus.COMPLETED, FollowUpStatus.UNANSWERED,
                                    FollowUpStatus.SCHEDULED]):
        followup = schedule_followup(db, patient, flow_id="hypertension_followup",
                                     due_at=datetime(2024, 2 + index, 1, 2, tzinfo=UTC), actor=ACTOR)
        followup.status = status.value
    db.flush()
    record = create_stage_summary(db, patient, period_start=date(2023, 1, 1), period_end=date(2024, 12, 31),
                                  actor=ACTOR, conclusion="血压控制欠佳。")
    db.flush()
    assert record.version == 1
    assert not record.signed
    assert record.content["adherence"]["sent"] == 3
    assert record.content["adherence"]["answered"] == 2
    lines = [line["zh"] for line in record.content["lines"]]
    assert "收缩压: 138 → 146 mmHg (正常高值 → 1级高血压)" in lines  # start: the last value before the period
    assert "随访3次，回复2次(依从率67%)" in lines

    assert revise_stage_summary(db, record, actor=ACTOR, conclusion="血压控制欠佳，建议复诊。") is record
    assert record.version == 1  # unsigned: edited in place

    with pytest.raises(SigningNotAllowedError):
        sign_stage_summary(db, record, signer=_signer(db, "front_desk"), actor=ACTOR)
    doctor = _signer(db)
    sign_stage_summary(db, record, signer=doctor, actor=ACTOR)
    assert record.signed_by == doctor.id
    assert record.signed_at == clock.now()
    with pytest.raises(ConflictError, match="already signed"):
        sign_stage_summary(db, record, signer=doctor, actor=ACTOR)

    clock.advance(days=1)
    second = revise_stage_summary(db, record, actor=ACTOR, conclusion="改为：建议一个月内复诊。")
    db.flush()
    assert second is not record
    assert second.version == 2
    assert not second.signed
    assert record.conclusion == "血压控制欠佳，建议复诊。"  # what was signed never changes
    assert second.content == record.content
    with pytest.raises(ConflictError, match="not the latest"):
        revise_stage_summary(db, record, actor=ACTOR, conclusion="x")
    assert latest_signed_summary(db, patient) is record
    sign_stage_summary(db, second, signer=doctor, actor=ACTOR)
    db.flush()
    assert latest_signed_summary(db, patient) is second
    assert [version.version for version in summary_versions(db, record.summary_id)] == [1, 2]
    raw = db.scalar(select(func.count()).select_from(StageSummaryRecord))
    assert raw == 2
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == patient.id,
                                                         AuditEntry.action.like("summary.%"))).all()
    assert sorted(actions) == ["summary.create", "summary.edit", "summary.edit", "summary.sign", "summary.sign"]


def test_a_period_ending_before_it_starts_is_refused(db: Session, make_patient: Callable[..., Patient]) -> None:
    with pytest.raises(ValidationFailedError, match="period_end"):
        create_stage_summary(db, make_patient(), period_start=date(2024, 1, 2), period_end=date(2024, 1, 1),
                             actor=ACTOR)


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("history.smoker", True, "'history.smoker' is not a profile field"),
    ("smoking_now", True, "'smoking_now' is not a profile field"),
    ("smoker", "yes", "'smoker' takes a bool value"),
    ("sleep_hours", True, "'sleep_hours' takes a number value"),
])
def test_a_profile_write_names_a_known_field_with_a_value_of_its_kind(
    db: Session, make_patient: Callable[..., Patient], name: str, value: object, reason: str
) -> None:
    patient = make_patient()
    with pytest.raises(ValidationFailedError) as refused:
        set_profile_field(db, patient, name, value, actor=ACTOR)
    assert reason in str(refused.value)
    assert patient.profile is None or not any(
        getattr(patient.profile, section) for section in ("history", "lifestyle"))


def test_a_profile_field_lands_in_its_section_under_its_own_name(
    db: Session, make_patient: Callable[..., Patient]
) -> None:
    patient = make_patient()
    set_profile_field(db, patient, "smoker", True, actor=ACTOR)
    set_profile_field(db, patient, "family_history_ascvd", False, actor=ACTOR)
    assert patient.profile.lifestyle == {"smoker": True}
    assert patient.profile.family_history == {"family_history_ascvd": False}
