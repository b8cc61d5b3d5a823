"""A fake WeChat API server on 127.0.0.1, for tests and the benchmark.

It speaks the few endpoints Careloop calls, as WeChat documents them:

- ``POST /cgi-bin/stable_token``: checks appid and secret; returns the current token while it is
  valid (a new one when ``force_refresh`` is true, or when none is valid);
- ``POST /cgi-bin/message/custom/send``, ``POST /cgi-bin/message/template/send`` (answers a
  ``msgid``), ``POST /cgi-bin/qrcode/create`` (answers a ticket);
- every call but stable_token checks ``access_token`` (40001 when unknown, 42001 when expired).

Tests steer it: :meth:`FakeWeChat.expire_tokens`, :meth:`reject_token_once` (the next call gets
40001 and that token dies), :meth:`fail_next` (an errcode, an HTTP status or a delay for one
path), :meth:`unsubscribed`/:meth:`out_of_window` openids, :attr:`stable_token_delay`, and
:meth:`hold_at` (accept the Nth message, then hold the answer until :meth:`release`, so a test can
kill the sender while WeChat has the message). Every request is recorded with the moment it
arrived (:attr:`requests`, :meth:`calls`, :meth:`delivered`).
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

OK = {"errcode": 0, "errmsg": "ok"}


SEND_PATHS = ("/cgi-bin/message/custom/send", "/cgi-bin/message/template/send")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    answer: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)  # when it arrived (the test's monotonic clock)


@dataclass
class Hold:
    at: int
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class Failure:
    errcode: int | None = None
    status: int | None = None
    delay: float = 0.0
    errmsg: str = "fake failure"


class QuietServer(ThreadingHTTPServer):
    """A threading server that says nothing when a client drops its connection (a killed sender)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeWeChat:
    """The fake server's state; :meth:`start` serves it on a free loopback port."""

    def __init__(self, appid: str, secret: str, *, token_ttl: int = 7200) -> None:
        self.appid = appid
        self.secret = secret
        self.token_ttl = token_ttl
        self.requests: list[RecordedRequest] = []
        self.stable_token_delay = 0.0
        self.unsubscribed_openids: set[str] = set()
        self.stale_openids: set[str] = set()
        self._valid: set[str] = set()
        self._expired: set[str] = set()
        self._current: str | None = None
        self._serial = itertools.count(1)
        self._msgids = itertools.count(1_000_001)
        self._reject_once = False
        self._failures: dict[str, deque[Failure]] = {}
        self._accepted = 0
        self._hold: Hold | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life -------------------------------------------------------------------------------------
    def start(self) -> FakeWeChat:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                fake._serve(self)

            def do_GET(self) -> None:  # noqa: N802
                fake._serve(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-wechat",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeWeChat:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- steering ---------------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """Every token issued so far expires now (calls with them get 42001)."""
        with self._lock:
            self._expired |= self._valid
            self._valid.clear()
            self._current = None

    def reject_token_once(self) -> None:
        """The next API call gets 40001 and the token it used stops being valid."""
        with self._lock:
            self._reject_once = True

    def fail_next(self, path: str, *, errcode: int | None = None, status: int | None = None, delay: float = 0.0,
                  times: int = 1, errmsg: str = "fake failure") -> None:
        """The next ``times`` calls to ``path`` (e.g. ``message/custom/send``) fail as told (``errmsg``: the
        text beside ``errcode``, which WeChat fills with hints such as the openid it was sent)."""
        with self._lock:
            queue = self._failures.setdefault(path.strip("/"), deque())
            queue.extend(Failure(errcode, status, delay, errmsg) for _ in range(times))

    def hold_at(self, nth_message: int) -> Hold:
        """Accept the ``nth_message`` sent (custom or template) and hold its answer until :meth:`release`."""
        self._hold = Hold(nth_message)
        return self._hold

    def release(self) -> None:
        if self._hold is not None:
            self._hold.release.set()

    def delivered(self) -> list[RecordedRequest]:
        """Every custom-service and template message WeChat accepted, in order of arrival."""
        with self._lock:
            return [request for request in self.requests
                    if request.path in SEND_PATHS and request.answer.get("errcode") == 0]

    def calls(self, path: str) -> list[RecordedRequest]:
        """The recorded requests to ``path`` (``stable_token``, ``message/custom/send``, ...)."""
        wanted = "/cgi-bin/" + path.strip("/")
        with self._lock:
            return [request for request in self.requests if request.path == wanted]

    def sent_texts(self) -> list[tuple[str, str]]:
        """(openid, text) of every customer-service text message accepted."""
        return [(call.body["touser"], call.body["text"]["content"]) for call in self.calls("message/custom/send")
                if call.answer.get("errcode") == 0]

    # -- serving ----------------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        record = RecordedRequest(handler.command, parts.path, query, body)
        with self._lock:
            self.requests.append(record)
            failure = self._failures.get(parts.path.removeprefix("/cgi-bin/"), deque())
            planned = failure.popleft() if failure else None
        if planned is not None and planned.delay:
            time.sleep(planned.delay)
        if planned is not None and planned.status is not None:
            record.answer = {"status": planned.status}
            self._answer(handler, planned.status, {"error": "fake server error"})
            return
        if parts.path == "/cgi-bin/stable_token":
            answer = self._stable_token(body)
        elif planned is not None and planned.errcode is not None and self._token_ok(query)[0]:
            answer = {"errcode": planned.errcode, "errmsg": planned.errmsg}
        else:
            answer = self._api(parts.path, query, body)
        with self._lock:
            record.answer = answer
            accepted = parts.path in SEND_PATHS and answer.get("errcode") == 0
            if accepted:
                self._accepted += 1
            hold = self._hold if accepted and self._hold is not None and self._accepted == self._hold.at else None
        if hold is not None and not hold.reached.is_set():
            hold.reached.set()
            hold.release.wait(timeout=120)
        self._answer(handler, 200, answer)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass  # the client gave up (timeout, or its process was killed)

    def _stable_token(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.stable_token_delay:
            time.sleep(self.stable_token_delay)
        if body.get("grant_type") != "client_credential" or body.get("appid") != self.appid:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if body.get("secret") != self.secret:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        with self._lock:
            if body.get("force_refresh") or self._current is None:
                self._current = f"fake-token-{next(self._serial)}"
                self._valid.add(self._current)
            return {"access_token": self._current, "expires_in": self.token_ttl}

    def _token_ok(self, query: dict[str, str]) -> tuple[bool, dict[str, Any]]:
        token = query.get("access_token", "")
        with self._lock:
            if self._reject_once and token in self._valid:
                self._reject_once = False
                self._valid.discard(token)
                self._expired.add(token)
                if self._current == token:
                    self._current = None
                return False, {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"}
            if token in self._valid:
                return True, {}
            if token in self._expired:
                return False, {"errcode": 42001, "errmsg": "access_token expired"}
        return False, {"errcode": 40001, "errmsg": "invalid credential"}

    def _api(self, path: str, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        ok, refusal = self._token_ok(query)
        if not ok:
            return refusal
        if path == "/cgi-bin/message/custom/send":
            if body.get("touser") in self.unsubscribed_openids:
                return {"errcode": 43004, "errmsg": "require subscribe"}
            if body.get("touser") in self.stale_openids:
                return {"errcode": 45015, "errmsg": "response out of time limit"}
            return dict(OK)
        if path == "/cgi-bin/message/template/send":
            if body.get("touser") in self.unsubscribed_openids:
                return {"errcode": 43004, "errmsg": "require subscribe"}
            return {**OK, "msgid": next(self._msgids)}
        if path == "/cgi-bin/qrcode/create":
            scene = body.get("action_info", {}).get("scene", {})
            if body.get("action_name") != "QR_STR_SCENE" or not scene.get("scene_str"):
                return {"errcode": 40097, "errmsg": "invalid args"}
            serial = next(self._serial)
            return {"ticket": f"gQH-fake-ticket-{serial}==", "expire_seconds": int(body.get("expire_seconds", 60)),
                    "url": f"http://weixin.qq.com/q/fake{serial}"}
        return {"errcode": 40066, "errmsg": "invalid url"}


# -- the other direction: what WeChat's servers POST to the account -------------------------------------
class WeChatPeer:
    """Builds the requests WeChat's servers send to the account's URL, signed and (safe mode) encrypted.

    Everything goes through wechatpy's own crypto (``PrpCrypto``, the SHA-1 signatures), so a
    request built here is what WeChat would send: the query carries ``signature``, ``timestamp``,
    ``nonce`` and ``openid``, plus ``encrypt_type=aes`` and ``msg_signature`` in safe mode, and the
    safe-mode body holds only ``ToUserName`` and ``Encrypt``.
    """

    def __init__(self, token: str, appid: str, aes_key: str | None = None, *, account: str = "gh_0123456789ab",
                 now: Any = None) -> None:
        from wechatpy.crypto import WeChatCrypto

        self.token = token
        self.appid = appid
        self.account = account
        self.crypto = WeChatCrypto(token, aes_key, appid) if aes_key else None
        self._now = now or time.time
        self._nonces = itertools.count(100_000)
        self._msg_ids = itertools.count(int(time.time() * 1000) % 10**12 * 1000)

    def now(self) -> int:
        return int(self._now())

    def next_msg_id(self) -> int:
        return next(self._msg_ids)

    # -- message bodies ---------------------------------------------------------------------------
    def _envelope(self, openid: str, msg_type: str, inner: str, create_time: int | None) -> str:
        return (f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName>"
                f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
                f"<CreateTime>{create_time or self.now()}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>"
                f"{inner}</xml>")

    def text_xml(self, openid: str, content: str, *, msg_id: int | None = None, create_time: int | None = None) -> str:
        msg_id = msg_id if msg_id is not None else self.next_msg_id()
        return self._envelope(openid, "text", f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId>",
                              create_time)

    def event_xml(self, openid: str, event: str, *, key: str | None = None, create_time: int | None = None,
                  **fields: Any) -> str:
        inner = f"<Event><![CDATA[{event}]]></Event>"
        if key is not None:
            inner += f"<EventKey><![CDATA[{key}]]></EventKey>"
        for name, value in fields.items():
            inner += f"<{name}><![CDATA[{value}]]></{name}>" if isinstance(value, str) else f"<{name}>{value}</{name}>"
        return self._envelope(openid, "event", inner, create_time)

    def voice_xml(self, openid: str, *, recognition: str = "", msg_id: int | None = None) -> str:
        msg_id = msg_id if msg_id is not None else self.next_msg_id()
        inner = ("<MediaId><![CDATA[media-1]]></MediaId><Format><![CDATA[amr]]></Format>"
                 f"<Recognition><![CDATA[{recognition}]]></Recognition><MsgId>{msg_id}</MsgId>")
        return self._envelope(openid, "voice", inner, None)

    # -- signing and encrypting -------------------------------------------------------------------
    def signed(self, xml: str, *, timestamp: int | None = None, openid: str = "") -> tuple[dict[str, str], bytes]:
        """The query string and body of the POST, as WeChat would send ``xml`` to the account."""
        from wechatpy.crypto import PrpCrypto

        stamp = str(timestamp if timestamp is not None else self.now())
        nonce = str(next(self._nonces))
        query = {"signature": self.signature(stamp, nonce),
                 "timestamp": stamp, "nonce": nonce, "openid": openid}
        if self.crypto is None:
            return query, xml.encode("utf-8")
        encrypted = PrpCrypto(self.crypto.key).encrypt(xml, self.appid)
        encrypted = encrypted.decode() if isinstance(encrypted, bytes) else encrypted
        query.update(encrypt_type="aes", msg_signature=self.signature(stamp, nonce, encrypted))
        body = (f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>")
        return query, body.encode("utf-8")

    def signature(self, timestamp: str, nonce: str, *data: str) -> str:
        """WeChat's signature: SHA-1 over the sorted token, timestamp, nonce (and ``Encrypt``)."""
        from wechatpy.utils import WeChatSigner

        signer = WeChatSigner()
        signer.add_data(self.token, timestamp, nonce, *data)
        signature: str = signer.signature
        return signature

    def read_reply(self, body: bytes | str) -> dict[str, Any]:
        """The passive reply as a dict (decrypted and its signature checked in safe mode); {} for "success"."""
        import xmltodict

        text = body.decode("utf-8") if isinstance(body, bytes) else body
        if text in ("", "success"):
            return {}
        outer = xmltodict.parse(text)["xml"]
        if self.crypto is not None:
            text = self.crypto.decrypt_message(text, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])
        parsed: dict[str, Any] = xmltodict.parse(text)["xml"]
        return parsed
