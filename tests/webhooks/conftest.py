"""Fixtures for the providers' webhooks. WeChat: a fake API server, an app with the channel live, a peer
that sends what WeChat's servers would send (signed and, in safe mode, encrypted with wechatpy's crypto)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from defusedxml import ElementTree
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from bot.config import DEFAULT_RATE_LIMITS
from bot.conversations import BotServices
from care.models import Patient
from careloop.bot_runtime import BotRuntime, bot_for
from careloop.db import Database
from careloop.runtime import Runtime
from careloop.settings import Settings
from security.clock import FixedClock
from security.keys import KeyRing
from tests.conftest import flask_app_for
from tests.fakes.twilio_server import FakeTwilio
from tests.fakes.wechat_server import FakeWeChat, WeChatPeer

WECHAT_TOKEN = "careloop-test-token"
WECHAT_APPID = "wx0123456789abcdef"
WECHAT_SECRET = "wechat-test-secret"
WECHAT_AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")  # 43 characters, as WeChat gives it
WECHAT_TEMPLATE_ID = "TPL-followup-neutral"


def wechat_settings_for(settings: Settings, fake: FakeWeChat, *, safe_mode: bool = True,
                        templates: dict[str, str] | None = None, **extra: Any) -> Settings:
    """``settings`` with the WeChat channel live against ``fake``; ``templates``: the template id per
    purpose (default: a FOLLOWUP one)."""
    return settings.with_overrides(
        channels=("console", "wechat"), wechat_token=WECHAT_TOKEN, wechat_appid=WECHAT_APPID,
        wechat_secret=WECHAT_SECRET, wechat_aes_key=WECHAT_AES_KEY if safe_mode else None,
        wechat_api_base=fake.base_url, extra=extra,
        wechat_templates={"FOLLOWUP": WECHAT_TEMPLATE_ID} if templates is None else templates,
    )


@pytest.fixture
def wechat_fake() -> Iterator[FakeWeChat]:
    with FakeWeChat(WECHAT_APPID, WECHAT_SECRET) as fake:
        yield fake


@pytest.fixture
def wechat_extra() -> dict[str, Any]:
    """Bot tunables for the WeChat app (a test overrides this fixture to change them)."""
    return {}


@pytest.fixture
def wechat_templates() -> dict[str, str] | None:
    """The clinic's WeChat template ids per purpose (a test overrides this fixture; None: a FOLLOWUP one)."""
    return None


@pytest.fixture
def wechat_runtime(settings: Settings, wechat_fake: FakeWeChat, database: Database, key_ring: KeyRing,
                   clock: FixedClock, wechat_extra: dict[str, Any],
                   wechat_templates: dict[str, str] | None) -> Runtime:
    return Runtime(settings=wechat_settings_for(settings, wechat_fake, templates=wechat_templates, **wechat_extra),
                   key_ring=key_ring, db=database, clock=clock)


@pytest.fixture
def wechat_bot(wechat_runtime: Runtime) -> BotRuntime:
    return bot_for(wechat_runtime)


@pytest.fixture
def wechat_services(wechat_bot: BotRuntime) -> BotServices:
    return wechat_bot.services


@pytest.fixture
def wechat_app(wechat_runtime: Runtime) -> Flask:
    return flask_app_for(wechat_runtime)


@pytest.fixture
def wechat_client(wechat_app: Flask) -> FlaskClient:
    return wechat_app.test_client()


@pytest.fixture
def wechat_peer(clock: FixedClock) -> WeChatPeer:
    """WeChat's servers, in safe mode, on the test's clock."""
    return WeChatPeer(WECHAT_TOKEN, WECHAT_APPID, WECHAT_AES_KEY, now=lambda: clock.now().timestamp())


@pytest.fixture
def wechat_post(wechat_client: FlaskClient, wechat_peer: WeChatPeer) -> Callable[..., TestResponse]:
    """POST ``xml`` to the webhook as WeChat would (signed, encrypted); returns the response."""

    def post(xml: str, **signing: Any) -> TestResponse:
        query, body = wechat_peer.signed(xml, **signing)
        return wechat_client.post("/webhooks/wechat", query_string=query, data=body, content_type="text/xml")

    return post


@pytest.fixture
def wechat_say(wechat_post: Callable[..., TestResponse], wechat_peer: WeChatPeer) -> Callable[..., str]:
    """Send a text as the WeChat user ``openid``; returns the passive reply's text ("" for "success")."""

    def say(openid: str, text: str) -> str:
        response = wechat_post(wechat_peer.text_xml(openid, text))
        assert response.status_code == 200, response.get_data(as_text=True)
        return str(wechat_peer.read_reply(response.data).get("Content") or "")

    return say


@pytest.fixture
def wechat_patient(db: Session, make_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    """Enrol a patient already bound to a WeChat openid (``wechat_openid`` may be given)."""
    serial = iter(range(1, 1_000_000))

    def factory(**overrides: Any) -> Patient:
        overrides.setdefault("wechat_openid", f"oWeChatTestOpenId{next(serial):010d}")
        return make_patient(**overrides)

    return factory


# -- Twilio ----------------------------------------------------------------------------------------------
TWILIO_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TWILIO_AUTH_TOKEN = "twilio-test-auth-token-0123456789"
TWILIO_FROM = "+15005550006"
TWILIO_FAST = {"sms": 10_000.0, "voice": 10_000.0}  # the providers' 1/s limits would make tests crawl


def twilio_settings_for(settings: Settings, fake: FakeTwilio, *,
                        channels: tuple[str, ...] = ("console", "sms", "voice"), **extra: Any) -> Settings:
    """``settings`` with the SMS and voice channels live against ``fake``."""
    return settings.with_overrides(
        channels=channels, twilio_account_sid=TWILIO_ACCOUNT_SID, twilio_auth_token=TWILIO_AUTH_TOKEN,
        twilio_from_number=TWILIO_FROM, twilio_api_base=fake.base_url,
        extra={"rate_limits": {**DEFAULT_RATE_LIMITS, **TWILIO_FAST}, **extra},
    )


@pytest.fixture
def twilio_fake(clock: FixedClock) -> Iterator[FakeTwilio]:
    """The fake Twilio API, dating what it creates by the test's clock."""
    with FakeTwilio(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM, now=clock.now) as fake:
        yield fake


@pytest.fixture
def twilio_runtime(settings: Settings, twilio_fake: FakeTwilio, database: Database, key_ring: KeyRing,
                   clock: FixedClock) -> Runtime:
    return Runtime(settings=twilio_settings_for(settings, twilio_fake), key_ring=key_ring, db=database, clock=clock)


@pytest.fixture
def twilio_bot(twilio_runtime: Runtime) -> BotRuntime:
    return bot_for(twilio_runtime)


@pytest.fixture
def twilio_services(twilio_bot: BotRuntime) -> BotServices:
    return twilio_bot.services


@pytest.fixture
def twilio_app(twilio_runtime: Runtime) -> Flask:
    return flask_app_for(twilio_runtime)


@pytest.fixture
def twilio_client(twilio_app: Flask) -> FlaskClient:
    return twilio_app.test_client()


def twilio_signature(url: str, params: dict[str, str], token: str = TWILIO_AUTH_TOKEN) -> str:
    """The ``X-Twilio-Signature`` Twilio puts on a request to ``url`` with form ``params``."""
    return str(RequestValidator(token).compute_signature(url, params))


@pytest.fixture
def twilio_post(twilio_client: FlaskClient, settings: Settings, db: Session) -> Callable[..., TestResponse]:
    """POST ``params`` to ``target`` (a path with its query) as Twilio would: form-encoded and signed
    over the public URL. ``signature`` replaces the real one (None leaves the header out). The test's
    session is expired afterwards, so it sees what the request committed."""
    real = object()

    def post(target: str, params: dict[str, str], *, signature: Any = real, **options: Any) -> TestResponse:
        form = {"AccountSid": TWILIO_ACCOUNT_SID, **params}
        headers = {}
        if signature is real:
            headers["X-Twilio-Signature"] = twilio_signature(settings.public_url + target, form)
        elif signature is not None:
            headers["X-Twilio-Signature"] = str(signature)
        response = twilio_client.post(target, data=form, headers=headers, **options)
        db.expire_all()
        return response

    return post


@pytest.fixture
def twilio_sms(twilio_post: Callable[..., TestResponse]) -> Callable[..., list[str]]:
    """Text ``body`` from ``number`` to the clinic; returns the reply messages of the TwiML answer."""

    def send(number: str, body: str, *, sid: str | None = None) -> list[str]:
        response = twilio_post("/webhooks/twilio/sms", {
            "MessageSid": sid or "SM" + uuid.uuid4().hex, "From": number, "To": TWILIO_FROM, "Body": body,
            "NumMedia": "0"})
        assert response.status_code == 200, response.get_data(as_text=True)
        return [element.text or "" for element in ElementTree.fromstring(response.data).iter("Message")]

    return send


@pytest.fixture
def dispatch(twilio_bot: BotRuntime, db: Session) -> Callable[[], int]:
    """Run the dispatcher until nothing is due; returns how many rows it handled."""

    def run() -> int:
        handled = 0
        while (count := twilio_bot.dispatcher.tick()) > 0:
            handled += count
        db.expire_all()
        return handled

    return run
