"""A plan's occurrences through the follow-up worker: months of a plan, quiet hours and time zones, reminders and
the staff call, caps, start modes, no flood, and two workers on PostgreSQL (time injected, never slept)."""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from bot.conversations import BotServices, begin, open_conversation
from bot.followups import due_followups
from bot.models import ConversationSession, OutboxMessage
from care import plans
from care.models import FollowUp, Patient, StaffTask
from care.patients import EnrolmentRequest, enroll_many
from careloop.bot_runtime import build_bot
from flows.registry import FlowLibrary
from security.clock import FixedClock
from tests.conftest import PG_ENV, TEST_ACTOR

FLOWS = set(FlowLibrary.builtin().ids())
SHANGHAI = ZoneInfo("Asia/Shanghai")


def plan_text(plan_id: str = "monthly", *, when: str = '{every: {months: 1}, at: "09:30"}', silence: str = "[]",
              attempts: int = 1, mode: str = "wait", flow: str = "home_monitoring", more: str = "") -> str:
    return (f"id: {plan_id}\nversion: 1\ntitle: {{zh: 随访, en: Follow-up}}\nsteps:\n"
            f"  - flow: {flow}\n    when: {when}\n    channels: [console]\n"
            f"    retry: {{attempts: {attempts}, answer_window_hours: 48}}\n    on_silence: {silence}\n"
            f"    start_mode: {mode}\n{more}")


def enrolled(db: Session, make_patient, text: str, **patient) -> tuple[Patient, str]:
    published = plans.add_plan(db, text, flow_ids=FLOWS, actor=TEST_ACTOR)
    person = make_patient(**patient)
    plans.enrol(db, person, published.plan.key, actor=TEST_ACTOR)
    db.flush()
    return person, published.plan.key


def rows(db: Session, patient: Patient) -> list[FollowUp]:
    return list(db.scalars(select(FollowUp).where(FollowUp.patient_id == patient.id)
                           .order_by(FollowUp.step_index, FollowUp.occurrence)))


def sent(db: Session, patient: Patient) -> int:
    return int(db.scalar(select(func.count()).select_from(OutboxMessage)
                         .where(OutboxMessage.patient_id == patient.id)) or 0)


def local(moment: datetime) -> datetime:
    return moment.astimezone(SHANGHAI)


def test_a_monthly_plan_over_six_months_invites_once_a_month_and_notes_the_silence(db, make_patient, services,
                                                                                  clock):
    patient, _ = enrolled(db, make_patient, plan_text())
    for month in range(6):
        [upcoming] = [row for row in rows(db, patient) if row.status == "scheduled"]
        assert upcoming.occurrence == month + 1
        clock.set(upcoming.due_at - timedelta(minutes=1))
        assert due_followups(db, services) == 0  # not yet
        clock.set(upcoming.due_at)
        assert due_followups(db, services) == 1
        assert due_followups(db, services) == 0  # nothing twice
        assert upcoming.status == "invited"
        assert sent(db, patient) == month + 1
        clock.advance(hours=49)  # the answer window passes in silence
        assert due_followups(db, services) == 1
        assert (upcoming.status, upcoming.outcome) == ("unanswered", "no_response")
    statuses = [(row.occurrence, row.status) for row in rows(db, patient)]
    assert statuses == [(1, "unanswered"), (2, "unanswered"), (3, "unanswered"), (4, "unanswered"),
                        (5, "unanswered"), (6, "unanswered"), (7, "scheduled")]
    days = [local(row.due_at).date() for row in rows(db, patient)]
    assert days[:6] == [date(2026, 12, 29), date(2027, 1, 29), date(2027, 2, 28), date(2027, 3, 29),
                        date(2027, 4, 29), date(2027, 5, 29)]
    assert {local(row.due_at).time().isoformat() for row in rows(db, patient)} == {"09:30:00"}


def test_quiet_hours_hold_an_occurrence_and_a_new_time_zone_moves_it(db, make_patient, services, clock):
    patient, _ = enrolled(db, make_patient, plan_text(when='{offset: {days: 1}, at: "23:00"}'))
    [row] = rows(db, patient)
    assert local(row.due_at) == datetime(2026, 11, 30, 23, 0, tzinfo=SHANGHAI)
    clock.set(row.due_at)
    due_followups(db, services)
    assert row.status == "due"
    assert local(row.next_action_at) == datetime(2026, 12, 1, 8, 0, tzinfo=SHANGHAI)  # the end of quiet hours
    assert sent(db, patient) == 0

    other, _ = enrolled(db, make_patient, plan_text("later", when='{offset: {days: 3}, at: "23:00"}'))
    other.timezone = "Europe/London"
    assert plans.retime_patient(db, other) == 1
    [moved] = rows(db, other)
    london = ZoneInfo("Europe/London")
    assert moved.due_at.astimezone(london) == datetime(2026, 12, 3, 23, 0, tzinfo=london)  # 3 days after 15:00 UTC
    clock.set(moved.due_at)
    due_followups(db, services)
    assert moved.next_action_at.astimezone(london) == datetime(2026, 12, 4, 8, 0, tzinfo=london)


def test_silence_brings_a_reminder_then_a_staff_call_task(db, make_patient, services, clock):
    patient, _ = enrolled(db, make_patient, plan_text(when='{offset: {days: 1}, at: "10:00"}', attempts=2,
                                                      silence="[reminder, next_channel, staff_call]"))
    [row] = rows(db, patient)
    clock.set(row.due_at)
    due_followups(db, services)
    assert (row.status, sent(db, patient)) == ("invited", 1)
    clock.advance(hours=49)
    due_followups(db, services)
    assert (row.status, row.attempts, sent(db, patient)) == ("invited", 2, 2)  # a reminder on the same channel
    clock.advance(hours=49)
    due_followups(db, services)
    assert (row.status, row.outcome) == ("unanswered", "no_response")
    task = db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)).one()
    assert (task.kind, task.details["plan"]) == ("followup_call", "monthly")
    conversation = db.get(ConversationSession, row.session_id)
    assert conversation is not None
    assert conversation.end_status == "expired"


def test_the_patients_daily_cap_holds_an_occurrence_until_the_next_allowed_time(db, make_patient, services, clock):
    capped = BotServices(replace(services.config, plan_daily_cap=1, plan_weekly_cap=2), services.library,
                         services.clock, services.adapters, services.blob_store)
    text = plan_text(when='{offset: {days: 1}, at: "10:00"}', more=(
        "  - flow: satisfaction\n    when: {offset: {days: 1}, at: \"10:00\"}\n    channels: [console]\n"
        "    start_mode: interrupt\n"))
    patient, _ = enrolled(db, make_patient, text)
    first, second = rows(db, patient)
    clock.set(first.due_at)
    assert due_followups(db, capped) == 2
    assert first.status == "invited"
    assert second.status == "due"  # the day's one message went: tomorrow, out of quiet hours
    assert local(second.next_action_at) == datetime(2026, 12, 1, 8, 0, tzinfo=SHANGHAI)
    clock.set(second.next_action_at)
    due_followups(db, capped)
    assert second.status == "invited"  # it interrupted the open invitation of the first
    assert first.status == "unanswered"
    assert sent(db, patient) == 2

    third, _ = enrolled(db, make_patient, plan_text("third", when='{offset: {days: 2}, at: "10:00"}'))
    # the weekly cap: two this week already for the first patient; another plan's row waits for Monday.
    plans.enrol(db, patient, "third", actor=TEST_ACTOR)
    db.flush()
    [week_row] = [row for row in rows(db, patient) if row.plan_key == "third"]
    clock.set(week_row.due_at)
    due_followups(db, capped)
    assert week_row.status == "due"
    assert local(week_row.next_action_at) == datetime(2026, 12, 7, 8, 0, tzinfo=SHANGHAI)  # Monday morning


def test_a_channels_daily_cap_holds_the_rest_until_the_next_clinic_day(db, make_patient, services, clock):
    capped = BotServices(replace(services.config, channel_daily_caps={"console": 1}), services.library,
                         services.clock, services.adapters, services.blob_store)
    text = plan_text(when='{offset: {days: 1}, at: "10:00"}')
    plans.add_plan(db, text, flow_ids=FLOWS, actor=TEST_ACTOR)
    one, two = make_patient(), make_patient()
    for person in (one, two):
        plans.enrol(db, person, "monthly", actor=TEST_ACTOR)
    db.flush()
    clock.set(rows(db, one)[0].due_at)
    due_followups(db, capped)
    statuses = sorted(row.status for row in [*rows(db, one), *rows(db, two)])
    assert statuses == ["due", "invited"]
    assert sent(db, one) + sent(db, two) == 1


def test_start_modes_wait_skip_and_interrupt(db, make_patient, services, clock):
    for mode, expected in (("wait", "due"), ("skip", "skipped"), ("interrupt", "invited")):
        patient, _ = enrolled(db, make_patient, plan_text(mode, when='{offset: {days: 1}, at: "10:00"}', mode=mode))
        [row] = rows(db, patient)
        clock.set(row.due_at)
        begin(db, services, patient, "phq9", channel="console", actor=TEST_ACTOR)
        db.flush()
        running = open_conversation(db, patient)
        due_followups(db, services)
        assert row.status == expected, mode
        if mode == "wait":
            assert row.next_action_at == clock.now() + timedelta(hours=2)
        if mode == "interrupt":
            assert running is not None
            assert running.end_status == "interrupted"
        clock.set(datetime(2026, 11, 29, 2, 0, tzinfo=UTC))
        db.flush()


def test_rows_overdue_past_the_grace_are_missed_not_sent(db, make_patient, services, clock):
    patients = [enrolled(db, make_patient, plan_text(f"p{n}"))[0] for n in range(3)]
    clock.advance(days=40)  # the worker was stopped for the first occurrence and ten days more
    due_followups(db, services)
    for patient in patients:
        assert [(row.occurrence, row.status, row.outcome) for row in rows(db, patient)] == \
            [(1, "skipped", "missed"), (2, "scheduled", None)]
        assert sent(db, patient) == 0


def test_a_stale_row_is_a_no_op_when_due(db, make_patient, services, clock):
    patient, key = enrolled(db, make_patient, plan_text(when='{offset: {days: 1}, at: "10:00"}'))
    [row] = rows(db, patient)
    [enrolment] = plans.enrolments_of(db, patient.id)
    enrolment.fire_version += 1  # re-timed while this row was away (claimed by a worker, say)
    clock.set(row.due_at)
    due_followups(db, services)
    assert (row.status, row.outcome) == ("skipped", "stale")
    assert sent(db, patient) == 0


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get(PG_ENV), reason="several workers run at once on PostgreSQL only")
def test_two_workers_process_5000_due_followups_each_exactly_once(live_runtime):
    services = build_bot(live_runtime).services
    with live_runtime.db.unit_of_work() as session:
        requests = [EnrolmentRequest(card_no=f"PW{n:05d}", name="并发", gender="F", birth_date=date(1960, 1, 1),
                                     phone=f"+86136{n:08d}") for n in range(5000)]
        ids = [row.patient_id for row in enroll_many(session, requests, actor=TEST_ACTOR) if row.patient_id]
        plans.add_plan(session, plan_text(when='{offset: {days: 1}, at: "10:00"}'), flow_ids=FLOWS,
                       actor=TEST_ACTOR)
        session.flush()
        assert plans.enrol_many(session, ids, "monthly", actor=TEST_ACTOR) == 5000
    clock = live_runtime.clock
    assert isinstance(clock, FixedClock)
    clock.advance(days=1, hours=1)
    handled: list[int] = [0, 0]
    failures: list[BaseException] = []

    def work(slot: int) -> None:
        try:
            while True:
                with live_runtime.db.unit_of_work() as session:
                    done = due_followups(session, services, limit=200)
                if not done:
                    return
                handled[slot] += done
        except BaseException as failure:  # noqa: BLE001 - the test reports it
            failures.append(failure)

    workers = [threading.Thread(target=work, args=(slot,)) for slot in (0, 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
    assert failures == []
    assert sum(handled) == 5000
    assert min(handled) > 0  # both took part
    with live_runtime.db.unit_of_work() as session:
        per_followup = Counter(session.scalars(select(OutboxMessage.followup_id)))
        assert len(per_followup) == 5000
        assert set(per_followup.values()) == {1}
        assert Counter(session.scalars(select(FollowUp.status))) == {"invited": 5000}


def test_a_batch_reads_what_its_rows_need_at_once_whatever_its_size(db, make_patient, services, clock):
    """The statements of a batch (claim, reads, writes) do not grow with its rows: nothing is asked per row."""
    statements: list[str] = []

    def count(_connection, _cursor, statement, _parameters, _context, _executemany):  # noqa: ANN001
        statements.append(statement)

    def handle(size: int, plan_id: str, days: int) -> int:
        plans.add_plan(db, plan_text(plan_id, when=f'{{offset: {{days: {days}}}, at: "10:00"}}',
                                     silence="[reminder, staff_call]", attempts=2), flow_ids=FLOWS, actor=TEST_ACTOR)
        people = [make_patient() for _ in range(size)]
        for person in people:
            plans.enrol(db, person, plan_id, actor=TEST_ACTOR)
        db.flush()
        clock.set(rows(db, people[0])[0].due_at)
        statements.clear()
        event.listen(db.get_bind().engine, "before_cursor_execute", count)
        try:
            assert due_followups(db, services) == size
            db.flush()
        finally:
            event.remove(db.get_bind().engine, "before_cursor_execute", count)
        assert all(sent(db, person) == 1 for person in people)
        return len(statements)

    few = handle(2, "few", 1)
    many = handle(12, "many", 1)  # enrolled when the first are invited: due a day later, before their silence
    assert many == few
