"""bot/channels/voice/adapter.py: follow-up calls through Twilio's ``calls.create`` (never placed recording), the
call's recording started and stopped through the Calls Recordings API, and reconciling an unknown call;
counted at the fake Twilio API."""

from __future__ import annotations

import pytest

from bot.channels.voice import RecordingControlError
from bot.channels.voice.adapter import CALL_EVENTS, RING_SECONDS
from bot.conversations import begin
from tests.bot.channels.conftest import outgoing
from tests.conftest import TEST_ACTOR
from tests.webhooks.conftest import TWILIO_FROM

NUMBER = "+8613800000002"


@pytest.fixture
def voice(twilio_services):
    return twilio_services.adapters["voice"]


@pytest.fixture
def conversation(db, make_patient, twilio_services):
    """An open phone conversation waiting for its call."""
    turn = begin(db, twilio_services, make_patient(phone=NUMBER), "phq9", channel="voice", actor=TEST_ACTOR)
    db.flush()
    return turn.conversation


def call_for(conversation, **options):
    return outgoing("voice", NUMBER, kind="call", payload={"session_id": str(conversation.id), **options})


def test_a_call_asks_for_our_voice_webhook_and_status_reports_and_is_never_placed_recording(
        db, voice, twilio_fake, conversation, settings):
    message = call_for(conversation, record=True)
    result = voice.send(message)
    [call] = twilio_fake.placed_calls()
    form = call["_form"]
    assert (call["to"], call["from"], result.outcome, result.provider_id) == (NUMBER, TWILIO_FROM, "sent", call["sid"])
    assert form["Url"] == f"{settings.public_url}/webhooks/twilio/voice?session={conversation.id}"
    assert form["StatusCallback"] == f"{settings.public_url}/webhooks/twilio/status?outbox={message.id}"
    assert form["StatusCallbackEvent"] == CALL_EVENTS
    assert (form["MachineDetection"], form["Timeout"]) == ("Enable", str(RING_SECONDS))
    assert "Record" not in form  # consent is only known once the patient has heard the notice
    db.refresh(conversation)
    assert conversation.call_sid == call["sid"]


def test_a_row_that_is_no_call_fails_and_nothing_reaches_twilio(voice, twilio_fake):
    result = voice.send(outgoing("voice", NUMBER, kind="text"))
    assert (result.outcome, result.error_code) == ("failed", "not_a_call")
    assert twilio_fake.requests == []


def test_a_recording_starts_on_the_call_with_our_callback(voice, twilio_fake, conversation, settings):
    call_sid = voice.send(call_for(conversation)).provider_id
    recording_sid = voice.start_recording(call_sid, session_id=str(conversation.id))
    (started,) = twilio_fake.recordings_of(call_sid).items()
    assert started[0] == recording_sid
    form = started[1]["form"]
    assert form["RecordingStatusCallback"] == \
        f"{settings.public_url}/webhooks/twilio/recording?session={conversation.id}&purpose=call"
    assert (form["RecordingChannels"], form["RecordingStatusCallbackEvent"]) == ("mono", "completed")


def test_a_recording_cannot_start_on_a_call_that_is_over(voice, twilio_fake, conversation):
    call_sid = voice.send(call_for(conversation)).provider_id
    twilio_fake.end_call(call_sid)
    with pytest.raises(RecordingControlError, match="start: twilio 400"):
        voice.start_recording(call_sid, session_id=str(conversation.id))


def test_a_running_recording_stops_and_one_twilio_no_longer_has_counts_as_stopped(voice, twilio_fake,
                                                                                  conversation):
    call_sid = voice.send(call_for(conversation)).provider_id
    recording_sid = voice.start_recording(call_sid, session_id=str(conversation.id))
    voice.stop_recording(call_sid, recording_sid)
    assert twilio_fake.recordings_of(call_sid)[recording_sid]["status"] == "completed"
    voice.stop_recording(call_sid, "RE" + "0" * 32)  # 404: not (or no longer) there


def test_a_recording_that_will_not_stop_is_told(voice, twilio_fake, conversation):
    call_sid = voice.send(call_for(conversation)).provider_id
    recording_sid = voice.start_recording(call_sid, session_id=str(conversation.id))
    twilio_fake.fail_next("call.recording.update", status=500)
    with pytest.raises(RecordingControlError, match="stop: twilio 500"):
        voice.stop_recording(call_sid, recording_sid)


def test_a_call_twilio_placed_is_found_again_and_kept_on_the_conversation(db, voice, twilio_fake, conversation,
                                                                          clock):
    started = clock.now()
    voice.send(outgoing("voice", NUMBER, kind="call", payload={}))  # placed; its answer lost (no session to note)
    result = voice.reconcile(outgoing("voice", NUMBER, kind="call", payload={"session_id": str(conversation.id)},
                                      sending_started_at=started))
    [call] = twilio_fake.placed_calls()
    assert (result.outcome, result.provider_id) == ("sent", call["sid"])
    assert len(twilio_fake.requests_for("calls.create")) == 1
    db.refresh(conversation)
    assert conversation.call_sid == call["sid"]


def test_no_call_at_twilio_is_placed_now_and_a_failed_look_up_asks_again_later(voice, twilio_fake, conversation,
                                                                               clock):
    message = outgoing("voice", NUMBER, kind="call", payload={"session_id": str(conversation.id)},
                       sending_started_at=clock.now())
    assert (voice.reconcile(message).outcome, voice.reconcile(message).error_code) == ("retry", "not_found")
    twilio_fake.fail_next("calls.list", status=500)
    assert voice.reconcile(message).outcome == "unknown"
