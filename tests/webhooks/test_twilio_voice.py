"""Follow-up calls driven through the TwiML endpoints as Twilio drives them, and their recordings.

The call is placed through the real client (the fake sees ``calls.create``), then the test plays
Twilio: it posts the answered call to the URL we gave, follows each ``<Gather>``'s action with
keypad digits or a speech transcript, and sends the recording callbacks.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from defusedxml import ElementTree
from sqlalchemy import func, select

from bot.followups import due_followups
from bot.models import ConversationSession, InboundReceipt, OutboxMessage
from bot.recordings import RecordingJob
from care.blobs import get_encrypted
from care.followups import schedule_followup
from care.models import FlowResult, FollowUp, Observation, Recording
from security.audit import AuditEntry
from tests.conftest import TEST_ACTOR
from tests.fakes.twilio_server import wav_bytes
from tests.webhooks.conftest import TWILIO_ACCOUNT_SID, TWILIO_FROM

INVALID = "请回复1-4之间的数字"


class Call:
    """Twilio's side of one call: what it was told to do, and what it posts back."""

    def __init__(self, twilio_post, settings, fake, *, to: str) -> None:
        self.post = twilio_post
        self.public = settings.public_url
        self.fake = fake
        [self.sid] = [sid for sid, call in fake.calls.items() if call["to"] == to][-1:]
        self.form = fake.calls[self.sid]["_form"]
        self.to = to
        self.twiml = None

    def _params(self, **extra):
        return {"CallSid": self.sid, "From": TWILIO_FROM, "To": self.to, "Direction": "outbound-api",
                "CallStatus": "in-progress", **extra}

    def _go(self, url, **extra):
        assert url.startswith(self.public)
        response = self.post(url.removeprefix(self.public), self._params(**extra))
        assert response.status_code == 200, response.get_data(as_text=True)
        self.twiml = ElementTree.fromstring(response.data)
        return self.twiml

    def answer(self, answered_by="human"):
        return self._go(self.form["Url"], AnsweredBy=answered_by)

    @property
    def gather(self):
        return self.twiml.find("Gather")

    def says(self):
        return " ".join(element.text or "" for element in self.twiml.iter("Say"))

    def press(self, digits):
        return self._go(self.gather.get("action"), Digits=digits)

    def speak(self, words, confidence="0.87"):
        return self._go(self.gather.get("action"), SpeechResult=words, Confidence=confidence)

    def stay_silent(self):
        return self._go(self.twiml.find("Redirect").text)

    def record(self, recording_sid):
        record = self.twiml.find("Record")
        return self._go(record.get("action"), RecordingSid=recording_sid, RecordingDuration="7",
                        RecordingUrl=f"{self.fake.base_url}/x/{recording_sid}", Digits="#")


@pytest.fixture
def place_call(db, clock, twilio_services, dispatch, twilio_post, settings, twilio_fake):
    """Schedule ``flow`` for the patient over voice and let the dispatcher ring them; returns the Call."""

    def place(patient, flow="phq9"):
        followup = schedule_followup(db, patient, flow_id=flow, due_at=clock.now(), channel_order=["voice"],
                                     actor=TEST_ACTOR)
        db.flush()
        due_followups(db, twilio_services)
        db.flush()
        dispatch()
        call = Call(twilio_post, settings, twilio_fake, to=patient.phone)
        call.followup = followup
        return call

    return place


def consenting(db, patient):
    patient.consent_for("voice").recording_consent = True
    db.flush()
    return patient


def recording_callback(twilio_post, call, recording_sid, query):
    return twilio_post(f"/webhooks/twilio/recording?{query}", {
        "CallSid": call.sid, "RecordingSid": recording_sid, "RecordingStatus": "completed",
        "RecordingDuration": "42", "RecordingUrl": f"{call.fake.base_url}/somewhere/{recording_sid}",
        "RecordingChannels": "1", "RecordingSource": "OutboundAPI"})


def results(db, patient):
    return {row.name: row for row in db.scalars(select(FlowResult).where(FlowResult.patient_id == patient.id))}


def test_phq9_over_a_call_by_keypad_and_speech(db, make_patient, place_call, settings):
    patient = consenting(db, make_patient())
    call = place_call(patient)
    assert call.form["MachineDetection"] == "Enable"
    assert call.form["Record"] == "true"
    assert call.form["RecordingStatusCallback"].startswith(f"{settings.public_url}/webhooks/twilio/recording?")
    assert call.form["StatusCallback"].startswith(f"{settings.public_url}/webhooks/twilio/status?outbox=")
    call.answer()
    says = [element for element in call.twiml.iter("Say")]
    assert says[0].get("language") == "zh-CN"
    assert "录音" in says[0].text  # the recording-consent notice comes first
    gather = call.gather
    assert gather.get("input") == "dtmf speech"
    assert gather.get("language") == "zh-CN"
    assert gather.get("finishOnKey") == "#"
    assert gather.get("numDigits") == "1"
    assert "完全不会，请按1" in gather.find("Say").text
    assert "step=1" in gather.get("action")
    conversation = db.scalars(select(ConversationSession).where(ConversationSession.patient_id == patient.id)).one()
    assert conversation.call_sid == call.sid
    call.press("2")                       # q1 several days: 1
    call.speak("两个星期几乎每天")          # q2 nearly every day: 3
    call.speak("好几天")                   # q3 the label itself: 1
    call.press("1")                       # q4: 0
    call.speak("嗯，一半以上的天数吧")       # q5: 2
    for _ in range(4):                    # q6-q9: 0
        call.press("1")
    assert "最后一题" in call.says()
    call.press("2")                       # item 10
    assert call.twiml.find("Hangup") is not None
    assert "7" in call.says()
    saved = results(db, patient)
    assert [saved[f"phq9_q{n}"].value for n in range(1, 10)] == [1, 3, 1, 0, 2, 0, 0, 0, 0]
    assert saved["phq9_total"].value == 7
    assert db.scalars(select(Observation).where(Observation.patient_id == patient.id,
                                                Observation.code == "44261-6")).one().value == 7
    db.refresh(call.followup)
    assert call.followup.status == "completed"


def test_a_repeated_gather_delivery_is_processed_once_with_the_same_twiml(db, make_patient, place_call, twilio_post):
    patient = make_patient()
    call = place_call(patient)
    call.answer()
    action = call.gather.get("action")
    first = call.press("2")
    again = call._go(action, Digits="2")
    assert ElementTree.tostring(first) == ElementTree.tostring(again)
    assert list(results(db, patient)) == ["phq9_q1"]
    assert db.scalar(select(func.count()).select_from(InboundReceipt).where(
        InboundReceipt.provider_key == f"{call.sid}:1")) == 1


def test_an_invalid_key_is_asked_again(db, make_patient, place_call):
    patient = make_patient()
    call = place_call(patient)
    call.answer()
    call.press("7")
    assert call.gather.find("Say").text.startswith(INVALID)
    assert "step=2" in call.gather.get("action")
    assert results(db, patient) == {}


def test_without_recording_consent_there_is_no_record_parameter_and_no_recording_sentence(db, make_patient,
                                                                                        place_call):
    patient = make_patient()
    call = place_call(patient)
    assert "Record" not in call.form
    assert "RecordingStatusCallback" not in call.form
    call.answer()
    notice = call.twiml.find("Say").text
    assert "健康随访电话" in notice
    assert "录音" not in notice


def test_an_english_speaking_patient_hears_en_us(db, make_patient, place_call):
    patient = make_patient(language="en", name="Test Person")
    call = place_call(patient)
    call.answer()
    assert {say.get("language") for say in call.twiml.iter("Say")} == {"en-US"}
    assert "Little interest" in call.gather.find("Say").text


def test_a_number_is_keyed_in_ending_with_hash_and_free_text_is_recorded(db, make_patient, place_call, twilio_post,
                                                                          twilio_fake):
    patient = consenting(db, make_patient())
    call = place_call(patient, flow="satisfaction")
    call.answer()
    assert call.gather.get("finishOnKey") == "#"
    assert call.gather.get("numDigits") is None
    call.press("9#")  # Twilio leaves the "#" out; a stray one is tolerated
    record = call.twiml.find("Record")
    assert record is not None
    assert record.get("finishOnKey") == "#"
    callback = record.get("recordingStatusCallback")
    assert "purpose=answer:comment" in callback
    recording_sid, _url = twilio_fake.add_recording(call.sid)
    call.record(recording_sid)
    saved = results(db, patient)
    assert saved["nps"].value == 9
    assert recording_sid in saved["comment"].value
    assert call.twiml.find("Hangup") is not None
    query = urlsplit(callback).query
    assert recording_callback(twilio_post, call, recording_sid, query).status_code == 204
    row = db.scalars(select(Recording).where(Recording.provider_sid == recording_sid)).one()
    assert (row.purpose, row.session_id) == ("answer:comment", saved["comment"].session_id)


def test_free_text_without_recording_consent_is_taken_as_speech(db, make_patient, place_call):
    patient = make_patient()
    call = place_call(patient, flow="satisfaction")
    call.answer()
    call.press("10")
    assert call.twiml.find("Record") is None
    assert "speech" in call.gather.get("input")
    call.speak("护士很耐心")
    assert results(db, patient)["comment"].value == "护士很耐心"


# -- recordings -------------------------------------------------------------------------------------------
@pytest.fixture
def recording_job(twilio_services, twilio_runtime):
    return RecordingJob(twilio_services, twilio_runtime.db.unit_of_work)


def test_a_call_recording_is_fetched_stored_encrypted_and_deleted_at_twilio(db, make_patient, place_call, twilio_post,
                                                                            twilio_fake, recording_job,
                                                                            twilio_services):
    patient = consenting(db, make_patient())
    call = place_call(patient)
    call.answer()
    audio = wav_bytes(0.5)
    recording_sid, _url = twilio_fake.add_recording(call.sid, audio)
    query = urlsplit(call.form["RecordingStatusCallback"]).query
    assert recording_callback(twilio_post, call, recording_sid, query).status_code == 204
    assert recording_callback(twilio_post, call, recording_sid, query).status_code == 204  # a repeat
    row = db.scalars(select(Recording).where(Recording.patient_id == patient.id)).one()
    assert (row.status, row.call_sid, row.followup_id) == ("pending", call.sid, call.followup.id)
    assert recording_job.tick() == 1
    db.refresh(row)
    assert row.status == "deleted"
    assert row.stored_at is not None
    assert row.deleted_at_provider is not None
    gets = twilio_fake.requests_for("recording.get")
    deletes = twilio_fake.requests_for("recording.delete")
    assert [r.authorised for r in gets + deletes] == [True, True]
    assert twilio_fake.requests.index(gets[0]) < twilio_fake.requests.index(deletes[0])
    assert twilio_fake.deleted_recordings == [recording_sid]
    stored = get_encrypted(db, twilio_services.blob_store, owner_id=patient.id, key=row.blob_key)
    assert stored == audio
    assert audio not in twilio_services.blob_store.get(row.blob_key)  # sealed, not in clear
    assert (row.size_bytes, row.content_type, row.duration_seconds) == (len(audio), "audio/x-wav", 42)
    actions = set(db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == patient.id)))
    assert {"recording.received", "recording.store", "recording.provider_deleted"} <= actions
    assert recording_job.tick() == 0


def test_a_failed_download_and_a_failed_delete_are_retried(db, clock, make_patient, place_call, twilio_post,
                                                            twilio_fake, recording_job):
    patient = consenting(db, make_patient())
    call = place_call(patient)
    call.answer()
    recording_sid, _url = twilio_fake.add_recording(call.sid)
    recording_callback(twilio_post, call, recording_sid, urlsplit(call.form["RecordingStatusCallback"]).query)
    row = db.scalars(select(Recording).where(Recording.patient_id == patient.id)).one()
    twilio_fake.fail_next("recording.get", status=503)
    twilio_fake.fail_next("recording.delete", status=500)
    recording_job.tick()
    db.refresh(row)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at > clock.now()
    assert twilio_fake.requests_for("recording.delete") == []  # nothing is deleted before it is stored
    assert recording_job.tick() == 0  # backing off
    clock.advance(minutes=10)
    recording_job.tick()
    db.refresh(row)
    assert row.status == "stored"
    assert recording_sid in twilio_fake.recordings
    clock.advance(minutes=10)
    recording_job.tick()
    db.refresh(row)
    assert row.status == "deleted"
    assert twilio_fake.deleted_recordings == [recording_sid]


def test_a_recording_callback_for_an_unknown_call_is_404(db, twilio_post):
    response = twilio_post("/webhooks/twilio/recording", {
        "CallSid": "CA" + "0" * 32, "RecordingSid": "RE" + "0" * 32, "RecordingStatus": "completed"})
    assert response.status_code == 404
    assert db.scalar(select(func.count()).select_from(Recording)) == 0


# -- calls that go wrong ----------------------------------------------------------------------------------
def test_an_answering_machine_gets_a_hang_up_and_the_follow_up_is_retried(db, clock, make_patient, place_call,
                                                                         twilio_post):
    patient = make_patient()
    call = place_call(patient)
    call.answer(answered_by="machine_start")
    assert [element.tag for element in call.twiml] == ["Hangup"]
    db.refresh(call.followup)
    assert (call.followup.status, call.followup.next_action_at) == ("scheduled", clock.now() + timedelta(minutes=30))
    row = db.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)).one()
    assert (row.status, row.error_code) == ("failed", "machine")
    response = twilio_post(f"/webhooks/twilio/status?outbox={row.id}", {
        "CallSid": call.sid, "CallStatus": "completed", "AnsweredBy": "machine_start"})
    assert response.status_code == 204
    db.refresh(call.followup)
    assert call.followup.status == "scheduled"  # the same failure, told twice, counts once


def test_silence_is_asked_once_more_then_a_goodbye_and_the_follow_up_stays_open(db, clock, make_patient,
                                                                                place_call):
    patient = make_patient()
    call = place_call(patient)
    call.answer()
    gathers = call.twiml.findall("Gather")
    assert len(gathers) == 2  # the question, then once more
    assert "没有听到" in gathers[1].find("Say").text
    call.stay_silent()
    assert "稍后再联系" in call.says()
    assert call.twiml.find("Hangup") is not None
    db.refresh(call.followup)
    assert call.followup.status == "scheduled"
    assert call.followup.next_action_at > clock.now()
    conversation = db.scalars(select(ConversationSession).where(ConversationSession.patient_id == patient.id)).one()
    assert (conversation.status, conversation.end_status) == ("ended", "no_input")


def test_a_caller_who_hangs_up_mid_way_is_called_again(db, clock, make_patient, place_call, twilio_post,
                                                       twilio_services, dispatch, twilio_fake):
    patient = make_patient()
    call = place_call(patient)
    call.answer()
    call.press("2")
    row = db.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)).one()
    response = twilio_post(f"/webhooks/twilio/status?outbox={row.id}", {
        "CallSid": call.sid, "CallStatus": "completed", "AnsweredBy": "human", "CallDuration": "31"})
    assert response.status_code == 204
    db.refresh(call.followup)
    db.refresh(row)
    assert row.status == "delivered"
    assert call.followup.status == "scheduled"
    clock.advance(minutes=31)
    due_followups(db, twilio_services)
    db.flush()
    dispatch()
    assert len(twilio_fake.calls) == 2


@pytest.mark.parametrize(("target", "expected"), [
    ("/webhooks/twilio/voice/gather?session=not-a-uuid&step=1", 400),
    ("/webhooks/twilio/voice/gather?step=1", 400),
    ("/webhooks/twilio/voice/gather?session=00000000-0000-0000-0000-000000000000&step=x", 400),
    ("/webhooks/twilio/voice/gather?session=00000000-0000-0000-0000-000000000000&step=1", 404),
    ("/webhooks/twilio/voice?session=00000000-0000-0000-0000-000000000000", 404),
])
def test_bad_voice_requests_get_a_clear_4xx(db, twilio_post, target, expected):
    response = twilio_post(target, {"CallSid": "CA" + "1" * 32, "From": TWILIO_FROM, "To": "+8613800000001",
                                    "Direction": "outbound-api", "Digits": "1"})
    assert response.status_code == expected
    assert db.scalar(select(func.count()).select_from(InboundReceipt)) == 0


def test_keys_that_no_keypad_has_are_400(db, make_patient, place_call):
    patient = make_patient()
    call = place_call(patient)
    call.answer()
    action = call.gather.get("action").removeprefix(call.public)
    assert call.post(action, call._params(Digits="2<script>")).status_code == 400
    assert results(db, patient) == {}


def test_a_forged_gather_is_403_and_changes_nothing(db, make_patient, place_call, twilio_post):
    patient = make_patient()
    call = place_call(patient)
    call.answer()
    action = call.gather.get("action").removeprefix(call.public)
    response = twilio_post(action, call._params(Digits="4"), signature="Zm9yZ2Vk")
    assert response.status_code == 403
    assert results(db, patient) == {}


def test_a_gather_from_another_call_is_refused(db, make_patient, place_call, twilio_post):
    patient = make_patient()
    call = place_call(patient)
    call.answer()
    action = call.gather.get("action").removeprefix(call.public)
    response = twilio_post(action, {**call._params(Digits="4"), "CallSid": "CA" + "9" * 32})
    assert response.status_code == 404
    assert results(db, patient) == {}


def test_a_patient_who_calls_in_takes_up_the_invitation_waiting_for_them(db, clock, make_patient, twilio_services,
                                                                         twilio_post):
    patient = make_patient()
    schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), channel_order=["sms"], actor=TEST_ACTOR)
    db.flush()
    due_followups(db, twilio_services)
    db.flush()
    sid = "CA" + "2" * 32
    response = twilio_post("/webhooks/twilio/voice", {"CallSid": sid, "From": patient.phone, "To": TWILIO_FROM,
                                                      "Direction": "inbound"})
    assert response.status_code == 200
    twiml = ElementTree.fromstring(response.data)
    assert "做事时提不起劲" in twiml.find("Gather").find("Say").text
    session_id = parse_qs(urlsplit(twiml.find("Gather").get("action")).query)["session"][0]
    conversation = db.get(ConversationSession, uuid.UUID(session_id))
    assert (conversation.channel, conversation.call_sid) == ("voice", sid)
    followup = db.scalars(select(FollowUp).where(FollowUp.patient_id == patient.id)).one()
    assert followup.status == "in_progress"


def test_an_unknown_caller_hears_that_the_number_is_not_registered(db, twilio_post):
    response = twilio_post("/webhooks/twilio/voice", {"CallSid": "CA" + "3" * 32, "From": "+8613911112222",
                                                      "To": TWILIO_FROM, "Direction": "inbound",
                                                      "AccountSid": TWILIO_ACCOUNT_SID})
    twiml = ElementTree.fromstring(response.data)
    assert "还没有" in twiml.find("Say").text
    assert twiml.find("Hangup") is not None


def test_saying_stop_on_a_call_turns_calls_off_and_the_follow_up_moves_on(db, clock, make_patient, twilio_post,
                                                                           twilio_services, settings, twilio_fake,
                                                                           dispatch):
    patient = make_patient()
    followup = schedule_followup(db, patient, flow_id="phq9", due_at=clock.now(), channel_order=["voice", "sms"],
                                 actor=TEST_ACTOR)
    db.flush()
    due_followups(db, twilio_services)
    db.flush()
    dispatch()
    call = Call(twilio_post, settings, twilio_fake, to=patient.phone)
    call.answer()
    call.speak("退订")
    assert "退订" in call.says()
    assert call.twiml.find("Hangup") is not None
    db.refresh(patient)
    db.refresh(followup)
    assert patient.consent_for("voice").opted_out
    assert (followup.status, followup.channel_index) == ("scheduled", 1)
    due_followups(db, twilio_services)
    db.flush()
    dispatch()
    assert len(twilio_fake.calls) == 1
    assert len(twilio_fake.bodies_to(patient.phone)) == 1


def test_a_caller_already_answering_by_message_is_sent_back_to_the_messages(db, make_patient, twilio_sms,
                                                                            twilio_post):
    patient = make_patient()
    twilio_sms(patient.phone, "问卷")
    response = twilio_post("/webhooks/twilio/voice", {"CallSid": "CA" + "4" * 32, "From": patient.phone,
                                                      "To": TWILIO_FROM, "Direction": "inbound"})
    twiml = ElementTree.fromstring(response.data)
    assert "文字消息" in twiml.find("Say").text  # worded for every channel (tests/bot/test_texts.py)
    assert twiml.find("Gather") is None
    conversation = db.scalars(select(ConversationSession).where(ConversationSession.patient_id == patient.id)).one()
    assert (conversation.channel, conversation.call_sid, conversation.status) == ("sms", None, "waiting")
