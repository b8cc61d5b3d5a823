"""Enrolments in interventions: started by hand or by a tag (once), progress from the record's observations, the end
drafts a stage summary with the goals."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.jobs import tag_rule_jobs
from bot.tag_rules import rule_engine
from care import interventions, plans
from care.errors import ConflictError, NotFoundError, ValidationFailedError
from care.imports.report_formats import FORMATS, ReportSource
from care.imports.reports import import_document
from care.models import (
    FollowUp,
    InterventionEnrolment,
    Patient,
    PlanEnrolment,
    StageSummaryRecord,
)
from care.observations import record_observation
from care.stage_summaries import followup_adherence
from care.tag_rules import add_rule, run_chunk
from care.tags import add_tag, remove_tag
from careloop.runtime import Runtime
from careloop.worker import Worker
from flows.registry import FlowLibrary
from security.audit import AuditEntry
from security.clock import FixedClock
from tests.care.imports.samples import csv_bytes
from tests.care.interventions.programs import FLOWS, program_text
from tests.conftest import TEST_ACTOR


def publish(db: Session, text: str) -> None:
    interventions.add_program(db, text, flow_ids=FLOWS, actor=TEST_ACTOR)
    db.flush()


def enrolments(db: Session, patient: Patient) -> list[InterventionEnrolment]:
    return list(db.scalars(select(InterventionEnrolment).where(InterventionEnrolment.patient_id == patient.id)
                           .order_by(InterventionEnrolment.started_at)))


def actions(db: Session, patient: Patient) -> list[str]:
    db.flush()
    return list(db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == patient.id,
                                                           AuditEntry.action.like("intervention.%"))
                           .order_by(AuditEntry.occurred_at)))


def reading(db: Session, patient: Patient, code: str, value: float, unit: str, when: datetime) -> None:
    record_observation(db, patient, code=code, value=value, unit=unit, effective_at=when, source="home",
                       actor=TEST_ACTOR)


def test_a_start_by_hand_puts_the_patient_in_the_program_and_its_plan(db, make_patient, clock):
    publish(db, program_text())
    patient = make_patient()
    enrolment = interventions.start(db, patient, "bp_care", actor=TEST_ACTOR)
    assert enrolment is not None
    assert (enrolment.status, enrolment.source, enrolment.ends_at) == ("active", "manual",
                                                                      clock.now() + timedelta(days=90))
    assert interventions.start(db, patient, "bp_care", actor=TEST_ACTOR) is None  # already in it
    plan_enrolment = db.get(PlanEnrolment, enrolment.plan_enrolment_id)
    assert (plan_enrolment.plan_key, plan_enrolment.source) == ("iv_bp_care", "intervention:bp_care")
    rows = db.scalars(select(FollowUp).where(FollowUp.enrolment_id == plan_enrolment.id)
                      .order_by(FollowUp.step_index)).all()
    assert [(row.flow_id, row.content_key) for row in rows] == [
        ("home_monitoring", None), ("content:diet_salt", "diet_salt"), ("content:exercise_walking", "exercise_walking"),
        ("content:sleep_routine", "sleep_routine")]
    assert actions(db, patient) == ["intervention.start"]


def test_starting_an_unknown_program_says_how_to_add_one(db, make_patient):
    with pytest.raises(NotFoundError, match=r"no intervention program 'nothing' \(careloop interventions programs\)"):
        interventions.start(db, make_patient(), "nothing", actor=TEST_ACTOR)


def test_a_tag_starts_the_program_once_and_never_again_after_it_ended(db, make_patient, clock):
    publish(db, program_text(tag="高血压"))
    patient = make_patient()
    add_tag(db, patient, "高血压", source="flow:intake", actor=TEST_ACTOR)
    add_tag(db, patient, "高血压", source="flow:intake", actor=TEST_ACTOR)  # already set: no transition
    db.flush()
    [enrolment] = enrolments(db, patient)
    assert enrolment.source == "tag"
    remove_tag(db, patient, "高血压", actor=TEST_ACTOR)  # the program runs its course all the same
    add_tag(db, patient, "高血压", source="flow:intake", actor=TEST_ACTOR)
    db.flush()
    assert [row.status for row in enrolments(db, patient)] == ["active"]
    interventions.end(db, enrolment, actor=TEST_ACTOR, reason="moved away")
    remove_tag(db, patient, "高血压", actor=TEST_ACTOR)
    add_tag(db, patient, "高血压", source="flow:intake", actor=TEST_ACTOR)
    db.flush()
    assert [row.status for row in enrolments(db, patient)] == ["ended"]  # once by tag
    clock.advance(days=1)
    again = interventions.start(db, patient, "bp_care", actor=TEST_ACTOR)  # staff may start it again
    assert again is not None
    assert [row.status for row in enrolments(db, patient)] == ["ended", "active"]


def test_a_tag_set_by_a_rule_on_an_imported_report_starts_the_program_once(db, make_patient, runtime: Runtime,
                                                                          clock: FixedClock):
    publish(db, program_text(tag="高血压"))
    engine = rule_engine(FlowLibrary.builtin())
    add_rule(db, engine, "高血压风险", tag="高血压", expression="latest.sbp >= 140", actor=TEST_ACTOR)
    while run_chunk(db, engine):
        pass
    patient = make_patient()
    worker = Worker(runtime, tag_rule_jobs(FlowLibrary.builtin()))

    def import_csv(rows: list[list[Any]]) -> None:
        import_document(db, ReportSource.from_bytes("r.csv", csv_bytes(rows)), FORMATS["csv"], source_name="centre",
                        actor=TEST_ACTOR)
        db.flush()

    import_csv([[patient.card_no, "R1", "2026-11-20", "sbp", "152", "mmHg"]])
    worker.run_once()
    clock.advance(days=1)
    import_csv([[patient.card_no, "R2", "2026-11-21", "sbp", "160", "mmHg"]])  # still high: no new transition
    worker.run_once()
    db.expire_all()
    assert [(row.status, row.source) for row in enrolments(db, patient)] == [("active", "tag")]


def test_progress_is_computed_from_the_observations_against_each_goal(db, make_patient, clock):
    publish(db, program_text())
    patient = make_patient()
    start = clock.now()
    reading(db, patient, "8480-6", 150, "mmHg", start - timedelta(days=10))  # the baseline, before the start
    reading(db, patient, "29463-7", 80, "kg", start - timedelta(days=3))
    enrolment = interventions.start(db, patient, "bp_care", actor=TEST_ACTOR)
    clock.advance(days=20)
    reading(db, patient, "8480-6", 140, "mmHg", clock.now())
    _, figures = interventions.progress(db, enrolment, actor=TEST_ACTOR)
    sbp, weight = figures.goals
    assert (sbp.baseline.value, sbp.latest.value, sbp.state) == (150, 140, "not_met")
    assert sbp.percent == pytest.approx(50.0)  # 10 of the 20 mmHg from 150 to the target 130
    assert (weight.baseline.value, weight.latest, weight.state, weight.percent) == (80, None, "no_data", None)
    assert figures.percent == pytest.approx(50.0)

    clock.advance(days=40)
    reading(db, patient, "8480-6", 128, "mmHg", clock.now())
    reading(db, patient, "29463-7", 77, "kg", clock.now())
    _, figures = interventions.progress(db, enrolment, actor=TEST_ACTOR)
    sbp, weight = figures.goals
    assert (sbp.latest.value, sbp.state, sbp.percent) == (128, "met", 100.0)
    assert weight.target == pytest.approx(76.0)  # 5 % below the baseline of 80 kg
    assert (weight.state, weight.percent) == ("not_met", pytest.approx(75.0))
    assert figures.percent == pytest.approx(87.5)
    assert figures.goals_met == 1
    assert (figures.day, figures.check_ins_sent, figures.answer_rate) == (60, 0, None)
    assert "目标 收缩压 < 130 mmHg（90天内）: 已达成（150 → 128 mmHg）" in figures.lines("zh")
    assert any(line.startswith("Goal Weight -5% from the baseline (within 90 days): not yet met (80.0 → 77.0 kg, "
                               "target 76.0, 75% of the way)") for line in figures.lines("en"))
    db.flush()
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "patient.view", AuditEntry.patient_id == patient.id)) == 2


def test_a_reading_after_the_goal_window_does_not_count(db, make_patient, clock):
    publish(db, program_text(goals="  - {id: sbp_soon, indicator: sbp, target: {below: 130}, within_days: 30}\n"))
    patient = make_patient()
    reading(db, patient, "8480-6", 150, "mmHg", clock.now() - timedelta(days=1))
    enrolment = interventions.start(db, patient, "bp_care", actor=TEST_ACTOR)
    clock.advance(days=45)
    reading(db, patient, "8480-6", 120, "mmHg", clock.now())
    _, figures = interventions.progress(db, enrolment, actor=TEST_ACTOR)
    [goal] = figures.goals
    assert (goal.latest, goal.state) == (None, "no_data")


def test_ending_by_hand_cancels_what_was_not_sent_and_drafts_a_summary_in_the_patients_language(
        db, make_patient, clock):
    publish(db, program_text())
    patient = make_patient(language="en")
    reading(db, patient, "8480-6", 150, "mmHg", clock.now() - timedelta(days=2))
    enrolment = interventions.start(db, patient, "bp_care", actor=TEST_ACTOR)
    clock.advance(days=30)
    reading(db, patient, "8480-6", 126, "mmHg", clock.now())
    with pytest.raises(ValidationFailedError, match="reason: is longer than 500 characters"):
        interventions.end(db, enrolment, actor=TEST_ACTOR, reason="x" * 501)
    assert enrolment.status == "active"  # nothing changed
    summary = interventions.end(db, enrolment, actor=TEST_ACTOR, reason="patient asked to stop")
    db.flush()
    assert (enrolment.status, enrolment.outcome, enrolment.end_reason) == ("ended", "ended", "patient asked to stop")
    assert enrolment.summary_id == summary.summary_id
    statuses = db.scalars(select(FollowUp.status).where(FollowUp.enrolment_id == enrolment.plan_enrolment_id))
    assert set(statuses) == {"cancelled"}
    assert plans.enrolments_of(db, patient.id) == []
    record = db.scalars(select(StageSummaryRecord).where(StageSummaryRecord.summary_id == summary.summary_id)).one()
    assert (record.period_start.isoformat(), record.period_end.isoformat()) == ("2026-11-29", "2026-12-29")
    goals = {goal["id"]: goal["status"] for goal in record.content["goals"]}
    assert goals == {"sbp_below_130": "met"}  # the weight goal has no baseline, hence no target yet
    assert record.conclusion.splitlines()[0] == ("Blood-pressure care (2026-11-29 to 2026-12-29) ended early: "
                                                 "1 of 2 goal(s) met.")
    assert record.signed_at is None
    with pytest.raises(ConflictError, match="has ended already"):
        interventions.end(db, enrolment, actor=TEST_ACTOR)
    assert actions(db, patient) == ["intervention.start", "intervention.end"]


def test_ending_for_a_patient_in_several_programs_needs_the_program(db, make_patient):
    publish(db, program_text())
    publish(db, program_text("other_care"))
    patient = make_patient()
    with pytest.raises(NotFoundError, match="the patient is in no intervention"):
        interventions.end_for_patient(db, patient, program_key=None, actor=TEST_ACTOR, reason="r")
    interventions.start(db, patient, "bp_care", actor=TEST_ACTOR)
    interventions.start(db, patient, "other_care", actor=TEST_ACTOR)
    with pytest.raises(ConflictError, match=r"several interventions \(bp_care, other_care\): name one with --program"):
        interventions.end_for_patient(db, patient, program_key=None, actor=TEST_ACTOR, reason="r")
    enrolment, _ = interventions.end_for_patient(db, patient, program_key="other_care", actor=TEST_ACTOR, reason="r")
    assert enrolment.program_key == "other_care"


def test_the_duration_running_out_ends_the_enrolment_with_its_summary(db, make_patient, clock):
    publish(db, program_text(days=30, education='  - {day: 1, message: diet_salt}\n'))
    patient = make_patient()
    enrolment = interventions.start(db, patient, "bp_care", actor=TEST_ACTOR)
    clock.advance(days=29)
    assert interventions.end_due(db) == 0
    clock.advance(days=1, hours=1)
    assert interventions.end_due(db) == 1
    assert interventions.end_due(db) == 0
    assert (enrolment.status, enrolment.outcome, enrolment.ended_at) == ("ended", "completed", enrolment.ends_at)
    record = db.scalars(select(StageSummaryRecord).where(StageSummaryRecord.patient_id == patient.id)).one()
    assert record.content["interventions_done"][0]["title"] == {"zh": "血压管理", "en": "Blood-pressure care"}
    assert record.conclusion.startswith("血压管理（2026-11-29至2026-12-29）已完成：2个目标中达成0个。")


def test_education_messages_are_not_counted_as_followups_in_a_stage_summary(db, make_patient, clock):
    publish(db, program_text())
    patient = make_patient()
    interventions.start(db, patient, "bp_care", actor=TEST_ACTOR)
    for row in db.scalars(select(FollowUp).where(FollowUp.patient_id == patient.id)):
        row.status = "completed"
    db.flush()
    start = clock.now().date()
    assert followup_adherence(db, patient, start, start + timedelta(days=90)) == (1, 1)  # the check-in only


def test_the_programs_plan_is_started_and_ended_through_the_program_only(db, make_patient):
    publish(db, program_text())
    patient = make_patient()
    with pytest.raises(ConflictError, match="plan 'iv_bp_care' carries out the intervention program 'bp_care'"):
        plans.enrol(db, patient, "iv_bp_care", actor=TEST_ACTOR)
    interventions.start(db, patient, "bp_care", actor=TEST_ACTOR)
    with pytest.raises(ConflictError, match="use careloop interventions start"):
        plans.leave(db, patient, "iv_bp_care", actor=TEST_ACTOR)
    with pytest.raises(ConflictError, match="carries out the intervention program"):
        plans.add_plan(db, "id: iv_mine\nversion: 1\ntitle: {zh: 我的, en: Mine}\nsteps:\n"
                       "  - {flow: home_monitoring, when: {offset: {days: 1}}}\n", flow_ids=FLOWS, actor=TEST_ACTOR)
    assert [row.status for row in plans.enrolments_of(db, patient.id)] == ["active"]


def test_the_worker_leaves_the_enrolment_of_an_erased_patient_alone(db, make_patient, clock):
    publish(db, program_text(days=30, education='  - {day: 1, message: diet_salt}\n'))
    patient = make_patient()
    enrolment = interventions.start(db, patient, "bp_care", actor=TEST_ACTOR)
    patient.status = "erased"
    db.flush()
    clock.advance(days=31)
    assert interventions.end_due(db) == 0
    assert enrolment.status == "active"
