"""A patient's own quiet hours: they win over the clinic's, are read where the patient lives (a new time zone
moves them), and staff set or clear them, audited (time injected, never slept)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.consent import in_quiet_hours, quiet_hours_end, quiet_hours_of
from bot.followups import due_followups
from care import plans
from care.errors import ValidationFailedError
from care.models import AuditEntry
from care.patients import set_quiet_hours
from tests.bot.test_plan_followups import FLOWS, local, plan_text, rows, sent
from tests.conftest import TEST_ACTOR

SHANGHAI = ZoneInfo("Asia/Shanghai")
LONDON = ZoneInfo("Europe/London")


def test_the_patients_own_quiet_hours_hold_what_the_clinics_would_send(db, make_patient, services, clock):
    plans.add_plan(db, plan_text(when='{offset: {days: 1}, at: "10:00"}'), flow_ids=FLOWS, actor=TEST_ACTOR)
    late_riser, other = make_patient(), make_patient()
    set_quiet_hours(db, late_riser, "21:00-11:30", actor=TEST_ACTOR)
    for person in (late_riser, other):
        plans.enrol(db, person, "monthly", actor=TEST_ACTOR)
    db.flush()
    [held], [going] = rows(db, late_riser), rows(db, other)
    clock.set(going.due_at)  # 10:00 in Shanghai: outside the clinic's 21:00-08:00, inside the patient's own
    assert due_followups(db, services) == 2
    assert (going.status, sent(db, other)) == ("invited", 1)
    assert (held.status, sent(db, late_riser)) == ("due", 0)
    assert local(held.next_action_at) == datetime(2026, 11, 30, 11, 30, tzinfo=SHANGHAI)
    clock.set(held.next_action_at)
    assert due_followups(db, services) == 1
    assert (held.status, sent(db, late_riser)) == ("invited", 1)


def test_own_quiet_hours_are_read_in_the_patients_time_zone_and_move_with_it(db, make_patient, services, clock):
    patient = make_patient()
    set_quiet_hours(db, patient, "22:30-07:30", actor=TEST_ACTOR)
    evening = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai, 15:00 in London
    assert in_quiet_hours(services.config, patient, evening)
    assert quiet_hours_end(services.config, patient, evening).astimezone(SHANGHAI) == \
        datetime(2026, 12, 2, 7, 30, tzinfo=SHANGHAI)
    patient.timezone = "Europe/London"
    assert not in_quiet_hours(services.config, patient, evening)
    night = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)  # 23:00 in London (GMT), past the patient's 22:30
    assert quiet_hours_end(services.config, patient, night).astimezone(LONDON) == \
        datetime(2026, 12, 2, 7, 30, tzinfo=LONDON)

    plans.add_plan(db, plan_text(when='{offset: {days: 2}, at: "23:00"}'), flow_ids=FLOWS, actor=TEST_ACTOR)
    plans.enrol(db, patient, "monthly", actor=TEST_ACTOR)
    db.flush()
    [row] = rows(db, patient)
    assert row.due_at.astimezone(LONDON) == datetime(2026, 12, 1, 23, 0, tzinfo=LONDON)  # two days after enrolment
    clock.set(row.due_at)
    due_followups(db, services)
    assert (row.status, sent(db, patient)) == ("due", 0)
    assert row.next_action_at.astimezone(LONDON) == datetime(2026, 12, 2, 7, 30, tzinfo=LONDON)


def test_clearing_them_returns_the_patient_to_the_clinics_quiet_hours(db, make_patient, services, clock):
    patient = make_patient()
    clinic = (services.config.quiet_start, services.config.quiet_end)
    assert quiet_hours_of(services.config, patient) == clinic
    assert set_quiet_hours(db, patient, " 20:00 - 9:05 ", actor=TEST_ACTOR)
    assert patient.quiet_hours == "20:00-09:05"
    assert not set_quiet_hours(db, patient, "20:00-09:05", actor=TEST_ACTOR)  # unchanged: nothing written
    nine = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    assert in_quiet_hours(services.config, patient, nine)
    assert set_quiet_hours(db, patient, None, actor=TEST_ACTOR)
    assert patient.quiet_hours is None
    assert quiet_hours_of(services.config, patient) == clinic
    assert not in_quiet_hours(services.config, patient, nine)
    db.flush()
    trail = list(db.scalars(select(AuditEntry.details).where(AuditEntry.action == "patient.quiet_hours",
                                                             AuditEntry.patient_id == patient.id)
                            .order_by(AuditEntry.id)))
    assert trail == ['{"quiet_hours":"20:00-09:05"}', '{"quiet_hours":"clinic"}']


@pytest.mark.parametrize("bad", ["21:00", "25:00-07:00", "21:00-7", "evening", "21:00-07:00-08:00", ""])
def test_a_malformed_range_is_refused_and_nothing_changes(db, make_patient, bad):
    patient = make_patient()
    set_quiet_hours(db, patient, "21:30-07:30", actor=TEST_ACTOR)
    with pytest.raises(ValidationFailedError, match="quiet_hours: must be a range of local times HH:MM-HH:MM"):
        set_quiet_hours(db, patient, bad, actor=TEST_ACTOR)
    assert patient.quiet_hours == "21:30-07:30"
