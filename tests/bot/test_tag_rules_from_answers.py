"""A conversation's answers re-run the patient's tag rules: the turn that ends a questionnaire marks them."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from bot.conversations import lock_patient
from bot.jobs import tag_rule_jobs
from bot.tag_rules import rule_engine
from care.models import AuditEntry, Patient, TagReevaluation
from care.observations import record_observation
from care.patients import EnrolmentRequest, enroll
from care.reevaluation import request_tag_reevaluation
from care.tag_rules import add_rule, drain_reevaluations, run_chunk
from care.tags import tags_of
from careloop.worker import Worker
from flows.registry import FlowLibrary
from tests.bot.test_conversations import PHQ9_ANSWERS
from tests.conftest import PG_ENV, TEST_ACTOR

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


def marks(db) -> dict:
    return {mark.patient_id: mark.reason for mark in db.scalars(select(TagReevaluation))}


def test_a_finished_phq9_marks_the_patient_and_the_worker_tags_them(db, make_patient, say_as, services, runtime):
    patient = make_patient()
    engine = rule_engine(services.library)
    add_rule(db, engine, "抑郁风险", tag="抑郁风险", expression="phq9.total >= 10", actor=TEST_ACTOR)
    while run_chunk(db, engine):
        pass
    db.commit()

    say_as(patient.card_no, "问卷")
    say_as(patient.card_no, PHQ9_ANSWERS[0])
    db.commit()
    assert marks(db) == {}  # an answer half-way through changes no fact a rule reads
    for answer in [*PHQ9_ANSWERS[1:], "2"]:
        say_as(patient.card_no, answer)
    db.commit()
    assert marks(db) == {patient.id: "answer"}

    assert Worker(runtime, tag_rule_jobs(services.library)).run_once()["tag_reevaluation"] == 1
    db.expire_all()
    assert "抑郁风险" in tags_of(db, patient)
    assert marks(db) == {}


@pytest.mark.skipif(not os.environ.get(PG_ENV), reason="several workers run at once on PostgreSQL only")
def test_two_workers_drain_the_queue_without_sharing_a_patient_and_skip_one_in_a_turn(live_runtime):
    engine = rule_engine(FlowLibrary.builtin())
    with live_runtime.db.unit_of_work() as session:
        patients = [enroll(session, EnrolmentRequest(card_no=f"W{n:04d}", name="测试", gender="M",
                                                     birth_date=date(1960, 1, 1), phone=f"+86139{n:08d}"),
                           actor=TEST_ACTOR).patient for n in range(6)]
        session.flush()
        for patient in patients:
            record_observation(session, patient, code="bmi", value=31, unit="kg/m2", effective_at=NOW,
                               source="report:csv", actor=TEST_ACTOR)
        add_rule(session, engine, "肥胖", tag="肥胖", expression="bmi >= 28", actor=TEST_ACTOR)
        ids = [patient.id for patient in patients]
    live_runtime.clock.advance(minutes=1)
    with live_runtime.db.unit_of_work() as session:  # the patient in a turn is marked last
        request_tag_reevaluation(session, [ids[5]], reason="answer")
    in_a_turn = live_runtime.db.sessions()
    first = live_runtime.db.sessions()
    try:
        turn_patient = in_a_turn.get(Patient, ids[5])
        assert turn_patient is not None
        assert lock_patient(in_a_turn, turn_patient)  # a conversation's turn holds this patient
        assert drain_reevaluations(first, engine, limit=3) == 3  # left open: its marks and patients are claimed
        with live_runtime.db.unit_of_work() as second:
            assert drain_reevaluations(second, engine) == 2  # the others, never the first's nor the turn's
        first.commit()
        in_a_turn.commit()
    finally:
        first.close()
        in_a_turn.close()
    with live_runtime.db.unit_of_work() as session:
        assert {mark.patient_id for mark in session.scalars(select(TagReevaluation))} == {ids[5]}
        assert drain_reevaluations(session, engine) == 1
    with live_runtime.db.unit_of_work() as session:
        added = Counter(session.scalars(select(AuditEntry.patient_id).where(AuditEntry.action == "tag.add")))
        assert added == dict.fromkeys(ids, 1)
