"""The flow matrix: every scripted run of every library flow, over every channel that can carry it, to its end.

Each run starts the way a follow-up starts in the product (a due follow-up invites the patient on
the channel; on a call, the dispatcher rings them) and goes on through the channel's real entry
point: the console router, the WeChat webhook in safe mode (signed and encrypted as WeChat sends),
the Twilio SMS webhook (signed), and the TwiML voice endpoints (keypad digits and speech). At the end
the record must hold what the script expects, and every reply must be one the channel can carry.
The suite runs this file on SQLite and again on PostgreSQL; the scripts are in flows/library/scripts.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from defusedxml import ElementTree
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import DEFAULT_RATE_LIMITS
from bot.followups import due_followups
from bot.messages import InboundMessage
from bot.models import ConversationSession
from bot.router import handle_inbound
from care.assessments import profile_facts
from care.followups import schedule_followup
from care.models import FollowUp, Patient, StaffTask
from care.observations import RED_FLAG_TASK, latest_values, record_observation
from care.profiles import set_profile_field
from care.results import results_of
from care.tags import add_tag, tags_of
from careloop.bot_runtime import BotRuntime, bot_for
from careloop.db import Database
from careloop.runtime import Runtime
from careloop.settings import Settings
from flows.codes import SHORT_CODES
from security.clock import FixedClock
from security.keys import KeyRing
from tests.conftest import TEST_ACTOR, flask_app_for
from tests.fakes.twilio_server import FakeTwilio
from tests.fakes.wechat_server import FakeWeChat, WeChatPeer
from tests.flows.scripts import Run, all_runs
from tests.webhooks.conftest import (
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    TWILIO_FAST,
    TWILIO_FROM,
    WECHAT_AES_KEY,
    WECHAT_APPID,
    WECHAT_SECRET,
    WECHAT_TEMPLATE_ID,
    WECHAT_TOKEN,
    twilio_signature,
)

WECHAT_TEXT_BYTES = 2048  # WeChat's limit for one text message
SMS_CHARS = 1600  # Twilio's limit for one (concatenated) SMS
KEYED = re.compile(r"[0-9*#]+")
FIRST_WORDS = {"zh": "好的", "en": "OK"}  # the patient's go-ahead to a neutral invitation


@pytest.fixture
def matrix_runtime(settings: Settings, database: Database, key_ring: KeyRing,
                   clock: FixedClock) -> Iterator[Runtime]:
    """Every channel live: WeChat in safe mode and Twilio, each against its local fake."""
    with FakeWeChat(WECHAT_APPID, WECHAT_SECRET) as wechat, \
            FakeTwilio(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM, now=clock.now) as twilio:
        live = settings.with_overrides(
            channels=("console", "wechat", "sms", "voice"),
            wechat_token=WECHAT_TOKEN, wechat_appid=WECHAT_APPID, wechat_secret=WECHAT_SECRET,
            wechat_aes_key=WECHAT_AES_KEY, wechat_api_base=wechat.base_url,
            twilio_account_sid=TWILIO_ACCOUNT_SID, twilio_auth_token=TWILIO_AUTH_TOKEN,
            twilio_from_number=TWILIO_FROM, twilio_api_base=twilio.base_url,
            wechat_templates={"FOLLOWUP": WECHAT_TEMPLATE_ID},
            extra={"rate_limits": {**DEFAULT_RATE_LIMITS, **TWILIO_FAST}},
        )
        runtime = Runtime(settings=live, key_ring=key_ring, db=database, clock=clock)
        runtime.fakes = {"wechat": wechat, "twilio": twilio}  # type: ignore[attr-defined]
        yield runtime


@pytest.fixture
def matrix_bot(matrix_runtime: Runtime) -> BotRuntime:
    return bot_for(matrix_runtime)


@pytest.fixture
def matrix_client(matrix_runtime: Runtime) -> FlaskClient:
    app: Flask = flask_app_for(matrix_runtime)
    return app.test_client()


class Channel:
    """The patient's side of one channel: say the go-ahead, answer, and check each reply fits the channel."""

    def __init__(self, db: Session, patient: Patient, lang: str) -> None:
        self.db = db
        self.patient = patient
        self.lang = lang
        self.replies: list[str] = []

    def begin(self) -> None:
        self.answer(FIRST_WORDS[self.lang])

    def answer(self, text: str) -> None:
        raise NotImplementedError

    def finished(self) -> None:
        """Check what the channel said at the end of the conversation."""


class Console(Channel):
    def __init__(self, db: Session, patient: Patient, lang: str, bot: BotRuntime, clock: FixedClock) -> None:
        super().__init__(db, patient, lang)
        self.bot, self.clock = bot, clock

    def answer(self, text: str) -> None:
        message = InboundMessage(channel="console", provider_key=f"console:{uuid.uuid4()}",
                                 sender=self.patient.card_no, kind="text", text=text, received_at=self.clock.now())
        reply = handle_inbound(self.db, self.bot.services, message)
        self.db.flush()
        assert reply.texts, f"no reply to {text!r}"
        self.replies.extend(reply.texts)


class WeChat(Channel):
    def __init__(self, db: Session, patient: Patient, lang: str, client: FlaskClient, clock: FixedClock) -> None:
        super().__init__(db, patient, lang)
        self.client = client
        self.peer = WeChatPeer(WECHAT_TOKEN, WECHAT_APPID, WECHAT_AES_KEY, now=lambda: clock.now().timestamp())

    def answer(self, text: str) -> None:
        assert self.patient.wechat_openid
        query, body = self.peer.signed(self.peer.text_xml(self.patient.wechat_openid, text))
        response = self.client.post("/webhooks/wechat", query_string=query, data=body, content_type="text/xml")
        self.db.expire_all()
        assert response.status_code == 200, response.get_data(as_text=True)
        content = str(self.peer.read_reply(response.data).get("Content") or "")
        assert content, f"no passive reply to {text!r}"
        assert len(content.encode("utf-8")) <= WECHAT_TEXT_BYTES
        assert "短信" not in content
        assert "SMS" not in content
        self.replies.append(content)


class Sms(Channel):
    def __init__(self, db: Session, patient: Patient, lang: str, client: FlaskClient, settings: Settings) -> None:
        super().__init__(db, patient, lang)
        self.client, self.settings = client, settings

    def answer(self, text: str) -> None:
        form = {"AccountSid": TWILIO_ACCOUNT_SID, "MessageSid": "SM" + uuid.uuid4().hex, "From": self.patient.phone,
                "To": TWILIO_FROM, "Body": text, "NumMedia": "0"}
        signature = twilio_signature(self.settings.public_url + "/webhooks/twilio/sms", form)
        response = self.client.post("/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
        self.db.expire_all()
        assert response.status_code == 200, response.get_data(as_text=True)
        messages = [element.text or "" for element in ElementTree.fromstring(response.data).iter("Message")]
        assert messages, f"no SMS reply to {text!r}"
        for message in messages:
            assert len(message) <= SMS_CHARS
            assert "微信" not in message
            assert "WeChat" not in message
        self.replies.extend(messages)


class Voice(Channel):
    """Twilio's side of a call: answer it, follow each <Gather> with keys or speech."""

    def __init__(self, db: Session, patient: Patient, lang: str, client: FlaskClient, settings: Settings,
                 fake: FakeTwilio, bot: BotRuntime) -> None:
        super().__init__(db, patient, lang)
        self.client, self.public, self.fake, self.bot = client, settings.public_url, fake, bot
        self.settings = settings
        self.twiml: Any = None
        self.sid = ""

    def _go(self, url: str, **extra: str) -> None:
        assert url.startswith(self.public), url
        target = url.removeprefix(self.public)
        form = {"AccountSid": TWILIO_ACCOUNT_SID, "CallSid": self.sid, "From": TWILIO_FROM, "To": self.patient.phone,
                "Direction": "outbound-api", "CallStatus": "in-progress", **extra}
        signature = twilio_signature(self.public + target, form)
        response = self.client.post(target, data=form, headers={"X-Twilio-Signature": signature})
        self.db.expire_all()
        assert response.status_code == 200, response.get_data(as_text=True)
        self.twiml = ElementTree.fromstring(response.data)
        said = [element.text or "" for element in self.twiml.iter("Say")]
        assert said, "a call step that says nothing"
        for text in said:
            assert "\n" not in text.strip(), text
            assert "http" not in text, text
        self.replies.extend(said)

    def begin(self) -> None:
        while self.bot.dispatcher.tick() > 0:
            pass
        self.db.expire_all()
        calls = [sid for sid, call in self.fake.calls.items() if call["to"] == self.patient.phone]
        assert calls, "the follow-up placed no call"
        self.sid = calls[-1]
        self._go(self.fake.calls[self.sid]["_form"]["Url"], AnsweredBy="human")
        consent = self.twiml.find("Gather")
        if consent is not None and parse_qs(urlsplit(consent.get("action")).query).get("step") == ["0"]:
            self._go(consent.get("action"), Digits="2")  # recording declined: the call goes on unrecorded

    def answer(self, text: str) -> None:
        gather = self.twiml.find("Gather")
        assert gather is not None, f"the call asks nothing before {text!r}"
        if KEYED.fullmatch(text):
            self._go(gather.get("action"), Digits=text)
        else:
            self._go(gather.get("action"), SpeechResult=text, Confidence="0.91")

    def finished(self) -> None:
        assert self.twiml.find("Hangup") is not None, "the call did not end with the flow"


@pytest.fixture
def open_channel(db: Session, matrix_bot: BotRuntime, matrix_client: FlaskClient, matrix_runtime: Runtime,
                 clock: FixedClock) -> Callable[[str, Patient, str], Channel]:
    def open_(name: str, patient: Patient, lang: str) -> Channel:
        settings = matrix_runtime.settings
        if name == "console":
            return Console(db, patient, lang, matrix_bot, clock)
        if name == "wechat":
            return WeChat(db, patient, lang, matrix_client, clock)
        if name == "sms":
            return Sms(db, patient, lang, matrix_client, settings)
        fake = matrix_runtime.fakes["twilio"]  # type: ignore[attr-defined]
        return Voice(db, patient, lang, matrix_client, settings, fake, matrix_bot)

    return open_


def enrol_for(db: Session, make_patient: Callable[..., Patient], run: Run, clock: FixedClock) -> Patient:
    """A patient as the run describes them, bound to WeChat, with the record the run starts from."""
    gender = {"male": "M", "female": "F", None: "F"}[run.sex]
    patient = make_patient(language=run.lang, gender=gender, birth_date=run.birth_date(clock.now().date()),
                           wechat_openid=f"oMatrix{uuid.uuid4().hex[:20]}")
    for code, value in run.observations.items():
        loinc, unit = SHORT_CODES.get(code, (code, ""))
        record_observation(db, patient, code=loinc, value=value, unit=unit, effective_at=clock.now(),
                           source="test", actor=TEST_ACTOR)
    for name, value in run.profile.items():
        set_profile_field(db, patient, name, value, actor=TEST_ACTOR)
    for tag in run.tags:
        add_tag(db, patient, tag, source="test", actor=TEST_ACTOR)
    db.flush()
    return patient


def check_record(db: Session, patient: Patient, run: Run, invitation: FollowUp) -> None:
    expect = run.expect
    conversation = db.scalars(select(ConversationSession).where(
        ConversationSession.patient_id == patient.id, ConversationSession.flow_id == run.flow)).one()
    assert conversation.end_status == expect.end, run.id
    saved = {row.name: row for row in results_of(db, patient)}
    for name, wanted in expect.results.items():
        assert name in saved, f"{run.id}: no result {name}"
        for key, value in wanted.items():
            assert getattr(saved[name], key) == value, f"{run.id}: {name}.{key}"
    facts = profile_facts(patient)
    assert {name: facts.get(name) for name in expect.profile} == expect.profile, run.id
    latest = latest_values(db, patient)
    assert {code: latest[code].value if code in latest else None
            for code in expect.observations} == expect.observations, run.id
    tasks = list(db.scalars(select(StaffTask).where(StaffTask.patient_id == patient.id)))
    flow_tasks = Counter(f"{task.priority} {task.reason}" for task in tasks if task.kind == "flow_alert")
    assert flow_tasks == Counter(expect.tasks), run.id
    record_tasks = Counter(f"{task.priority} {task.reason}" for task in tasks if task.kind == RED_FLAG_TASK)
    assert record_tasks == Counter(expect.record_tasks), run.id
    tags = tags_of(db, patient)
    assert set(expect.tags_added) <= tags, run.id
    assert not set(expect.tags_removed) & tags, run.id
    scheduled = db.scalars(select(FollowUp.flow_id).where(FollowUp.patient_id == patient.id,
                                                          FollowUp.id != invitation.id))
    assert set(scheduled) == set(expect.followups), run.id


CASES = [pytest.param(run, channel, id=f"{run.id} via {channel}") for run in all_runs() for channel in run.channels]


@pytest.mark.parametrize(("run", "channel"), CASES)
def test_a_scripted_run_goes_to_its_end_over_the_channel(
    db: Session, make_patient: Callable[..., Patient], matrix_bot: BotRuntime, clock: FixedClock,
    open_channel: Callable[[str, Patient, str], Channel], run: Run, channel: str,
) -> None:
    patient = enrol_for(db, make_patient, run, clock)
    invitation = schedule_followup(db, patient, flow_id=run.flow, due_at=clock.now(), channel_order=[channel],
                                   actor=TEST_ACTOR)
    db.flush()
    assert due_followups(db, matrix_bot.services) == 1
    db.flush()
    talk = open_channel(channel, patient, run.lang)
    talk.begin()
    for answer in run.answers_on(channel):
        talk.answer(answer)
    talk.finished()
    check_record(db, patient, run, invitation)
