"""A fake Twilio REST API (2010-04-01) on 127.0.0.1, for tests: the few endpoints Careloop calls.

- ``POST Messages.json`` (To, From, Body, StatusCallback; answers a queued message with its SID),
  ``GET Messages.json`` (filters To, From, ``DateSent>``/``DateSent<``), ``GET Messages/{sid}.json``;
- ``POST Calls.json`` (To, From, Url, StatusCallback..., MachineDetection, Record...), ``GET Calls.json``;
- ``POST Calls/{CallSid}/Recordings.json`` starts recording a call (the call must be ours and not over;
  RecordingStatusCallback, its method and events and RecordingChannels are checked), and
  ``POST Calls/{CallSid}/Recordings/{sid}.json`` with ``Status=stopped`` (or ``paused``/``in-progress``)
  changes a running one (400, 21220, when it is not running; 404 when it is not that call's);
  a stopped recording, or any still running when the test ends the call (:meth:`FakeTwilio.end_call`),
  becomes a finished recording that can be fetched;
- ``GET Recordings/{sid}[.wav|.mp3]`` serves a small WAV; ``DELETE Recordings/{sid}.json`` removes it.

Every request is checked as Twilio does: HTTP basic auth with the account SID and auth token (401,
code 20003, otherwise) and the account SID in the path (404, 20404, when it is not the caller's).
Everything is recorded (:attr:`FakeTwilio.requests`) so tests count what reached the provider.

Tests steer it: :meth:`fail_next` (an HTTP status and Twilio error code for the next N calls of
one operation), :meth:`time_out_next` (accept and record, then answer too late), :meth:`opt_out`
(messages to a number get 21610), :meth:`hold_at` (record the Nth message, then hold its answer
until :meth:`release`, so a test can kill the sender while the provider has the message; calls
too). Messages and calls keep the moment they arrived (``_at``, the test's monotonic clock).
"""

from __future__ import annotations

import base64
import hmac
import io
import json
import re
import threading
import time
import uuid
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.wechat_server import QuietServer

API = "/2010-04-01/Accounts/"
_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/(?P<rest>.+)$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def wav_bytes(seconds: float = 0.25, rate: int = 8000) -> bytes:
    """A small, valid mono WAV (a rising ramp, so its bytes are not all alike)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        frames = int(seconds * rate)
        audio.writeframes(b"".join(((i * 37) % 65536 - 32768).to_bytes(2, "little", signed=True)
                                   for i in range(frames)))
    return buffer.getvalue()


@dataclass
class RecordedRequest:
    method: str
    path: str
    operation: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    authorised: bool
    status: int = 0

    def value(self, name: str) -> str | None:
        values = self.form.get(name) or self.query.get(name)
        return values[0] if values else None


@dataclass
class Failure:
    status: int
    code: int | None = None
    delay: float = 0.0
    record: bool = False  # the request reaches the provider (and is kept) before the failure


@dataclass
class Hold:
    at: int
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


class FakeTwilio:
    """The fake provider's state; use it as a context manager, or :meth:`start` and :meth:`stop`."""

    def __init__(self, account_sid: str, auth_token: str, from_number: str, *,
                 now: Callable[[], datetime] | None = None) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.from_number = from_number
        self.now = now or (lambda: datetime.now(UTC))
        self.requests: list[RecordedRequest] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.recordings: dict[str, bytes] = {}
        # Recordings of calls started through the API: sid -> {"call_sid", "status", "form"}.
        self.call_recordings: dict[str, dict[str, Any]] = {}
        self.deleted_recordings: list[str] = []
        self.opted_out_numbers: set[str] = set()
        self._failures: dict[str, deque[Failure]] = {}
        self._hold: Hold | None = None
        self._hold_calls = False
        self._lock = threading.Lock()
        self._server: QuietServer | None = None
        self._thread: threading.Thread | None = None

    # -- life --------------------------------------------------------------------------------------
    def start(self) -> FakeTwilio:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the REST client's connection pool expects
            disable_nagle_algorithm = True  # headers and body go in two writes; no 40 ms delayed-ACK stall

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                fake._serve(self)

            def do_POST(self) -> None:  # noqa: N802
                fake._serve(self)

            def do_DELETE(self) -> None:  # noqa: N802
                fake._serve(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                return

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-twilio")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._hold is not None:
            self._hold.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- steering ------------------------------------------------------------------------------------
    def fail_next(self, operation: str, count: int = 1, *, status: int = 500, code: int | None = None) -> None:
        """The next ``count`` calls of ``operation`` (``messages.create``, ``calls.create``,
        ``recording.get``, ``recording.delete``, ``messages.list``...) answer ``status``/``code``."""
        with self._lock:
            queue = self._failures.setdefault(operation, deque())
            queue.extend(Failure(status, code) for _ in range(count))

    def time_out_next(self, operation: str, count: int = 1, *, delay: float = 2.0, reached: bool = True) -> None:
        """The next ``count`` calls of ``operation`` answer ``delay`` s late: having taken effect (``reached``),
        or not (a provider that stalled before doing anything, then failed)."""
        with self._lock:
            queue = self._failures.setdefault(operation, deque())
            queue.extend(Failure(200 if reached else 503, delay=delay, record=reached) for _ in range(count))

    def opt_out(self, number: str) -> None:
        """The recipient replied STOP at Twilio: messages to ``number`` answer 400 with code 21610."""
        self.opted_out_numbers.add(number)

    def hold_at(self, nth_message: int, *, calls: bool = False) -> Hold:
        """Keep the ``nth_message`` (or, with ``calls``, the nth call) created, but hold its answer until
        :meth:`release`."""
        self._hold = Hold(nth_message)
        self._hold_calls = calls
        return self._hold

    def release(self) -> None:
        if self._hold is not None:
            self._hold.release.set()

    def add_recording(self, call_sid: str, audio: bytes | None = None) -> tuple[str, str]:
        """Make a finished recording of ``call_sid``; return its SID and its URL (as Twilio reports it)."""
        sid = _sid("RE")
        with self._lock:
            self.recordings[sid] = audio if audio is not None else wav_bytes()
        return sid, f"{self.base_url}{API}{self.account_sid}/Recordings/{sid}"

    def end_call(self, call_sid: str) -> list[str]:
        """The call is over (the patient hung up): its running recordings finish; return their SIDs."""
        with self._lock:
            self.calls[call_sid]["status"] = "completed"
            running = [sid for sid, rec in self.call_recordings.items()
                       if rec["call_sid"] == call_sid and rec["status"] in ("in-progress", "paused")]
            for sid in running:
                self._finish_recording(sid)
        return running

    def _finish_recording(self, sid: str) -> None:
        self.call_recordings[sid]["status"] = "completed"
        self.recordings[sid] = wav_bytes(0.5)

    # -- what tests read -------------------------------------------------------------------------------
    def recordings_of(self, call_sid: str) -> dict[str, dict[str, Any]]:
        """The recordings started on ``call_sid`` through the API (sid -> call_sid, status, form)."""
        with self._lock:
            return {sid: dict(rec) for sid, rec in self.call_recordings.items() if rec["call_sid"] == call_sid}

    def requests_for(self, operation: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.operation == operation]

    def sent_messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.messages.values())

    def placed_calls(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.calls.values())

    def bodies_to(self, number: str) -> list[str]:
        return [m["body"] for m in self.sent_messages() if m["to"] == number]

    # -- serving ---------------------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        form = parse_qs(raw.decode("utf-8"), keep_blank_values=True) if raw else {}
        query = parse_qs(parts.query, keep_blank_values=True)
        authorised = self._authorised(handler.headers.get("Authorization", ""))
        match = _PATH.match(parts.path)
        operation = self._operation(handler.command, match.group("rest") if match else "")
        recorded = RecordedRequest(handler.command, parts.path, operation, query, form, authorised)
        with self._lock:
            self.requests.append(recorded)
        if not authorised:
            self._answer(handler, recorded, 401, _error(20003, "Authenticate", 401))
            return
        if match is None or match.group("account") != self.account_sid or operation == "unknown":
            self._answer(handler, recorded, 404, _error(20404, "The requested resource was not found", 404))
            return
        with self._lock:
            queue = self._failures.get(operation)
            failure = queue.popleft() if queue else None
        if failure is not None and not failure.record:
            time.sleep(failure.delay)
            self._answer(handler, recorded, failure.status, _error(failure.code or failure.status,
                                                                   "Injected failure", failure.status))
            return
        status, answer, content_type = self._operate(operation, match.group("rest"), form, query)
        if failure is not None and failure.delay:
            time.sleep(failure.delay)  # the provider acted; its answer is late (the client has given up)
        if status == 201 and operation == ("calls.create" if self._hold_calls else "messages.create"):
            self._maybe_hold()
        self._answer(handler, recorded, status, answer, content_type)

    def _maybe_hold(self) -> None:
        hold = self._hold
        if hold is None:
            return
        with self._lock:
            count = len(self.calls if self._hold_calls else self.messages)
        if count == hold.at and not hold.reached.is_set():
            hold.reached.set()
            hold.release.wait(timeout=120)

    def _authorised(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.account_sid) and hmac.compare_digest(password, self.auth_token)

    @staticmethod
    def _operation(method: str, rest: str) -> str:
        if rest == "Messages.json":
            return {"POST": "messages.create", "GET": "messages.list"}.get(method, "unknown")
        if re.fullmatch(r"Messages/SM[0-9a-f]{32}\.json", rest) and method == "GET":
            return "messages.fetch"
        if rest == "Calls.json":
            return {"POST": "calls.create", "GET": "calls.list"}.get(method, "unknown")
        if re.fullmatch(r"Calls/CA[0-9a-f]{32}/Recordings\.json", rest) and method == "POST":
            return "call.recording.create"
        if re.fullmatch(r"Calls/CA[0-9a-f]{32}/Recordings/RE[0-9a-f]{32}\.json", rest) and method == "POST":
            return "call.recording.update"
        if re.fullmatch(r"Recordings/RE[0-9a-f]{32}(\.wav|\.mp3)?", rest) and method == "GET":
            return "recording.get"
        if re.fullmatch(r"Recordings/RE[0-9a-f]{32}\.json", rest) and method == "DELETE":
            return "recording.delete"
        return "unknown"

    def _operate(self, operation: str, rest: str, form: dict[str, list[str]],
                 query: dict[str, list[str]]) -> tuple[int, Any, str]:
        def one(name: str) -> str:
            values = form.get(name)
            return values[0] if values else ""

        if operation == "messages.create":
            to, sender, body = one("To"), one("From"), one("Body")
            if not _E164.match(to):
                return 400, _error(21211, f"The 'To' number {to} is not a valid phone number.", 400), ""
            if sender != self.from_number:
                return 400, _error(21606, "The From phone number is not a valid message-capable number", 400), ""
            if not body:
                return 400, _error(21602, "Message body is required.", 400), ""
            if to in self.opted_out_numbers:
                return 400, _error(21610, "Attempt to send to unsubscribed recipient", 400), ""
            now = self.now()
            message = {"sid": _sid("SM"), "account_sid": self.account_sid, "to": to, "from": sender, "body": body,
                       "status": "queued", "date_created": _rfc2822(now), "date_sent": _rfc2822(now),
                       "date_updated": _rfc2822(now), "num_segments": "1", "direction": "outbound-api",
                       "status_callback": one("StatusCallback"), "_created": now, "_at": time.monotonic()}
            with self._lock:
                self.messages[message["sid"]] = message
            return 201, _public(message), ""
        if operation == "messages.list":
            try:
                return 200, self._message_page(query), ""
            except ValueError as bad:
                return 400, _error(20001, str(bad), 400), ""
        if operation == "messages.fetch":
            sid = rest.split("/")[1].removesuffix(".json")
            with self._lock:
                found = self.messages.get(sid)
            if found is None:
                return 404, _error(20404, "not found", 404), ""
            return 200, _public(found), ""
        if operation == "calls.create":
            to, sender = one("To"), one("From")
            if not _E164.match(to):
                return 400, _error(21211, f"The 'To' number {to} is not a valid phone number.", 400), ""
            if sender != self.from_number:
                return 400, _error(21210, "The source phone number provided is not yet verified", 400), ""
            if not one("Url"):
                return 400, _error(21205, "Url parameter is required", 400), ""
            now = self.now()
            call = {"sid": _sid("CA"), "account_sid": self.account_sid, "to": to, "from": sender,
                    "status": "queued", "direction": "outbound-api", "date_created": _rfc2822(now),
                    "date_updated": _rfc2822(now), "_form": {k: v if len(v) > 1 else v[0] for k, v in form.items()},
                    "_created": now, "_at": time.monotonic()}
            with self._lock:
                self.calls[call["sid"]] = call
            return 201, _public(call), ""
        if operation in ("call.recording.create", "call.recording.update"):
            return self._call_recording(operation, rest, form)
        if operation == "calls.list":
            with self._lock:
                calls = [c for c in self.calls.values() if _matches(c, query)]
            return 200, _page("calls", [_public(c) for c in reversed(calls)], query), ""
        sid = rest.split("/")[1].split(".")[0]
        with self._lock:
            audio = self.recordings.get(sid)
            if operation == "recording.delete" and audio is not None:
                del self.recordings[sid]
                self.deleted_recordings.append(sid)
        if audio is None:
            return 404, _error(20404, f"The requested resource {rest} was not found", 404), ""
        if operation == "recording.delete":
            return 204, None, ""
        return 200, audio, "audio/x-wav"

    def _call_recording(self, operation: str, rest: str, form: dict[str, list[str]]) -> tuple[int, Any, str]:
        parts = rest.split("/")
        call_sid = parts[1]
        with self._lock:
            call = self.calls.get(call_sid)
            if call is None:
                return 404, _error(20404, f"The requested resource {rest} was not found", 404), ""
            if operation == "call.recording.create":
                return self._start_recording(call, form)
            sid = parts[3].removesuffix(".json")
            recording = self.call_recordings.get(sid)
            if recording is None or recording["call_sid"] != call_sid:
                return 404, _error(20404, f"The requested resource {rest} was not found", 404), ""
            status = (form.get("Status") or [""])[0]
            if status not in ("stopped", "paused", "in-progress"):
                return 400, _error(21218, f"Invalid Status {status!r}", 400), ""
            if recording["status"] not in ("in-progress", "paused"):
                return 400, _error(21220, "Invalid state: the recording is not in progress", 400), ""
            if status == "stopped":
                self._finish_recording(sid)
            else:
                recording["status"] = status
            return 200, self._recording_resource(sid), ""

    def _start_recording(self, call: dict[str, Any], form: dict[str, list[str]]) -> tuple[int, Any, str]:
        """Start recording ``call`` (the caller holds the lock): check the options as Twilio does."""
        if call["status"] in ("completed", "canceled", "failed", "busy", "no-answer"):
            return 400, _error(21220, "Invalid state: the call is not in progress", 400), ""
        callback = (form.get("RecordingStatusCallback") or [""])[0]
        if callback and not callback.startswith(("http://", "https://")):
            return 400, _error(21609, "Invalid RecordingStatusCallback", 400), ""
        method = (form.get("RecordingStatusCallbackMethod") or ["POST"])[0]
        events = " ".join(form.get("RecordingStatusCallbackEvent") or ["completed"]).split()
        channels = (form.get("RecordingChannels") or ["mono"])[0]
        if method not in ("GET", "POST") or not set(events) <= {"in-progress", "completed", "absent"} \
                or channels not in ("mono", "dual"):
            return 400, _error(21232, "Invalid recording options", 400), ""
        sid = _sid("RE")
        self.call_recordings[sid] = {"call_sid": call["sid"], "status": "in-progress",
                                     "form": {k: v if len(v) > 1 else v[0] for k, v in form.items()}}
        return 201, self._recording_resource(sid), ""

    def _recording_resource(self, sid: str) -> dict[str, Any]:
        recording = self.call_recordings[sid]
        now = _rfc2822(self.now())
        return {"sid": sid, "account_sid": self.account_sid, "call_sid": recording["call_sid"],
                "status": recording["status"], "channels": 1, "source": "StartCallRecordingAPI",
                "date_created": now, "date_updated": now, "start_time": now}

    def _message_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        after = _date_bound(query.get("DateSent>"))
        before = _date_bound(query.get("DateSent<"))
        with self._lock:
            found = [m for m in self.messages.values() if _matches(m, query)
                     and (after is None or m["_created"] >= after) and (before is None or m["_created"] <= before)]
        return _page("messages", [_public(m) for m in reversed(found)], query)

    def _answer(self, handler: BaseHTTPRequestHandler, recorded: RecordedRequest, status: int, answer: Any,
                content_type: str = "") -> None:
        recorded.status = status
        if answer is None:
            payload = b""
        elif isinstance(answer, bytes):
            payload = answer
        else:
            payload = json.dumps(answer).encode()
            content_type = "application/json"
        try:
            handler.send_response(status)
            if payload:
                handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            pass  # the client gave up (timeout, or its process was killed)


def _error(code: int, message: str, status: int) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


def _rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _public(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if not key.startswith("_")}


def _matches(resource: dict[str, Any], query: dict[str, list[str]]) -> bool:
    for name, field_name in (("To", "to"), ("From", "from")):
        wanted = query.get(name)
        if wanted and resource[field_name] != wanted[0]:
            return False
    return True


def _date_bound(values: list[str] | None) -> datetime | None:
    if not values:
        return None
    text = values[0]
    for pattern in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"bad date filter {text!r}")


def _page(key: str, records: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    size = int((query.get("PageSize") or ["50"])[0])
    shown = records[:size]
    return {key: shown, "page": 0, "page_size": size, "start": 0, "end": max(0, len(shown) - 1),
            "uri": "", "first_page_uri": "", "next_page_uri": None, "previous_page_uri": None}
