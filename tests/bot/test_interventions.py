"""An intervention through the follow-up worker: 90 simulated days of check-ins and education messages (time injected,
never slept), each sent once, answered check-ins recorded, the end drafting the summary; quiet hours and consent;
two workers on PostgreSQL ending enrolments at once."""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.followups import due_followups
from bot.models import OutboxMessage
from care import interventions
from care.interventions.content import content_library
from care.models import FollowUp, InterventionEnrolment, Patient, StageSummaryRecord
from care.patients import EnrolmentRequest, enroll_many
from security.clock import FixedClock
from tests.care.interventions.programs import FLOWS, program_text
from tests.conftest import PG_ENV, TEST_ACTOR

SHANGHAI = ZoneInfo("Asia/Shanghai")


def outbox(db: Session, patient: Patient) -> list[OutboxMessage]:
    return list(db.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)
                           .order_by(OutboxMessage.created_at)))


def rows(db: Session, enrolment: InterventionEnrolment) -> list[FollowUp]:
    return list(db.scalars(select(FollowUp).where(FollowUp.enrolment_id == enrolment.plan_enrolment_id)
                           .order_by(FollowUp.due_at)))


def test_ninety_days_send_every_message_and_check_in_once_and_the_end_drafts_the_summary(
        db, make_patient, services, clock, say_as):
    interventions.add_program(db, program_text(), flow_ids=FLOWS, actor=TEST_ACTOR)
    patient = make_patient()
    start = clock.now()
    enrolment = interventions.start(db, patient, "bp_care", actor=TEST_ACTOR)
    db.flush()
    answered = 0
    readings = iter(["血压146/92", "血压138/86", "血压129/80"])
    moment = start
    while moment <= start + timedelta(days=100):
        clock.set(moment)
        interventions.end_due(db)
        due_followups(db, services)
        db.flush()
        invited = [row for row in rows(db, enrolment) if row.status == "invited"]
        # The patient answers the first, third and fifth check-in, an hour after it came.
        for row in invited:
            number = row.occurrence or 0
            if number in (1, 3, 5) and moment - row.invited_at >= timedelta(hours=1):
                say_as(patient.card_no, "1")
                say_as(patient.card_no, next(readings))
                answered += 1
        moment += timedelta(minutes=30)  # the worker ticks every half hour

    sent = outbox(db, patient)
    keys = Counter(message.idempotency_key for message in sent)
    assert max(keys.values()) == 1  # nothing twice
    education = [message for message in sent if message.purpose == "education"]
    library = content_library()
    assert [message.payload["text"] for message in education] == [
        library.items[item].text_zh for item in ("diet_salt", "exercise_walking", "sleep_routine")]
    assert [message.created_at.astimezone(SHANGHAI).strftime("%m-%d %H:%M") for message in education] == [
        "11-30 10:00", "12-29 10:00", "01-28 10:00"]  # days 1, 30 and 60 of a start on 29 November
    invitations = [message for message in sent if message.purpose == "followup_invite"]
    assert len(invitations) == 6  # days 14, 28, 42, 56, 70 and 84; day 98 is past the end
    assert [message.created_at.astimezone(SHANGHAI).strftime("%m-%d %H:%M") for message in invitations][:2] == [
        "12-13 09:30", "12-27 09:30"]

    statuses = Counter((row.content_key is not None, row.status, row.outcome) for row in rows(db, enrolment))
    assert statuses == Counter({(True, "completed", "sent"): 3, (False, "completed", None): 3,
                                (False, "unanswered", "no_response"): 3,
                                (False, "cancelled", "left:intervention_end"): 1})
    assert answered == 3
    assert (enrolment.status, enrolment.outcome) == ("ended", "completed")
    assert enrolment.ended_at == start + timedelta(days=90)

    _, figures = interventions.progress(db, enrolment, actor=TEST_ACTOR)
    assert (figures.check_ins_sent, figures.check_ins_answered, figures.answer_rate) == (6, 3, 0.5)
    assert (figures.messages_sent, figures.messages_planned) == (3, 3)
    sbp = figures.goals[0]
    assert (sbp.baseline.value, sbp.latest.value, sbp.state) == (146, 129, "met")  # from the answered check-ins
    record = db.scalars(select(StageSummaryRecord).where(StageSummaryRecord.summary_id == enrolment.summary_id)).one()
    assert record.content["adherence"]["sent"] == 6
    assert record.content["adherence"]["answered"] == 3
    assert {goal["id"]: goal["status"] for goal in record.content["goals"]} == {"sbp_below_130": "met"}
    assert "打卡: 发出6次，回复3次（回复率50%）" in record.conclusion


def test_an_education_message_waits_out_quiet_hours_and_speaks_the_patients_language(db, make_patient, services,
                                                                                   clock):
    interventions.add_program(db, program_text(education='  - {day: 1, message: diet_salt, at: "22:30"}\n'),
                              flow_ids=FLOWS, actor=TEST_ACTOR)
    patient = make_patient(language="en")
    enrolment = interventions.start(db, patient, "bp_care", actor=TEST_ACTOR)
    db.flush()
    [message_row] = [row for row in rows(db, enrolment) if row.content_key is not None]
    assert message_row.due_at.astimezone(SHANGHAI) == datetime(2026, 11, 30, 22, 30, tzinfo=SHANGHAI)
    clock.set(message_row.due_at)
    due_followups(db, services)
    assert message_row.status == "due"
    assert message_row.next_action_at.astimezone(SHANGHAI) == datetime(2026, 12, 1, 8, 0, tzinfo=SHANGHAI)
    assert outbox(db, patient) == []
    clock.set(message_row.next_action_at)
    due_followups(db, services)
    [sent] = outbox(db, patient)
    assert (sent.purpose, sent.channel, sent.payload["text"]) == ("education", "console",
                                                                  content_library().items["diet_salt"].text_en)
    assert (message_row.status, message_row.outcome, message_row.current_channel) == ("completed", "sent", "console")
    due_followups(db, services)
    assert len(outbox(db, patient)) == 1


def test_a_message_with_no_usable_channel_fails_without_a_staff_call(db, make_patient, services, clock):
    text = program_text(education='  - {day: 1, message: diet_salt, at: "10:00"}\n').replace(
        "education_channels: [console]", "education_channels: [sms]")
    interventions.add_program(db, text, flow_ids=FLOWS, actor=TEST_ACTOR)
    patient = make_patient()
    enrolment = interventions.start(db, patient, "bp_care", actor=TEST_ACTOR)
    db.flush()
    [message_row] = [row for row in rows(db, enrolment) if row.content_key is not None]
    clock.set(message_row.due_at)
    due_followups(db, services)  # the tests' bot has the console channel only
    assert (message_row.status, message_row.outcome) == ("failed", "no_usable_channel")
    assert outbox(db, patient) == []


@pytest.mark.skipif(not os.environ.get(PG_ENV), reason="several workers run at once on PostgreSQL only")
def test_two_workers_end_each_enrolment_whose_time_ran_out_exactly_once(live_runtime):
    with live_runtime.db.unit_of_work() as session:
        requests = [EnrolmentRequest(card_no=f"IV{n:04d}", name="并发", gender="F", birth_date=date(1960, 1, 1),
                                     phone=f"+86137{n:08d}") for n in range(120)]
        ids = [row.patient_id for row in enroll_many(session, requests, actor=TEST_ACTOR) if row.patient_id]
        interventions.add_program(session, program_text(days=30, education='  - {day: 1, message: diet_salt}\n'),
                                  flow_ids=FLOWS, actor=TEST_ACTOR)
        for patient_id in ids:
            interventions.start(session, session.get(Patient, patient_id), "bp_care", actor=TEST_ACTOR)
    clock = live_runtime.clock
    assert isinstance(clock, FixedClock)
    clock.advance(days=31)
    ended = [0, 0]
    failures: list[BaseException] = []

    def work(slot: int) -> None:
        try:
            while True:
                with live_runtime.db.unit_of_work() as session:
                    done = interventions.end_due(session, limit=10)
                if not done:
                    return
                ended[slot] += done
        except BaseException as failure:  # noqa: BLE001 - the test reports it
            failures.append(failure)

    workers = [threading.Thread(target=work, args=(slot,)) for slot in (0, 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert failures == []
    assert sum(ended) == 120
    with live_runtime.db.unit_of_work() as session:
        assert Counter(session.scalars(select(InterventionEnrolment.outcome))) == {"completed": 120}
        per_patient = Counter(session.scalars(select(StageSummaryRecord.patient_id)))
        assert (len(per_patient), set(per_patient.values())) == (120, {1})
