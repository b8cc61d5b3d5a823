"""Tag rules: expressions over a patient's facts set and remove tags, one patient at a time or in bulk."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.jobs import tag_rule_jobs
from bot.models import ConversationMessage
from bot.tag_rules import rule_engine
from care.errors import ConflictError, ValidationFailedError
from care.imports.report_formats import FORMATS, ReportSource
from care.imports.reports import import_document
from care.models import (
    AuditEntry,
    FlowResult,
    Patient,
    PatientTag,
    RunStatus,
    TagReevaluation,
    TagRule,
    TagRuleRun,
    TagRuleVersion,
)
from care.observations import record_observation
from care.profiles import set_profile_field
from care.reevaluation import request_tag_reevaluation
from care.results import save_result
from care.tag_rules import (
    RULES_ACTOR,
    RuleEngine,
    add_rule,
    drain_reevaluations,
    edit_rule,
    preview,
    run_chunk,
    start_daily_runs,
)
from care.tags import TagOrigin, add_tag, pin_tag, staff_tag, tag_rows_of, tags_of
from careloop.runtime import Runtime
from careloop.worker import Worker
from flows.registry import FlowLibrary
from security.clock import FixedClock
from tests.care.imports.samples import csv_bytes
from tests.conftest import TEST_ACTOR

Maker = Callable[..., Patient]


@pytest.fixture(scope="module")
def rules() -> RuleEngine:
    return rule_engine(FlowLibrary.builtin())


def reading(db: Session, patient: Patient, code: str, value: float, unit: str, *, when: datetime,
            source: str = "report:csv") -> None:
    record_observation(db, patient, code=code, value=value, unit=unit, effective_at=when, source=source,
                       actor=TEST_ACTOR)


def finish_runs(db: Session, rules: RuleEngine, *, chunk: int = 200) -> int:
    """Run every bulk run to its end; return how many chunks it took."""
    chunks = 0
    while run_chunk(db, rules, chunk=chunk):
        chunks += 1
    db.flush()
    return chunks


def tagged(db: Session, patients: list[Patient], tag: str) -> list[bool]:
    return [tag in tags_of(db, patient) for patient in patients]


def message(db: Session, patient: Patient, when: datetime, direction: str = "in") -> None:
    db.add(ConversationMessage(patient_id=patient.id, channel="console", direction=direction, text="好的",
                               created_at=when))


NOW = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)


# -- the examples of the issue, each on synthetic patients ------------------------------------------------
def _bp(db: Session, make_patient: Maker) -> tuple[list[Patient], list[bool]]:
    high_sbp, high_dbp_only, normal, unknown = (make_patient() for _ in range(4))
    reading(db, high_sbp, "sbp", 150, "mmHg", when=NOW - DAY)
    reading(db, high_sbp, "dbp", 80, "mmHg", when=NOW - DAY)
    reading(db, high_dbp_only, "8462-4", 95, "mmHg", when=NOW - DAY)  # a LOINC-coded DBP, no SBP at all
    reading(db, normal, "sbp", 150, "mmHg", when=NOW - 30 * DAY)  # high once, normal since
    reading(db, normal, "sbp", 122, "mmHg", when=NOW - DAY)
    reading(db, normal, "dbp", 78, "mmHg", when=NOW - DAY)
    return [high_sbp, high_dbp_only, normal, unknown], [True, True, False, False]


def _bmi(db: Session, make_patient: Maker) -> tuple[list[Patient], list[bool]]:
    obese, lean, unknown = (make_patient() for _ in range(3))
    reading(db, obese, "bmi", 30.2, "kg/m2", when=NOW - DAY)
    reading(db, lean, "bmi", 22.5, "kg/m2", when=NOW - DAY)
    return [obese, lean, unknown], [True, False, False]


def _phq9(db: Session, make_patient: Maker) -> tuple[list[Patient], list[bool]]:
    positive, recovered, never = (make_patient() for _ in range(3))
    for patient, totals in ((positive, [4, 14]), (recovered, [14, 5])):
        for minutes, total in enumerate(totals):
            result = save_result(db, patient, flow_id="phq9", flow_version=1, name="phq9_total", value=total,
                                 category=None, actor=TEST_ACTOR)
            result.recorded_at = NOW - timedelta(days=10) + timedelta(minutes=minutes)  # the newer one counts
    return [positive, recovered, never], [True, False, False]


def _contact(db: Session, make_patient: Maker) -> tuple[list[Patient], list[bool]]:
    silent, recent, never, answered = (make_patient() for _ in range(4))
    message(db, silent, NOW - 120 * DAY, "out")
    message(db, silent, NOW - 100 * DAY)
    message(db, recent, NOW - 200 * DAY)
    message(db, recent, NOW - 10 * DAY, "out")  # we wrote to them 10 days ago
    message(db, answered, NOW - 150 * DAY)
    save_result(db, answered, flow_id="phq9", flow_version=1, name="phq9_q1", value=0, category=None,
                actor=TEST_ACTOR)  # an answer now
    return [silent, recent, never, answered], [True, False, False, False]


def _trend(db: Session, make_patient: Maker) -> tuple[list[Patient], list[bool]]:
    rising, flat, single = (make_patient() for _ in range(3))
    for years_ago, value in ((3, 122), (2, 131), (1, 139), (0, 146)):
        reading(db, rising, "sbp", value, "mmHg", when=NOW - timedelta(days=365 * years_ago + 1))
        reading(db, flat, "sbp", 128 + years_ago % 2, "mmHg", when=NOW - timedelta(days=365 * years_ago + 1))
    reading(db, flat, "sbp", 175, "mmHg", when=NOW - DAY, source="flow:home")  # a home reading bends no line
    reading(db, single, "sbp", 180, "mmHg", when=NOW - DAY)  # one value: no slope
    return [rising, flat, single], [True, False, False]


EXAMPLES: dict[str, Callable[[Session, Maker], tuple[list[Patient], list[bool]]]] = {
    "latest.sbp >= 140 or latest.dbp >= 90": _bp,
    "bmi >= 28": _bmi,
    "phq9.total >= 10": _phq9,
    "days_since_contact > 90": _contact,
    "trend.sbp.slope_per_year > 5": _trend,
}


@pytest.mark.parametrize("expression", list(EXAMPLES))
def test_each_example_tags_the_patients_it_holds_for(db, make_patient, rules, expression):
    patients, expected = EXAMPLES[expression](db, make_patient)
    rule, run = add_rule(db, rules, "example", tag="flagged", expression=expression, actor=TEST_ACTOR)
    db.flush()
    assert run.total == db.scalar(select(func.count()).select_from(Patient))
    finish_runs(db, rules)
    assert tagged(db, patients, "flagged") == expected
    for patient, holds in zip(patients, expected, strict=True):
        rows = tag_rows_of(db, patient.id)
        if holds:
            (row,) = rows
            assert TagOrigin.parse(row.source) == TagOrigin.rule(rule.id, 1)
            assert row.added_at == NOW
            assert not row.pinned
    assert db.get(TagRuleRun, run.id).status == RunStatus.DONE.value


# -- one patient, when a fact of theirs changes ----------------------------------------------------------
def test_an_import_tags_the_patient_after_the_worker_job_and_a_normal_value_removes_it(
        db, make_patient, rules, runtime: Runtime, clock: FixedClock):
    patient, other = make_patient(), make_patient()
    add_rule(db, rules, "高血压风险", tag="高血压", expression="latest.sbp >= 140 or latest.dbp >= 90",
             actor=TEST_ACTOR)
    finish_runs(db, rules)
    worker = Worker(runtime, tag_rule_jobs(FlowLibrary.builtin()))

    def import_csv(rows: list[list[Any]]) -> None:
        import_document(db, ReportSource.from_bytes("r.csv", csv_bytes(rows)), FORMATS["csv"], source_name="centre",
                        actor=TEST_ACTOR)
        db.flush()

    import_csv([[patient.card_no, "R1", "2026-11-20", "sbp", "152", "mmHg"],
                [other.card_no, "R2", "2026-11-20", "sbp", "118", "mmHg"]])
    assert tags_of(db, patient) == set()  # not before the worker runs
    assert worker.run_once()["tag_reevaluation"] == 2
    db.expire_all()
    assert tags_of(db, patient) == {"高血压"}
    assert tags_of(db, other) == set()
    assert db.scalar(select(func.count()).select_from(TagReevaluation)) == 0  # the marks are consumed

    clock.advance(days=7)
    import_csv([[patient.card_no, "R3", "2026-11-28", "sbp", "126", "mmHg"],
                [patient.card_no, "R3", "2026-11-28", "dbp", "80", "mmHg"]])
    assert worker.run_once()["tag_reevaluation"] == 1
    db.expire_all()
    assert tags_of(db, patient) == set()
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == patient.id,
                                                         AuditEntry.action.like("tag.%"))
                         .order_by(AuditEntry.id)).all()
    assert actions == ["tag.add", "tag.remove"]
    assert worker.run_once()["tag_reevaluation"] == 0


def test_a_reading_a_profile_fact_and_a_tag_mark_the_patient_when_their_transaction_commits(db, make_patient):
    reader, profiled, tagged_one = make_patient(), make_patient(), make_patient()
    db.commit()
    reading(db, reader, "sbp", 150, "mmHg", when=NOW)
    reading(db, reader, "dbp", 95, "mmHg", when=NOW)  # one mark however many facts change
    set_profile_field(db, profiled, "smoker", True, actor=TEST_ACTOR)
    add_tag(db, tagged_one, "vip", source="flow:intake", actor=TEST_ACTOR)
    assert db.scalar(select(func.count()).select_from(TagReevaluation)) == 0
    db.commit()
    marks = {mark.patient_id: mark.reason for mark in db.scalars(select(TagReevaluation))}
    assert marks == {reader.id: "reading", profiled.id: "profile", tagged_one.id: "tags"}


def test_the_queue_is_drained_in_chunks_and_a_newer_mark_stays(db, make_patient, rules, clock):
    patients = [make_patient() for _ in range(5)]
    for patient in patients:
        reading(db, patient, "bmi", 31, "kg/m2", when=NOW)
    add_rule(db, rules, "肥胖", tag="肥胖", expression="bmi >= 28", enabled=True, actor=TEST_ACTOR)
    db.flush()
    request_tag_reevaluation(db, [patient.id for patient in patients], reason="test")
    assert drain_reevaluations(db, rules, limit=2) == 2
    assert drain_reevaluations(db, rules, limit=2) == 2
    assert drain_reevaluations(db, rules, limit=2) == 1
    assert drain_reevaluations(db, rules, limit=2) == 0
    assert tagged(db, patients, "肥胖") == [True] * 5


def test_a_rule_never_removes_a_pinned_tag_nor_one_a_flow_or_staff_set(db, make_patient, rules, clock):
    by_staff, pinned, by_flow, by_rule = (make_patient() for _ in range(4))
    for patient in (pinned, by_flow, by_rule):
        reading(db, patient, "bmi", 31, "kg/m2", when=NOW - DAY)
    assert staff_tag(db, by_staff, "肥胖", staff_id="u-1", actor=TEST_ACTOR)
    assert add_tag(db, by_flow, "肥胖", source="flow:intake", actor=TEST_ACTOR)
    add_rule(db, rules, "肥胖", tag="肥胖", expression="bmi >= 28", actor=TEST_ACTOR)
    finish_runs(db, rules)
    assert tagged(db, [by_staff, pinned, by_flow, by_rule], "肥胖") == [True] * 4
    assert pin_tag(db, pinned, "肥胖", pinned=True, actor=TEST_ACTOR)

    for patient in (pinned, by_flow, by_rule):
        reading(db, patient, "bmi", 24, "kg/m2", when=NOW)
    db.flush()
    request_tag_reevaluation(db, [p.id for p in (by_staff, pinned, by_flow, by_rule)], reason="test")
    assert drain_reevaluations(db, rules) == 4
    assert tagged(db, [by_staff, pinned, by_flow, by_rule], "肥胖") == [True, True, True, False]
    (row,) = tag_rows_of(db, by_staff.id)
    assert (row.pinned, TagOrigin.parse(row.source)) == (True, TagOrigin.staff("u-1"))


# -- rules: versions, several rules of one tag, disabling -------------------------------------------------
def test_an_edit_is_a_new_version_the_tags_it_keeps_name_it_and_disabling_removes_what_it_set(
        db, make_patient, rules):
    high, middling = make_patient(), make_patient()
    reading(db, high, "sbp", 165, "mmHg", when=NOW)
    reading(db, middling, "sbp", 145, "mmHg", when=NOW)
    rule, _ = add_rule(db, rules, "bp", tag="高血压", expression="latest.sbp >= 140", actor=TEST_ACTOR)
    finish_runs(db, rules)
    assert tagged(db, [high, middling], "高血压") == [True, True]

    rule, run = edit_rule(db, rules, "BP", expression="latest.sbp >= 160", actor=TEST_ACTOR)
    assert (rule.version, run.rule_version) == (2, 2)
    finish_runs(db, rules)
    assert tagged(db, [high, middling], "高血压") == [True, False]
    assert TagOrigin.parse(tag_rows_of(db, high.id)[0].source) == TagOrigin.rule(rule.id, 2)
    versions = db.scalars(select(TagRuleVersion.expression).where(TagRuleVersion.rule_id == rule.id)
                          .order_by(TagRuleVersion.version)).all()
    assert versions == ["latest.sbp >= 140", "latest.sbp >= 160"]

    assert edit_rule(db, rules, "bp", expression="latest.sbp >= 160", actor=TEST_ACTOR)[1] is None  # no change
    edit_rule(db, rules, "bp", enabled=False, actor=TEST_ACTOR)
    finish_runs(db, rules)
    assert tagged(db, [high, middling], "高血压") == [False, False]


def test_a_tag_stays_while_any_of_its_rules_holds(db, make_patient, rules):
    patient = make_patient()
    reading(db, patient, "sbp", 150, "mmHg", when=NOW - DAY)
    reading(db, patient, "dbp", 95, "mmHg", when=NOW - DAY)
    by_sbp, _ = add_rule(db, rules, "sbp", tag="高血压", expression="latest.sbp >= 140", actor=TEST_ACTOR)
    by_dbp, _ = add_rule(db, rules, "dbp", tag="高血压", expression="latest.dbp >= 90", actor=TEST_ACTOR)
    finish_runs(db, rules)
    assert TagOrigin.parse(tag_rows_of(db, patient.id)[0].source).rule_id() in {by_sbp.id, by_dbp.id}

    reading(db, patient, "sbp", 125, "mmHg", when=NOW)
    db.flush()
    request_tag_reevaluation(db, [patient.id], reason="test")
    drain_reevaluations(db, rules)
    (row,) = tag_rows_of(db, patient.id)
    assert TagOrigin.parse(row.source) == TagOrigin.rule(by_dbp.id, 1)  # held now by the DBP rule


def test_rule_names_are_unique_whatever_the_case(db, rules):
    add_rule(db, rules, "Obesity", tag="肥胖", expression="bmi >= 28", actor=TEST_ACTOR)
    with pytest.raises(ConflictError, match="already exists"):
        add_rule(db, rules, "obesity", tag="肥胖", expression="bmi >= 30", actor=TEST_ACTOR)


# -- bulk runs -------------------------------------------------------------------------------------------
def test_a_bulk_run_interrupted_midway_resumes_and_evaluates_every_patient_exactly_once(db, make_patient, rules):
    patients = [make_patient() for _ in range(9)]
    for patient in patients:
        reading(db, patient, "bmi", 29, "kg/m2", when=NOW)
    _, run = add_rule(db, rules, "肥胖", tag="肥胖", expression="bmi >= 28", actor=TEST_ACTOR)
    db.flush()
    assert run_chunk(db, rules, chunk=2) == 2
    assert run_chunk(db, rules, chunk=2) == 2
    db.flush()
    assert (run.done, run.total) == (4, db.scalar(select(func.count()).select_from(Patient)))
    last = run.last_patient_id

    class KilledError(Exception):
        pass

    def killed_before_commit() -> None:
        with db.begin_nested():  # the worker dies after its chunk's work, before the chunk's commit
            assert run_chunk(db, rules, chunk=2) == 2
            db.flush()
            raise KilledError

    with pytest.raises(KilledError):
        killed_before_commit()
    db.expire_all()
    assert (run.done, run.last_patient_id, run.status) == (4, last, RunStatus.RUNNING.value)

    left = run.total - 4
    assert finish_runs(db, rules, chunk=2) == (left + 1) // 2 + 1  # on from the last patient done, then the end
    assert (run.status, run.done, run.tagged) == (RunStatus.DONE.value, run.total, run.total)
    added = Counter(db.scalars(select(AuditEntry.patient_id).where(AuditEntry.action == "tag.add",
                                                                   AuditEntry.actor_id == RULES_ACTOR.id)))
    assert set(added.values()) == {1}
    assert {patient.id for patient in patients} <= set(added)
    assert len(added) == run.total
    done = db.scalars(select(AuditEntry).where(AuditEntry.action == "tag_rule.run_done")).one()
    assert '"tagged":' in done.details


def test_patients_are_taken_in_id_order_and_a_new_edit_supersedes_a_running_run(db, make_patient, rules):
    for _ in range(4):
        make_patient()
    _, first = add_rule(db, rules, "bp", tag="高血压", expression="latest.sbp >= 140", actor=TEST_ACTOR)
    db.flush()
    run_chunk(db, rules, chunk=3)
    ids = db.scalars(select(Patient.id).order_by(Patient.id)).all()
    assert first.last_patient_id == ids[2]
    _, second = edit_rule(db, rules, "bp", expression="latest.sbp >= 150", actor=TEST_ACTOR)
    db.flush()
    assert first.status == RunStatus.SUPERSEDED.value
    finish_runs(db, rules, chunk=3)
    assert (second.status, second.done) == (RunStatus.DONE.value, len(ids))


def test_rules_over_the_calendar_run_again_once_a_day(db, make_patient, rules, clock):
    patient = make_patient()
    message(db, patient, NOW - 85 * DAY)
    add_rule(db, rules, "失访", tag="失访", expression="days_since_answer > 90", actor=TEST_ACTOR)
    add_rule(db, rules, "bp", tag="高血压", expression="latest.sbp >= 140", actor=TEST_ACTOR)
    finish_runs(db, rules)
    assert tags_of(db, patient) == set()
    assert start_daily_runs(db, rules) == 0  # its first run started today
    clock.advance(days=6)
    assert start_daily_runs(db, rules) == 1  # only the rule that reads the calendar
    assert start_daily_runs(db, rules) == 0
    finish_runs(db, rules)
    assert tags_of(db, patient) == {"失访"}


# -- preview and validation ------------------------------------------------------------------------------
def counts(db: Session) -> dict[str, int]:
    db.flush()
    return {model.__name__: int(db.scalar(select(func.count()).select_from(model)) or 0)
            for model in (PatientTag, TagRule, TagRuleRun, TagReevaluation, AuditEntry, FlowResult)}


def test_preview_counts_what_a_rule_would_do_and_writes_nothing(db, make_patient, rules):
    obese, lean, was_obese, pinned_lean, staff_lean = (make_patient() for _ in range(5))
    for patient in (obese, was_obese, pinned_lean):
        reading(db, patient, "bmi", 30, "kg/m2", when=NOW - DAY)
    reading(db, lean, "bmi", 22, "kg/m2", when=NOW - DAY)
    add_rule(db, rules, "肥胖", tag="肥胖", expression="bmi >= 28", actor=TEST_ACTOR)
    finish_runs(db, rules)
    pin_tag(db, pinned_lean, "肥胖", pinned=True, actor=TEST_ACTOR)
    staff_tag(db, staff_lean, "肥胖", staff_id="u-2", actor=TEST_ACTOR)
    test_patient = make_patient()
    test_patient.is_test = True
    reading(db, test_patient, "bmi", 40, "kg/m2", when=NOW)
    before = counts(db)

    found = preview(db, rules, tag="肥胖", expression="bmi >= 32 or latest.bmi < 25")
    assert (found.would_tag, found.would_untag, found.holding) == (1, 2, 1)  # lean; obese and was_obese
    assert found.patients == db.scalar(select(func.count()).select_from(Patient)) - 1
    assert counts(db) == before
    assert not db.new
    assert not db.dirty
    assert not db.deleted


@pytest.mark.parametrize(("expression", "named"), [
    ("latest.sbpp >= 140", "'latest.sbpp'"),
    ("bmii >= 28", "'bmii'"),
    ("phq9.totl >= 10", "'phq9.totl'"),
    ("trend.sbp.slope > 5", "'trend.sbp.slope'"),
    ("profile.smoking == True", "'profile.smoking'"),
    ("days_since_contact > 90 and risk.china_parr == 'high'", "'risk.china_parr'"),
    ("latest.sbp >= 140 or weight_loss > 3 or foo", "'foo', 'weight_loss'"),
    ("latest.sbp >=", "syntax error"),
    ("__import__('os').system('x')", "is not allowed"),
    ("eval('1')", "unknown function 'eval'"),
    ("latest.__class__", "not allowed"),
    ("", "empty"),
])
def test_a_bad_expression_is_refused_naming_what_is_wrong_and_nothing_is_stored(db, rules, expression, named):
    with pytest.raises(ValidationFailedError) as refused:
        add_rule(db, rules, "bad", tag="t", expression=expression, actor=TEST_ACTOR)
    (problem,) = refused.value.problems
    assert problem.field == "expression"
    assert named in problem.reason
    assert db.scalar(select(func.count()).select_from(TagRule)) == 0


def test_every_fact_a_rule_can_read_is_read(db, make_patient, rules):
    expression = ("age >= 60 and sex == 'male' and language == 'zh' and profile.smoker and latest.fpg > 7 "
                  "and hba1c > 6.5 and trend.fpg.direction == 'rising' and trend.fpg.count >= 2 "
                  "and gad7.total >= 10 and category.phq9_total == 'moderate' and risk.china_par != 'high' "
                  "and 'diabetes' in tags and days_since_answer < 30 and days_since_contact < 30")
    patient, younger = (make_patient(gender="M", birth_date=date(1950, 1, 1)),
                        make_patient(gender="M", birth_date=date(1990, 1, 1)))
    for someone in (patient, younger):
        set_profile_field(db, someone, "smoker", True, actor=TEST_ACTOR)
        for years_ago, value in ((1, 7.2), (0, 8.1)):
            reading(db, someone, "fpg", value, "mmol/L", when=NOW - timedelta(days=365 * years_ago + 1))
        reading(db, someone, "hba1c", 7.1, "%", when=NOW - DAY)
        save_result(db, someone, flow_id="gad7", flow_version=1, name="gad7_total", value=12, category="moderate",
                    actor=TEST_ACTOR)
        save_result(db, someone, flow_id="phq9", flow_version=1, name="phq9_total", value=12, category="moderate",
                    actor=TEST_ACTOR)
        add_tag(db, someone, "diabetes", source="flow:intake", actor=TEST_ACTOR)
    _, run = add_rule(db, rules, "all", tag="all", expression=expression, actor=TEST_ACTOR)
    finish_runs(db, rules)
    assert (run.failed, tags_of(db, patient) - {"diabetes"}, tags_of(db, younger)) == (0, {"all"}, {"diabetes"})


def test_a_rule_reads_nothing_it_does_not_name(db, make_patient, rules, statements):
    patient = make_patient()
    reading(db, patient, "bmi", 30, "kg/m2", when=NOW)
    add_rule(db, rules, "肥胖", tag="肥胖", expression="bmi >= 28", actor=TEST_ACTOR)
    db.flush()
    statements.clear()
    finish_runs(db, rules)
    read = " ".join(statements)
    for table in ("flow_results", "risk_assessments", "conversation_messages", "health_profiles"):
        assert f"FROM {table}" not in read
