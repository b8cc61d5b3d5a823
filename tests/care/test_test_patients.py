"""Test patients: the simulator's own, flagged, reachable on the console only, left out of the clinic's numbers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.consent import channel_usable
from care import staff
from care.errors import ValidationFailedError
from care.followups import schedule_followup
from care.models import Patient
from care.patients import EnrolmentRequest, enroll, real_patients
from care.test_patients import NotATestPatientError, own_test_patient, require_test_patient
from careloop.demo_data import seed_demo_clinic
from security.audit import AuditEntry
from tests.conftest import TEST_ACTOR


@pytest.fixture
def member(db):
    staff.ensure_roles(db)
    return staff.create_user(db, email="hm@clinic.test", display_name="王医生", role_name="health_manager",
                             actor=TEST_ACTOR).user


def test_a_staff_members_test_patient_is_made_once_flagged_and_owned(db, member):
    patient = own_test_patient(db, member, actor=TEST_ACTOR)
    db.flush()
    assert patient.is_test is True
    assert patient.test_owner_id == member.id
    assert patient.card_no.startswith("SIM-")
    assert "王医生" in patient.name
    assert "测试" in patient.name
    assert patient.phone is None
    assert patient.wechat_openid is None
    assert own_test_patient(db, member, actor=TEST_ACTOR).id == patient.id
    [entry] = db.scalars(select(AuditEntry).where(AuditEntry.action == "patient.test_create")).all()
    assert entry.patient_id == patient.id


def test_an_english_speaker_gets_an_english_test_patient(db, member):
    patient = own_test_patient(db, member, actor=TEST_ACTOR, language="en")
    assert patient.language == "en"
    assert patient.name.startswith("Test patient")


def test_a_card_number_a_real_patient_already_holds_is_never_taken(db, member, make_patient):
    expected = f"SIM-{member.id.hex[:8].upper()}"
    real = make_patient(card_no=expected)
    patient = own_test_patient(db, member, actor=TEST_ACTOR)
    assert patient.id != real.id
    assert patient.card_no != expected
    assert real.is_test is False


def test_real_patients_are_refused(db, make_patient, member):
    require_test_patient(own_test_patient(db, member, actor=TEST_ACTOR))
    with pytest.raises(NotATestPatientError):
        require_test_patient(make_patient())


def test_a_test_patient_can_be_reached_on_the_console_only(db, member):
    patient = own_test_patient(db, member, actor=TEST_ACTOR)
    patient.wechat_openid = "oSomeoneSetThisByMistake00001"
    patient.phone = "+8613800000001"
    db.flush()
    assert channel_usable(db, patient, "console", "reminder") is True
    for channel in ("wechat", "sms", "voice"):
        assert channel_usable(db, patient, channel, "reminder") is False


def test_a_test_patients_follow_ups_run_on_the_console_only(db, member, clock):
    patient = own_test_patient(db, member, actor=TEST_ACTOR)
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now() + timedelta(days=1),
                                 channel_order=["wechat", "sms", "console"], actor=TEST_ACTOR)
    assert followup.channel_order == ["console"]


def test_an_import_cannot_take_over_a_test_patients_card(db, member):
    patient = own_test_patient(db, member, actor=TEST_ACTOR)
    db.flush()
    request = EnrolmentRequest(card_no=patient.card_no, name="真实姓名", gender="F",
                               birth_date=patient.birth_date, phone="+8613800000002")
    with pytest.raises(ValidationFailedError) as failure:
        enroll(db, request, actor=TEST_ACTOR)
    assert failure.value.problems[0].field == "card_no"
    assert patient.phone is None


def test_the_real_patients_clause_leaves_test_patients_out(db, member, make_patient):
    real = make_patient()
    test = own_test_patient(db, member, actor=TEST_ACTOR)
    db.flush()
    found = set(db.scalars(select(Patient.id).where(real_patients())))
    assert real.id in found
    assert test.id not in found


def test_a_test_patient_does_not_count_as_the_demo_being_seeded(db, member):
    own_test_patient(db, member, actor=TEST_ACTOR)
    db.flush()
    assert seed_demo_clinic(db, actor=TEST_ACTOR, count=2) == 2
