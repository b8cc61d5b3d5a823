"""bot/channels/twilio_rest.py: what Twilio's error answers and transport failures mean to the dispatcher, and
the account's callback and media URLs."""

from __future__ import annotations

import pytest
import requests
import urllib3.exceptions
from twilio.base.exceptions import TwilioRestException

from bot.channels.base import ChannelEnvironment
from bot.channels.twilio_rest import TwilioAccount, rest_failure, transport_failure
from tests.webhooks.conftest import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM

URI = f"/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json"


@pytest.mark.parametrize(("status", "code", "outcome", "error_code", "opted_out"), [
    (400, 21610, "failed", "21610", True),    # STOP at Twilio
    (400, 21211, "failed", "21211", False),   # not a valid number
    (400, 21614, "failed", "21614", False),   # not a mobile number
    (400, 21602, "failed", "21602", False),   # any other refusal: permanent too
    (429, 20429, "retry", "20429", False),    # too many requests
    (500, None, "retry", "500", False),
    (503, None, "retry", "503", False),
    (401, 20003, "retry", "20003", False),    # our credentials, for now: nothing was created
])
def test_an_error_answer_is_permanent_unless_twilio_is_busy_broken_or_refusing_us(status, code, outcome,
                                                                                   error_code, opted_out):
    result = rest_failure(TwilioRestException(status, URI, "refused", code=code, method="POST"))
    assert (result.outcome, result.error_code, result.opted_out) == (outcome, error_code, opted_out)


def test_a_connection_that_never_opened_is_retried():
    never = requests.exceptions.ConnectionError(urllib3.exceptions.NewConnectionError(None, "refused"))
    assert (transport_failure(never).outcome, transport_failure(never).error_code) == ("retry", "connect")
    assert transport_failure(requests.exceptions.ConnectTimeout()).outcome == "retry"


@pytest.mark.parametrize("error", [requests.exceptions.ReadTimeout(),
                                   requests.exceptions.ConnectionError("connection reset after the request left")])
def test_a_failure_after_the_request_left_is_unknown(error):
    assert (transport_failure(error).outcome, transport_failure(error).error_code) == ("unknown", "timeout")


def test_callbacks_and_recording_media_are_built_from_our_own_bases(runtime, clock):
    from careloop.bot_runtime import bot_config

    environment = ChannelEnvironment(config=bot_config(runtime), clock=clock, open_session=runtime.db.sessions,
                                     settings={"twilio_account_sid": TWILIO_ACCOUNT_SID,
                                               "twilio_auth_token": TWILIO_AUTH_TOKEN,
                                               "twilio_from_number": TWILIO_FROM,
                                               "twilio_api_base": "https://twilio.example.test/",
                                               "public_url": "https://clinic.example.test/"})
    account = TwilioAccount.from_environment(environment)
    assert account.callback("/webhooks/twilio/status", outbox="row-1") == \
        "https://clinic.example.test/webhooks/twilio/status?outbox=row-1"
    assert account.callback("/webhooks/twilio/voice") == "https://clinic.example.test/webhooks/twilio/voice"
    assert account.recording_media_url("RE" + "a" * 32) == \
        f"https://twilio.example.test/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Recordings/RE{'a' * 32}.wav"
