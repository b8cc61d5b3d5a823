"""Follow-up calls driven through the TwiML endpoints as Twilio drives them, and their recordings.

The call is placed through the real client (the fake sees ``calls.create``), then the test plays
Twilio: it posts the answered call to the URL we gave, follows each ``<Gather>``'s action with
keypad digits or a speech transcript, and sends the recording callbacks. A call first settles
recording consent (prompt 0) unless it stands from before; :meth:`Call.begin` answers and refuses.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from defusedxml import ElementTree
from sqlalchemy import func, select

from bot.consent import recording_notice_version
from bot.followups import due_followups
from bot.models import ConversationSession, InboundReceipt, OutboxMessage
from bot.recordings import RecordingJob
from bot.texts import TEXTS
from care.blobs import get_encrypted
from care.consents import consent_history, record_consent
from care.followups import schedule_followup
from care.models import ConsentEntry, FlowResult, FollowUp, Observation, Recording
from security.audit import AuditEntry
from tests.conftest import TEST_ACTOR
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

    def begin(self):
        """Answer, and refuse recording (keypad 2): the flow's first question comes next."""
        self.answer()
        assert "step=0" in self.gather.get("action")
        return self.press("2")

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
    """The patient told staff they agree to their calls being recorded (written to the consent ledger)."""
    record_consent(db, patient, channel="voice", purpose="call_recording", granted=True,
                   wording_version=recording_notice_version(), source="staff", actor=TEST_ACTOR)
    db.flush()
    return patient


def ledger(db, patient):
    return [(row.granted, row.source) for row in consent_history(db, patient.id, channel="voice",
                                                                 purpose="call_recording")]


def recording_callback(twilio_post, call, recording_sid, query):
    return twilio_post(f"/webhooks/twilio/recording?{query}", {
        "CallSid": call.sid, "RecordingSid": recording_sid, "RecordingStatus": "completed",
        "RecordingDuration": "42", "RecordingUrl": f"{call.fake.base_url}/somewhere/{recording_sid}",
        "RecordingChannels": "1", "RecordingSource": "OutboundAPI"})


def callback_query(fake, call, recording_sid):
    """The query of the recording callback URL we gave Twilio when we started ``recording_sid``."""
    return urlsplit(fake.recordings_of(call.sid)[recording_sid]["form"]["RecordingStatusCallback"]).query


def results(db, patient):
    return {row.name: row for row in db.scalars(select(FlowResult).where(FlowResult.patient_id == patient.id))}


def test_phq9_over_a_call_by_keypad_and_speech(db, make_patient, place_call, settings):
    patient = consenting(db, make_patient())
    call = place_call(patient)
    assert call.form["MachineDetection"] == "Enable"
    assert "Record" not in call.form  # never placed recording: consent is settled once the patient answers
    assert call.form["StatusCallback"].startswith(f"{settings.public_url}/webhooks/twilio/status?outbox=")
    call.answer()
    says = [element for element in call.twiml.iter("Say")]
    assert says[0].get("language") == "zh-CN"
    assert "这次通话会录音" in says[0].text  # consent stands: the call is recorded ...
    assert "停止录音" in says[0].text  # ... and the notice says how to stop it
    [recording] = call.fake.recordings_of(call.sid).values()
    assert recording["status"] == "in-progress"
    assert recording["form"]["RecordingStatusCallback"].startswith(
        f"{settings.public_url}/webhooks/twilio/recording?session=")
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
    call.begin()
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
    call.begin()
    call.press("7")
    assert call.gather.find("Say").text.startswith(INVALID)
    assert "step=2" in call.gather.get("action")
    assert results(db, patient) == {}


def test_without_recording_consent_the_call_asks_for_it_first_and_nothing_is_recorded_meanwhile(
        db, make_patient, place_call, twilio_fake):
    patient = make_patient()
    call = place_call(patient)
    assert "Record" not in call.form
    assert "RecordingStatusCallback" not in call.form
    call.answer()
    greeting = call.twiml.find("Say").text
    assert "健康随访电话" in greeting
    assert "录音" not in greeting
    gather = call.gather
    assert "step=0" in gather.get("action")
    assert (gather.get("input"), gather.get("numDigits")) == ("dtmf speech", "1")
    assert "同意录音请按1" in gather.find("Say").text
    assert "不同意请按2" in gather.find("Say").text
    assert "step=0&silent=1" in call.twiml.find("Redirect").text
    assert twilio_fake.requests_for("call.recording.create") == []
    assert results(db, patient) == {}


def test_an_english_speaking_patient_hears_en_us(db, make_patient, place_call):
    patient = make_patient(language="en", name="Test Person")
    call = place_call(patient)
    call.answer()
    assert {say.get("language") for say in call.twiml.iter("Say")} == {"en-US"}
    assert "record this call" in call.gather.find("Say").text
    call.speak("No.")
    assert {say.get("language") for say in call.twiml.iter("Say")} == {"en-US"}
    assert "not recorded" in call.says()
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
    assert record.get("finishOnKey") == "#*"  # the star key stops the recording there too
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
    call.begin()
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
    [recording_sid] = twilio_fake.recordings_of(call.sid)
    assert twilio_fake.end_call(call.sid) == [recording_sid]
    audio = twilio_fake.recordings[recording_sid]
    query = urlsplit(twilio_fake.recordings_of(call.sid)[recording_sid]["form"]["RecordingStatusCallback"]).query
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
    assert {"recording.started", "recording.received", "recording.store", "recording.provider_deleted"} <= actions
    assert recording_job.tick() == 0


def test_a_failed_download_and_a_failed_delete_are_retried(db, clock, make_patient, place_call, twilio_post,
                                                            twilio_fake, recording_job):
    patient = consenting(db, make_patient())
    call = place_call(patient)
    call.answer()
    [recording_sid] = twilio_fake.end_call(call.sid)
    recording_callback(twilio_post, call, recording_sid, callback_query(twilio_fake, call, recording_sid))
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
    call.begin()
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
    call.begin()
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
                                                                         twilio_post, settings):
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
    assert "录音" in twiml.find("Gather").find("Say").text  # may we record? first
    action = twiml.find("Gather").get("action").removeprefix(settings.public_url)
    response = twilio_post(action, {"CallSid": sid, "From": patient.phone, "To": TWILIO_FROM,
                                    "Direction": "inbound", "Digits": "2"})
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


# -- recording consent -----------------------------------------------------------------------------------
GRANTED = {"zh": "现在开始录音", "en": "This call is now recorded"}
REFUSED = {"zh": "这次通话不录音", "en": "this call is not recorded"}
STOPPED = {"zh": "录音已经停止", "en": "the recording has stopped"}
FIRST_QUESTION = {"zh": "做事时提不起劲", "en": "Little interest"}


def consent_rows(db, patient):
    return list(db.scalars(select(ConsentEntry).where(ConsentEntry.patient_id == patient.id)
                           .order_by(ConsentEntry.seq)))


def audited(db, patient, action):
    return list(db.scalars(select(AuditEntry.resource_id).where(AuditEntry.patient_id == patient.id,
                                                                AuditEntry.action == action)))


def give(call, how, answer):
    if how == "silent":
        return call.stay_silent()
    return call.press(answer) if how == "press" else call.speak(answer)


@pytest.mark.parametrize(("lang", "how", "answer", "source"), [
    ("zh", "press", "1", "voice_keypad"),
    ("zh", "speak", "同意", "voice_speech"),
    ("en", "press", "1", "voice_keypad"),
    ("en", "speak", "Yes.", "voice_speech"),
])
def test_a_consented_call_is_recorded_whole_and_the_recording_is_stored_encrypted(
        db, clock, make_patient, place_call, twilio_post, twilio_fake, recording_job, twilio_services, settings,
        lang, how, answer, source):
    patient = make_patient(language=lang)
    call = place_call(patient)
    call.answer()
    assert twilio_fake.requests_for("call.recording.create") == []  # nothing is recorded before the answer
    give(call, how, answer)
    assert GRANTED[lang] in call.says()
    assert FIRST_QUESTION[lang] in call.gather.find("Say").text
    assert "step=1" in call.gather.get("action")
    [(recording_sid, started)] = twilio_fake.recordings_of(call.sid).items()
    assert started["status"] == "in-progress"
    assert started["form"]["RecordingStatusCallbackEvent"] == "completed"
    [entry] = consent_rows(db, patient)
    assert (entry.channel, entry.purpose, entry.granted, entry.source, entry.source_ref) == (
        "voice", "call_recording", True, source, call.sid)
    assert (entry.wording_version, entry.recorded_at) == (recording_notice_version(), clock.now())
    assert audited(db, patient, "consent.granted") == [str(entry.id)]
    db.refresh(patient)
    assert patient.consent_for("voice").recording_consent  # the cache follows the ledger
    call.press("2")  # the patient answers one question, then hangs up
    assert twilio_fake.end_call(call.sid) == [recording_sid]
    audio = twilio_fake.recordings[recording_sid]
    assert recording_callback(twilio_post, call, recording_sid,
                              callback_query(twilio_fake, call, recording_sid)).status_code == 204
    assert recording_job.tick() == 1
    row = db.scalars(select(Recording).where(Recording.patient_id == patient.id)).one()
    db.refresh(row)
    assert (row.purpose, row.status, row.call_sid, row.followup_id) == ("call", "deleted", call.sid, call.followup.id)
    assert get_encrypted(db, twilio_services.blob_store, owner_id=patient.id, key=row.blob_key) == audio
    assert twilio_fake.deleted_recordings == [recording_sid]


@pytest.mark.parametrize(("lang", "how", "answer", "written"), [
    ("zh", "press", "2", [(False, "voice_keypad")]),
    ("zh", "speak", "不同意", [(False, "voice_speech")]),
    ("en", "speak", "No.", [(False, "voice_speech")]),
    ("zh", "press", "3", [(False, "voice_keypad")]),            # any other key refuses
    ("en", "speak", "maybe later", [(False, "voice_speech")]),  # so do other words
    ("zh", "silent", None, []),                                 # and silence, which is no answer: nothing written
])
def test_a_refused_call_is_never_recorded(db, make_patient, place_call, twilio_fake, lang, how, answer, written):
    patient = make_patient(language=lang)
    call = place_call(patient)
    call.answer()
    give(call, how, answer)
    assert ("没有听到" if how == "silent" else REFUSED[lang]) in call.says()
    assert FIRST_QUESTION[lang] in call.gather.find("Say").text  # the flow goes on, unrecorded
    call.press("2")
    assert twilio_fake.end_call(call.sid) == []
    assert "Record" not in call.form
    assert twilio_fake.requests_for("call.recording.create") == []
    assert twilio_fake.recordings_of(call.sid) == {}
    assert db.scalar(select(func.count()).select_from(Recording)) == 0
    assert ledger(db, patient) == written
    assert len(audited(db, patient, "consent.withdrawn")) == len(written)
    assert list(results(db, patient)) == ["phq9_q1"]


@pytest.mark.parametrize(("lang", "how", "words", "source"), [
    ("zh", "speak", "停止录音。", "voice_speech"),
    ("en", "speak", "Stop recording.", "voice_speech"),
    ("zh", "press", "*", "voice_keypad"),
])
def test_withdrawing_mid_call_stops_the_recording_at_once_and_asks_the_question_again(
        db, make_patient, place_call, twilio_post, twilio_fake, recording_job, twilio_services, lang, how, words,
        source):
    patient = make_patient(language=lang)
    call = place_call(patient)
    call.answer()
    call.press("1")
    [recording_sid] = twilio_fake.recordings_of(call.sid)
    call.press("2")  # q1
    question = call.gather.find("Say").text
    assert "step=2" in call.gather.get("action")
    give(call, how, words)
    assert STOPPED[lang] in call.says()
    assert call.gather.find("Say").text == question  # the same question, as the next prompt
    assert "step=3" in call.gather.get("action")
    [stop] = twilio_fake.requests_for("call.recording.update")
    assert stop.path.endswith(f"/Calls/{call.sid}/Recordings/{recording_sid}.json")
    assert stop.value("Status") == "stopped"
    assert twilio_fake.recordings_of(call.sid)[recording_sid]["status"] == "completed"
    assert ledger(db, patient) == [(True, "voice_keypad"), (False, source)]
    [withdrawal] = consent_rows(db, patient)[1:]
    assert withdrawal.source_ref == call.sid
    assert audited(db, patient, "consent.withdrawn") == [str(withdrawal.id)]
    assert len(audited(db, patient, "recording.stopped")) == 1
    db.refresh(patient)
    assert not patient.consent_for("voice").recording_consent
    call.press("1")  # q2, answered after all
    assert {"phq9_q1", "phq9_q2"} <= set(results(db, patient))
    assert twilio_fake.end_call(call.sid) == []  # nothing was recording any more
    assert len(twilio_fake.requests_for("call.recording.create")) == 1
    # What was recorded while consent stood is kept, as any recording is.
    audio = twilio_fake.recordings[recording_sid]
    recording_callback(twilio_post, call, recording_sid, callback_query(twilio_fake, call, recording_sid))
    recording_job.tick()
    row = db.scalars(select(Recording).where(Recording.provider_sid == recording_sid)).one()
    assert get_encrypted(db, twilio_services.blob_store, owner_id=patient.id, key=row.blob_key) == audio


def test_the_star_key_ends_a_recorded_answer_and_stops_the_recording(db, make_patient, place_call, twilio_fake):
    patient = consenting(db, make_patient())
    call = place_call(patient, flow="satisfaction")
    call.answer()
    call.press("9#")
    record = call.twiml.find("Record")
    answer_sid, _url = twilio_fake.add_recording(call.sid)
    call._go(record.get("action"), RecordingSid=answer_sid, RecordingDuration="3", Digits="*")
    assert STOPPED["zh"] in call.says()
    assert call.twiml.find("Record") is None  # the comment is asked again, taken as speech now
    assert "speech" in call.gather.get("input")
    assert twilio_fake.requests_for("call.recording.update")[0].value("Status") == "stopped"
    call.speak("护士很耐心")
    assert results(db, patient)["comment"].value == "护士很耐心"
    assert ledger(db, patient) == [(True, "staff"), (False, "voice_keypad")]


@pytest.fixture
def call_again(db, clock, twilio_post, twilio_services, dispatch, twilio_fake, settings):
    """The patient hangs up mid-way through ``call``; the follow-up rings them again half an hour later."""

    def again(call):
        row = db.scalars(select(OutboxMessage).where(OutboxMessage.provider_id == call.sid)).one()
        twilio_fake.end_call(call.sid)
        response = twilio_post(f"/webhooks/twilio/status?outbox={row.id}", {
            "CallSid": call.sid, "CallStatus": "completed", "AnsweredBy": "human", "CallDuration": "31"})
        assert response.status_code == 204
        clock.advance(minutes=31)
        due_followups(db, twilio_services)
        db.flush()
        dispatch()
        next_call = Call(twilio_post, settings, twilio_fake, to=call.to)
        assert next_call.sid != call.sid
        return next_call

    return again


def test_consent_given_on_one_call_stands_for_the_next(db, make_patient, place_call, call_again, twilio_fake):
    patient = make_patient()
    first = place_call(patient)
    first.answer()
    first.speak("同意")
    first.press("2")
    second = call_again(first)
    assert "Record" not in second.form
    second.answer()
    assert "按照您之前的同意" in second.says()
    assert "停止录音" in second.says()
    assert "step=1" in second.gather.get("action")  # not asked again
    assert [rec["status"] for rec in twilio_fake.recordings_of(second.sid).values()] == ["in-progress"]
    assert ledger(db, patient) == [(True, "voice_speech")]


def test_after_a_withdrawal_the_next_call_asks_again(db, make_patient, place_call, call_again, twilio_fake):
    patient = consenting(db, make_patient())
    first = place_call(patient)
    first.answer()
    assert "step=1" in first.gather.get("action")
    first.press("*")
    assert ledger(db, patient) == [(True, "staff"), (False, "voice_keypad")]
    second = call_again(first)
    second.answer()
    assert "step=0" in second.gather.get("action")
    assert twilio_fake.recordings_of(second.sid) == {}


def test_stop_recording_when_nothing_records_says_so_and_writes_nothing(db, make_patient, place_call, twilio_fake):
    patient = make_patient()
    call = place_call(patient)
    call.begin()
    question = call.gather.find("Say").text
    call.speak("停止录音")
    assert "这次通话没有录音" in call.says()
    assert call.gather.find("Say").text == question
    assert twilio_fake.requests_for("call.recording.update") == []
    assert ledger(db, patient) == [(False, "voice_keypad")]


def test_a_recording_twilio_cannot_start_leaves_the_call_unrecorded(db, make_patient, place_call, twilio_fake):
    patient = make_patient()
    call = place_call(patient)
    call.answer()
    twilio_fake.fail_next("call.recording.create", status=500)
    call.press("1")
    assert "暂时无法录音" in call.says()
    assert FIRST_QUESTION["zh"] in call.gather.find("Say").text
    assert db.scalar(select(func.count()).select_from(Recording)) == 0
    assert ledger(db, patient) == [(True, "voice_keypad")]  # the patient did agree


def test_a_recording_twilio_cannot_stop_ends_the_call(db, clock, make_patient, place_call, twilio_fake):
    patient = consenting(db, make_patient())
    call = place_call(patient)
    call.answer()
    twilio_fake.fail_next("call.recording.update", status=500)
    call.speak("停止录音")
    assert "录音没能停止" in call.says()
    assert call.twiml.find("Hangup") is not None
    assert call.twiml.find("Gather") is None
    assert ledger(db, patient) == [(True, "staff"), (False, "voice_speech")]
    db.refresh(call.followup)
    assert call.followup.status == "scheduled"  # called again later
    assert call.followup.next_action_at > clock.now()


def test_the_notice_version_follows_its_wording(monkeypatch):
    before = recording_notice_version()
    assert before == recording_notice_version()
    monkeypatch.setitem(TEXTS, "voice_recording_ask", {"zh": "可以录音吗？", "en": "May we record?"})
    assert recording_notice_version() != before


def test_a_repeated_consent_answer_is_written_and_started_once(db, make_patient, place_call, twilio_fake):
    patient = make_patient()
    call = place_call(patient)
    call.answer()
    action = call.gather.get("action")
    first = call.press("1")
    again = call._go(action, Digits="1")
    assert ElementTree.tostring(first) == ElementTree.tostring(again)
    assert ledger(db, patient) == [(True, "voice_keypad")]
    assert len(twilio_fake.requests_for("call.recording.create")) == 1


@pytest.mark.parametrize(("withdrawn", "wait"), [(False, {"hours": 4, "minutes": 11}),
                                                 (True, {"minutes": 11})])
def test_a_recording_whose_callback_never_came_is_stored_all_the_same(db, clock, make_patient, place_call,
                                                                       twilio_fake, recording_job, twilio_services,
                                                                       withdrawn, wait):
    patient = consenting(db, make_patient())
    call = place_call(patient)
    call.answer()
    if withdrawn:
        call.press("*")
    [recording_sid] = twilio_fake.recordings_of(call.sid)
    twilio_fake.end_call(call.sid)
    audio = twilio_fake.recordings[recording_sid]
    assert recording_job.tick() == 0  # the callback may still come
    clock.advance(**wait)
    assert recording_job.tick() == 1
    row = db.scalars(select(Recording).where(Recording.provider_sid == recording_sid)).one()
    db.refresh(row)
    assert row.status == "deleted"
    assert get_encrypted(db, twilio_services.blob_store, owner_id=patient.id, key=row.blob_key) == audio
