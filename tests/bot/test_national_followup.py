"""The national follow-up forms end to end on the console: the visit's classification, its staff tasks
(priority and due time) and the next visit, written to the record; "twice in a row" read from the record
the previous visit left. The classification's edges are in tests/flows/test_national_followup.py."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from bot.followups import due_followups
from care.assessments import profile_facts
from care.followups import schedule_followup
from care.models import FlowResult, FollowUp, Patient, StaffTask
from care.observations import RED_FLAG_TASK
from tests.bot.scripted import at_shanghai
from tests.conftest import TEST_ACTOR

HTN = "national_hypertension_followup"
DM = "national_diabetes_followup"


def htn_answers(bp: str, side_effects: str = "1", complication: str = "2") -> list[str]:
    # symptoms none, BP, weight, heart rate, cigarettes, alcohol, exercise 0, salt, mood, compliance,
    # adherence regular, side effects, new complication.
    return ["9", bp, "70", "72", "0", "0", "0", "2", "1", "1", "1", side_effects, complication]


def visit(db, services, say_as, patient: Patient, answers: list[str]) -> list[str]:
    """Let the patient's due follow-up invite them, say the go-ahead and answer; return what was said."""
    db.flush()
    assert due_followups(db, services) == 1
    said: list[str] = []
    for text in ["好的", *answers]:
        said.extend(say_as(patient.card_no, text).texts)
    return said


def latest(db, patient: Patient, name: str) -> FlowResult:
    rows = db.scalars(select(FlowResult).where(FlowResult.patient_id == patient.id))
    return sorted((row for row in rows if row.name == name), key=lambda row: row.recorded_at)[-1]


def tasks_of(db, patient: Patient) -> list[StaffTask]:
    return sorted(db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)),
                  key=lambda task: (task.created_at, task.reason))


def scheduled(db, patient: Patient, flow_id: str) -> list[FollowUp]:
    query = select(FollowUp).where(FollowUp.patient_id == patient.id, FollowUp.flow_id == flow_id,
                                   FollowUp.status == "scheduled")
    return list(db.scalars(query))


def test_not_controlled_then_twice_in_a_row_then_controlled(db, make_patient, services, clock, say_as):
    patient = make_patient(gender="M", birth_date=datetime(1970, 3, 1).date())
    at_shanghai(clock, 10)
    schedule_followup(db, patient, flow_id=HTN, due_at=clock.now(), channel_order=["console"], actor=TEST_ACTOR)

    # Visit 1: 140/90 is above target, the first time: a clinician reviews the medicines; re-visit in 2 weeks.
    first_at = clock.now()
    said = visit(db, services, say_as, patient, htn_answers("140/90"))
    two_weeks = (first_at + timedelta(days=14)).date().isoformat()
    assert two_weeks in said[-1]
    result = latest(db, patient, "visit_class")
    assert (result.value, result.category, result.label) == ("not_controlled", "not_controlled", "控制不满意")
    assert latest(db, patient, "next_visit").value == two_weeks
    review = [task for task in tasks_of(db, patient) if task.reason == "national_medication_review"]
    assert [(task.kind, task.priority) for task in review] == [("flow_alert", "high")]
    assert review[0].details["due_at"] == (first_at + timedelta(hours=72)).isoformat()
    assert review[0].due_at == first_at + timedelta(hours=72)  # the task itself is due then
    assert review[0].details["results"]["bp"] == "140/90"
    phone = [task for task in tasks_of(db, patient) if task.reason == "national_htn_visit_by_phone"]
    assert phone[0].details["results"]["adherence"] == "regular"
    assert profile_facts(patient)["national_htn_class"] == "not_controlled"
    (next_visit,) = scheduled(db, patient, HTN)
    assert next_visit.due_at == first_at + timedelta(days=14)

    # Visit 2, two weeks later, from the follow-up visit 1 scheduled: 145/92 again: referral.
    clock.advance(days=14)
    second_at = clock.now()
    visit(db, services, say_as, patient, htn_answers("145/92"))
    result = latest(db, patient, "visit_class")
    assert (result.value, result.category) == ("not_controlled_twice", "not_controlled_twice")
    referral = [task for task in tasks_of(db, patient) if task.reason == "national_referral"]
    assert [(task.priority, task.details["due_at"]) for task in referral] == [
        ("high", (second_at + timedelta(hours=24)).isoformat())]
    assert [row.due_at for row in scheduled(db, patient, HTN)] == [second_at + timedelta(days=14)]

    # Visit 3: on target: the next regular visit in 3 months, no new clinician task.
    clock.advance(days=14)
    third_at = clock.now()
    before = len(tasks_of(db, patient))
    visit(db, services, say_as, patient, htn_answers("132/84"))
    assert latest(db, patient, "visit_class").category == "controlled"
    assert [task.reason for task in tasks_of(db, patient)[before:]] == ["national_htn_visit_by_phone"]
    assert [row.due_at for row in scheduled(db, patient, HTN)] == [third_at + timedelta(days=90)]
    assert profile_facts(patient)["national_htn_class"] == "controlled"


def test_an_intolerable_side_effect_is_a_referral_at_the_first_visit(db, make_patient, services, clock, say_as):
    patient = make_patient(gender="M", language="en")
    at_shanghai(clock, 10)
    schedule_followup(db, patient, flow_id=HTN, due_at=clock.now(), channel_order=["console"], actor=TEST_ACTOR)
    visit(db, services, say_as, patient, htn_answers("128/80", side_effects="3"))
    result = latest(db, patient, "visit_class")
    assert (result.category, result.label) == ("not_controlled_twice",
                                               "not controlled twice, or adverse reaction or complication: referral")
    assert {task.reason for task in tasks_of(db, patient)} == {"national_htn_visit_by_phone", "national_referral"}


def test_a_hypertension_urgent_referral_is_an_urgent_task_at_once(db, make_patient, services, clock, say_as):
    patient = make_patient(gender="M")
    at_shanghai(clock, 10)
    schedule_followup(db, patient, flow_id=HTN, due_at=clock.now(), channel_order=["console"], actor=TEST_ACTOR)
    start = clock.now()
    said = visit(db, services, say_as, patient, htn_answers("182/100"))
    assert any("120" in text for text in said)
    urgent = [task for task in tasks_of(db, patient) if task.priority == "urgent"]
    assert [(task.reason, task.details["due_at"]) for task in urgent] == [
        ("national_urgent_referral", start.isoformat())]
    assert latest(db, patient, "visit_class").label == "紧急转诊"
    assert [row.due_at for row in scheduled(db, patient, HTN)] == [start + timedelta(days=14)]


def test_a_diabetes_low_glucose_is_an_urgent_referral_and_the_records_own_red_flag(
        db, make_patient, services, clock, say_as):
    patient = make_patient()
    at_shanghai(clock, 10)
    schedule_followup(db, patient, flow_id=DM, due_at=clock.now(), channel_order=["console"], actor=TEST_ACTOR)
    start = clock.now()
    # symptoms none, FPG 2.8, BP, weight, heart rate, cigarettes, alcohol, exercise 0, salt, mood, compliance,
    # adherence, low-sugar reactions often, side effects none, no new complication.
    visit(db, services, say_as, patient, ["9", "2.8", "126/78", "58", "80", "0", "0", "0", "1", "1", "1", "1", "3",
                                          "1", "2"])
    assert latest(db, patient, "visit_class").category == "urgent_referral"
    kinds = {(task.kind, task.priority, task.reason) for task in tasks_of(db, patient)}
    assert ("flow_alert", "urgent", "national_urgent_referral") in kinds
    assert (RED_FLAG_TASK, "urgent", "hypoglycaemia_level2") in kinds
    assert ("flow_alert", "normal", "national_dm_visit_by_phone") in kinds
    assert [row.due_at for row in scheduled(db, patient, DM)] == [start + timedelta(days=14)]
    assert profile_facts(patient)["national_dm_class"] == "urgent_referral"


def test_a_diabetes_visit_not_controlled_twice_reads_the_previous_visit(db, make_patient, services, clock, say_as):
    patient = make_patient(language="en")
    at_shanghai(clock, 10)
    schedule_followup(db, patient, flow_id=DM, due_at=clock.now(), channel_order=["console"], actor=TEST_ACTOR)
    answers = ["9", "{fpg}", "126/78", "58", "80", "0", "0", "0", "1", "1", "1", "1", "1", "1", "2"]
    visit(db, services, say_as, patient, [answer.format(fpg="7.0") for answer in answers])
    assert latest(db, patient, "visit_class").category == "not_controlled"
    clock.advance(days=14)
    visit(db, services, say_as, patient, [answer.format(fpg="7.4") for answer in answers])
    assert latest(db, patient, "visit_class").category == "not_controlled_twice"
    reasons = [task.reason for task in tasks_of(db, patient) if task.reason != "national_dm_visit_by_phone"]
    assert reasons == ["national_medication_review", "national_referral"]
