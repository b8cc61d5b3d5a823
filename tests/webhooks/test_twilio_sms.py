"""Inbound SMS through ``/webhooks/twilio/sms``, signed as Twilio signs: PHQ-9, signatures, dedupe, STOP/START/HELP."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.followups import due_followups
from bot.models import ConversationMessage, InboundReceipt, OutboxMessage
from bot.outbox.queue import enqueue
from care.followups import schedule_followup
from care.models import FlowResult, Observation, StaffTask
from security.audit import AuditEntry
from tests.clinic import with_clinic
from tests.conftest import TEST_ACTOR
from tests.webhooks.conftest import TWILIO_ACCOUNT_SID, TWILIO_FROM, twilio_signature

PHQ9_ANSWERS = ["2", "3", "2", "3", "2", "2", "2", "1", "1"]  # choices 1..4 are 0..3 points: total 9


def count(db, model, *where):
    return db.scalar(select(func.count()).select_from(model).where(*where))


def results(db, patient):
    return {row.name: row for row in db.scalars(select(FlowResult).where(FlowResult.patient_id == patient.id))}


def test_phq9_over_sms_lands_answers_and_score_in_the_record(db, make_patient, twilio_sms):
    patient = make_patient()
    first = twilio_sms(patient.phone, "问卷")
    assert "做事时提不起劲或没有兴趣" in "\n".join(first)
    assert "1. 完全不会" in first[-1]
    transcript = []
    for answer in PHQ9_ANSWERS:
        transcript.extend(twilio_sms(patient.phone, answer))
    assert "最后一题" in transcript[-1]  # item 10 is asked because the total is above 0
    transcript.extend(twilio_sms(patient.phone, "2"))
    saved = results(db, patient)
    assert [saved[f"phq9_q{n}"].value for n in range(1, 10)] == [1, 2, 1, 2, 1, 1, 1, 0, 0]
    assert saved["phq9_total"].value == 9
    assert saved["phq9_total"].category == "mild"
    assert "9" in transcript[-1] or "9" in transcript[-2]
    total = db.scalars(select(Observation).where(Observation.patient_id == patient.id,
                                                 Observation.code == "44261-6")).one()
    assert total.value == 9


def _inbound(number, text="问卷", sid="SM" + "a" * 32):
    return {"MessageSid": sid, "From": number, "To": TWILIO_FROM, "Body": text, "NumMedia": "0"}


@pytest.mark.parametrize("forgery", ["missing", "garbage", "wrong_token", "other_url", "tampered_body"])
def test_a_forged_or_missing_signature_is_403_and_nothing_is_stored(db, make_patient, twilio_post, settings, forgery):
    patient = make_patient()
    params = _inbound(patient.phone)
    form = {"AccountSid": TWILIO_ACCOUNT_SID, **params}
    url = settings.public_url + "/webhooks/twilio/sms"
    signature = {
        "missing": None,
        "garbage": "bm90IGEgc2lnbmF0dXJl",
        "wrong_token": twilio_signature(url, form, token="someone-elses-token"),
        "other_url": twilio_signature("https://attacker.example/webhooks/twilio/sms", form),
        "tampered_body": twilio_signature(url, {**form, "Body": "hello"}),
    }[forgery]
    response = twilio_post("/webhooks/twilio/sms", params, signature=signature)
    assert response.status_code == 403
    assert count(db, InboundReceipt) == 0
    assert count(db, ConversationMessage, ConversationMessage.patient_id == patient.id) == 0


def test_a_validly_signed_request_for_another_account_is_403(db, make_patient, twilio_client, settings):
    patient = make_patient()
    form = {"AccountSid": "AC" + "f" * 32, **_inbound(patient.phone)}
    url = settings.public_url + "/webhooks/twilio/sms"
    response = twilio_client.post("/webhooks/twilio/sms", data=form,
                                  headers={"X-Twilio-Signature": twilio_signature(url, form)})
    assert response.status_code == 403
    assert count(db, InboundReceipt) == 0


def test_the_signature_holds_behind_a_proxy(make_patient, twilio_post):
    # The proxy forwards to an internal address; the signature covers the public URL Twilio used.
    patient = make_patient()
    response = twilio_post("/webhooks/twilio/sms", _inbound(patient.phone), base_url="http://10.0.0.7:8000")
    assert response.status_code == 200


@pytest.mark.parametrize("params", [
    {"From": "+8613800000000", "Body": "hi"},  # no MessageSid
    {"MessageSid": "SM123", "From": "+8613800000000", "Body": "hi"},  # malformed sid
    {"MessageSid": "SM" + "b" * 32, "Body": "hi"},  # no sender
    {"MessageSid": "SM" + "b" * 32, "From": "+8613800000000", "Body": "长" * 1601},  # longer than Twilio allows
])
def test_bad_form_data_is_400_and_nothing_is_stored(db, twilio_post, params):
    response = twilio_post("/webhooks/twilio/sms", params)
    assert response.status_code == 400
    assert count(db, InboundReceipt) == 0


def test_an_oversized_request_is_refused_and_nothing_is_stored(db, twilio_post):
    params = {"MessageSid": "SM" + "b" * 32, "From": "+8613800000000", "Body": "hi", "Padding": "x" * 70_000}
    assert twilio_post("/webhooks/twilio/sms", params).status_code == 413
    assert count(db, InboundReceipt) == 0


def test_a_body_that_is_not_form_data_is_refused(db, twilio_client, settings):
    url = settings.public_url + "/webhooks/twilio/sms"
    response = twilio_client.post("/webhooks/twilio/sms", data=b'{"Body": "hi"}', content_type="application/json",
                                  headers={"X-Twilio-Signature": twilio_signature(url, {})})
    assert response.status_code in (400, 403)
    assert count(db, InboundReceipt) == 0


def test_a_repeated_message_sid_is_processed_once_and_answered_the_same(db, make_patient, twilio_sms):
    patient = make_patient()
    twilio_sms(patient.phone, "问卷")
    once = twilio_sms(patient.phone, "2", sid="SM" + "c" * 32)
    again = twilio_sms(patient.phone, "2", sid="SM" + "c" * 32)
    assert once == again
    assert "（2/9）" in "\n".join(once)
    assert list(results(db, patient)) == ["phq9_q1"]
    assert count(db, InboundReceipt, InboundReceipt.provider_key == "SM" + "c" * 32) == 1


@pytest.mark.parametrize("word", ["STOP", "退订"])
def test_stop_opts_out_at_once_and_nothing_goes_out_on_sms_afterwards(db, clock, make_patient, twilio_sms,
                                                                      twilio_services, twilio_fake, dispatch, word):
    patient = make_patient()
    queued = enqueue(db, idempotency_key="reminder-before-stop", channel="sms", kind="text", purpose="reminder",
                     address=patient.phone, payload={"text": "提醒"}, patient=patient)
    db.flush()
    reply = twilio_sms(patient.phone, word)
    assert "退订" in reply[0]
    consent = patient.consent_for("sms")
    assert consent.opted_out
    assert count(db, AuditEntry, AuditEntry.action == "consent.opt_out", AuditEntry.patient_id == patient.id) == 1
    db.refresh(queued)
    assert queued.status == "cancelled"
    # A follow-up over SMS only skips the channel and goes to the staff queue; the next question is ignored.
    schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), channel_order=["sms"],
                      actor=TEST_ACTOR)
    due_followups(db, twilio_services)
    db.flush()
    assert twilio_sms(patient.phone, "问卷") == []
    dispatch()
    assert twilio_fake.bodies_to(patient.phone) == []
    assert count(db, StaffTask, StaffTask.patient_id == patient.id, StaffTask.kind == "followup_unanswered") == 1


def test_start_turns_sms_back_on(db, make_patient, twilio_sms):
    patient = make_patient()
    twilio_sms(patient.phone, "STOP")
    assert twilio_sms(patient.phone, "问卷") == []
    assert "重新订阅" in twilio_sms(patient.phone, "START")[0]
    assert not patient.consent_for("sms").opted_out
    assert "做事时提不起劲" in "\n".join(twilio_sms(patient.phone, "问卷"))
    assert count(db, AuditEntry, AuditEntry.action == "consent.opt_in", AuditEntry.patient_id == patient.id) == 1


@pytest.fixture
def settings(settings):
    """This clinic's own name, phone, SMS signature... (tests/clinic.py), as its operator set them."""
    return with_clinic(settings)


def test_help_answers_with_the_clinics_contact(make_patient, twilio_sms):
    patient = make_patient(language="en", name="Test Person")
    reply = twilio_sms(patient.phone, "HELP")
    assert "021-5550-0101" in reply[0]
    assert "Xingfuli Health Centre" in reply[0]
    assert "STOP" in reply[0]


def test_an_unknown_number_is_told_once_that_it_is_not_registered(db, twilio_sms):
    first = twilio_sms("+8613912345678", "你好")
    assert "还没有在幸福里健康管理中心登记" in first[0]
    assert twilio_sms("+8613912345678", "你好") == []
    assert twilio_sms("+8613912345678", "问卷") == []


def test_a_follow_up_invitation_is_neutral_and_any_reply_starts_the_flow(db, clock, make_patient, twilio_sms,
                                                                         twilio_services, dispatch, twilio_fake):
    patient = make_patient()
    now = clock.now()
    schedule_followup(db, patient, flow_id="phq9", due_at=now, channel_order=["sms"], actor=TEST_ACTOR)
    due_followups(db, twilio_services)
    db.flush()
    dispatch()
    # An SMS opens with the clinic's registered signature (CARELOOP_SMS_SENDER_NAME).
    assert twilio_fake.bodies_to(patient.phone) == ["【幸福里健康】您有一项健康随访，回复1开始。"]
    assert "做事时提不起劲" in "\n".join(twilio_sms(patient.phone, "1"))
    row = db.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)).one()
    assert row.status == "sent"
    assert row.sent_at == now
