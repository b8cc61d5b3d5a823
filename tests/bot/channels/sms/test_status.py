"""bot/channels/sms/status.py: Twilio's delivery reports move a row forward only; a STOP reported at delivery
opts the patient out of SMS; a failed invitation tells its follow-up."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.channels.sms import fail_invitation, message_status
from bot.outbox.queue import enqueue
from security.audit import AuditEntry

SID = "SM" + "c" * 32


@pytest.fixture
def sent_row(db, make_patient):
    """An SMS the dispatcher sent (its SID recorded), and its patient."""
    patient = make_patient()
    row = enqueue(db, idempotency_key="sms-status", channel="sms", kind="text", purpose="reminder",
                  address=patient.phone, payload={"text": "您好"}, patient=patient)
    row.status = "sent"
    row.provider_id = SID
    db.flush()
    return row, patient


def test_reports_out_of_order_end_in_delivered(db, sent_row):
    row, _patient = sent_row
    for status in ("delivered", "sent", "queued", "undelivered"):
        message_status(db, message_sid=SID, status=status, error_code=None, outbox_id=row.id)
    assert (row.status, row.delivered_at is not None) == ("delivered", True)


def test_a_report_that_overtakes_the_dispatcher_finds_its_row_by_the_callback_url(db, make_patient):
    patient = make_patient()
    row = enqueue(db, idempotency_key="sms-overtaken", channel="sms", kind="text", purpose="reminder",
                  address=patient.phone, payload={"text": "您好"}, patient=patient)
    row.status = "sending"
    db.flush()
    assert message_status(db, message_sid=SID, status="sent", error_code=None, outbox_id=row.id) is row
    assert (row.provider_id, row.status) == (SID, "sent")


def test_a_report_about_a_message_we_never_sent_changes_nothing(db, sent_row):
    assert message_status(db, message_sid="SM" + "0" * 32, status="delivered", error_code=None,
                          outbox_id=None) is None
    assert sent_row[0].status == "sent"


def test_21610_at_delivery_opts_the_patient_out_of_sms_audited(db, sent_row):
    row, patient = sent_row
    message_status(db, message_sid=SID, status="undelivered", error_code="21610", outbox_id=row.id)
    db.flush()
    assert (row.status, row.error_code) == ("failed", "21610")
    assert patient.consent_for("sms").opted_out
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "consent.opt_out", AuditEntry.patient_id == patient.id)) == 1


def test_another_failure_does_not_opt_out(db, sent_row):
    row, patient = sent_row
    message_status(db, message_sid=SID, status="failed", error_code="30003", outbox_id=row.id)
    assert row.status == "failed"
    assert not patient.consent_for("sms").opted_out


def test_a_message_that_is_no_invitation_tells_no_follow_up(db, sent_row):
    assert fail_invitation(db, sent_row[0], retryable=True) is False
