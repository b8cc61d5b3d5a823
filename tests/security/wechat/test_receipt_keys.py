"""Inbound receipts, as an attacker with a copy of the database reads them, and as WeChat delivers events.

No receipt's provider key names an openid or a phone number (WeChat events are keyed by a keyed
HMAC of their whole content), so two different events of one user in the same second are two
deliveries, while a redelivery of one event is still the same delivery.
"""

from __future__ import annotations

from sqlalchemy import func, select

from bot.followups import due_followups
from bot.models import InboundReceipt
from care.followups import schedule_followup
from security.audit import AuditEntry
from tests.conftest import TEST_ACTOR
from tests.webhooks.test_twilio_voice import Call


def audited(db, action, patient):
    db.expire_all()
    return db.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == action, AuditEntry.patient_id == patient.id))


def test_two_different_events_of_one_user_in_the_same_second_are_both_processed(db, wechat_patient, wechat_post,
                                                                                 wechat_peer):
    patient = wechat_patient()
    second = wechat_peer.now() - 5
    assert wechat_post(wechat_peer.event_xml(patient.wechat_openid, "unsubscribe", create_time=second)).status_code \
        == 200
    subscribed = wechat_post(wechat_peer.event_xml(patient.wechat_openid, "subscribe", create_time=second))
    assert "血压" in wechat_peer.read_reply(subscribed.data)["Content"]  # the menu, not the unsubscribe's "success"
    assert audited(db, "consent.opt_out", patient) == 1
    assert audited(db, "consent.opt_in", patient) == 1
    assert not patient.consent_for("wechat").opted_out


def test_a_redelivered_event_is_still_processed_once_and_answered_the_same(db, wechat_patient, wechat_post,
                                                                           wechat_peer):
    patient = wechat_patient()
    event = wechat_peer.event_xml(patient.wechat_openid, "CLICK", key="问卷", create_time=wechat_peer.now() - 3)
    replies = [wechat_peer.read_reply(wechat_post(event).data)["Content"] for _ in range(3)]
    assert "（1/9）" in replies[0]
    assert replies == replies[:1] * 3
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(InboundReceipt)
                     .where(InboundReceipt.patient_id == patient.id)) == 1


def test_no_receipt_names_an_openid_or_a_phone_number(db, clock, wechat_patient, wechat_post, wechat_peer, wechat_say,
                                                      twilio_sms, twilio_services, dispatch, twilio_post, settings,
                                                      twilio_fake):
    patient = wechat_patient(phone="+8613912345678")
    stranger = "oSomeoneNotYetBound000000001"
    # A follow-up call answered and its consent question answered (first: no conversation is open yet).
    schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), channel_order=["voice"], actor=TEST_ACTOR)
    db.flush()
    due_followups(db, twilio_services)
    db.flush()
    dispatch()
    Call(twilio_post, settings, twilio_fake, to=patient.phone).begin()
    # WeChat: a message and events of a bound patient, and of someone binding.
    wechat_say(patient.wechat_openid, "帮助")
    wechat_post(wechat_peer.event_xml(patient.wechat_openid, "CLICK", key="血压"))
    wechat_post(wechat_peer.event_xml(patient.wechat_openid, "VIEW", key="https://clinic.example.test/"))
    wechat_post(wechat_peer.event_xml(stranger, "subscribe"))
    wechat_say(stranger, "T7654321")
    # SMS from the patient and from a number we do not know.
    twilio_sms(patient.phone, "帮助")
    twilio_sms("+8613800009999", "你好")
    db.expire_all()
    keys = list(db.scalars(select(InboundReceipt.provider_key)))
    assert {"wechat", "sms", "voice"} <= set(db.scalars(select(InboundReceipt.channel)))
    assert len(keys) >= 9
    secrets = [patient.wechat_openid, stranger, "13912345678", "13800009999"]
    assert [key for key in keys for secret in secrets if secret in key] == []
    # Nor any other column of the table, as a copy of the database shows it.
    raw = [value if isinstance(value, bytes) else str(value).encode()
           for row in db.execute(select(InboundReceipt.__table__)) for value in row]
    assert [secret for secret in secrets for value in raw if secret.encode() in value] == []
