"""Call recordings: taken from Twilio, kept encrypted under the patient's key, then deleted at Twilio.

A whole-call recording started once the caller's consent stands is written down at once as a
``recording`` row (:func:`recording_started`); its SID is what stops it when the caller withdraws
consent (it is then ``stopped``). The recording callback makes that row ``pending``, or records a
new ``pending`` row for an answer recorded with ``<Record>`` (idempotent by RecordingSid). A
``recording`` or ``stopped`` row whose callback never came is taken up as if it had, once the call
(or the stop) must be over. The worker's job then, for each due row, in its own short transactions:

1. claims it (a lease, so another worker leaves it alone; SKIP LOCKED on PostgreSQL);
2. downloads the audio with the account's credentials (HTTP basic auth) from the API base, at a URL
   built from the RecordingSid (never a URL we were sent, which could carry our credentials elsewhere);
3. seals it under the patient's data key into the blob store and marks the row ``stored`` (commit);
4. only then deletes it at Twilio and marks the row ``deleted`` (with ``deleted_at_provider`` set).

A failed download or delete is retried with backoff, for as long as it takes: the recording is
never lost (it stays at Twilio until it is stored) and never left at Twilio once it is stored. A
recording Twilio still does not have after several attempts (404 before we stored it) is marked
``missing`` and put on the staff queue.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta

import requests
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioException
from twilio.rest import Client

from bot.channels.twilio_rest import TwilioAccount
from bot.conversations import BotServices
from bot.models import ConversationSession
from care.blobs import BlobStore, put_encrypted
from care.models import FollowUp, Patient, Recording
from care.tasks import create_task
from security.audit import Actor, log
from security.dialects import claim_rows
from security.fields import clock_of

logger = logging.getLogger("careloop.recordings")

ACTOR = Actor("system", "recordings")
# ``deleted`` means deleted at the provider (the column holds 16 characters; ``deleted_at_provider`` is its time).
PENDING, STORED, DELETED, MISSING = "pending", "stored", "deleted", "missing"
RECORDING = "recording"  # running at Twilio (a whole-call recording, started with the caller's consent)
STOPPED = "stopped"      # stopped at Twilio when the caller withdrew consent; its callback is awaited
FETCHABLE = (RECORDING, STOPPED, PENDING)
# Twilio ends any call after four hours: by then a running recording's callback is overdue.
CALL_LIMIT = timedelta(hours=4, minutes=10)
STOPPED_GRACE = timedelta(minutes=10)  # a stopped recording's callback comes within moments
LEASE = timedelta(minutes=5)
RETRY_BASE_SECONDS = 30.0
RETRY_MAX_SECONDS = 3600.0
MAX_AUDIO_BYTES = 200 * 1024 * 1024
GONE_AFTER_ATTEMPTS = 5

UnitOfWork = Callable[[], AbstractContextManager[Session]]


class UnknownCallError(LookupError):
    """A recording of a call that belongs to no conversation we know."""


def recording_completed(session: Session, *, recording_sid: str, call_sid: str, session_id: uuid.UUID | None,
                        purpose: str, duration_seconds: int | None, source_url: str | None) -> Recording:
    """Record that Twilio holds a finished recording for one of our calls (idempotent by RecordingSid).

    Raises:
        UnknownCallError: neither the session in the callback URL nor the CallSid is one of ours.
    """
    existing = _by_sid(session, recording_sid)
    if existing is not None:
        if existing.status in (RECORDING, STOPPED):
            _finished(session, existing, duration_seconds=duration_seconds, source_url=source_url)
        return existing
    conversation = session.get(ConversationSession, session_id) if session_id is not None else None
    if conversation is None or conversation.call_sid not in (None, call_sid):
        conversation = session.scalars(select(ConversationSession).where(
            ConversationSession.call_sid == call_sid)).first()
    if conversation is None:
        raise UnknownCallError(call_sid)
    followup_id = conversation.followup_id or session.scalars(
        select(FollowUp.id).where(FollowUp.session_id == conversation.id)).first()
    now = clock_of(session).now()
    row = Recording(
        patient_id=conversation.patient_id, provider_sid=recording_sid, call_sid=call_sid, followup_id=followup_id,
        session_id=conversation.id, purpose=purpose[:32], status=PENDING, attempts=0, next_attempt_at=now,
        source_url=source_url, duration_seconds=duration_seconds, created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        # The same callback delivered twice at once: the other one recorded it.
        found = _by_sid(session, recording_sid)
        if found is None:
            raise
        return found
    log(session, actor=ACTOR, action="recording.received", resource_type="recording", resource_id=row.id,
        patient_id=row.patient_id, details={"call_sid": call_sid, "purpose": row.purpose})
    return row


def _finished(session: Session, row: Recording, *, duration_seconds: int | None, source_url: str | None) -> None:
    row.status = PENDING
    row.next_attempt_at = clock_of(session).now()
    row.duration_seconds = duration_seconds
    row.source_url = source_url
    log(session, actor=ACTOR, action="recording.received", resource_type="recording", resource_id=row.id,
        patient_id=row.patient_id, details={"call_sid": row.call_sid, "purpose": row.purpose})


def recording_started(session: Session, *, conversation: ConversationSession, call_sid: str,
                      recording_sid: str) -> Recording:
    """Write down the whole-call recording Twilio just started on the caller's consent."""
    now = clock_of(session).now()
    followup_id = conversation.followup_id or session.scalars(
        select(FollowUp.id).where(FollowUp.session_id == conversation.id)).first()
    row = Recording(
        patient_id=conversation.patient_id, provider_sid=recording_sid, call_sid=call_sid, followup_id=followup_id,
        session_id=conversation.id, purpose="call", status=RECORDING, attempts=0, next_attempt_at=now + CALL_LIMIT,
        created_at=now,
    )
    session.add(row)
    log(session, actor=ACTOR, action="recording.started", resource_type="recording", resource_id=row.id,
        patient_id=row.patient_id, details={"call_sid": call_sid, "recording_sid": recording_sid})
    return row


def active_recording(session: Session, call_sid: str) -> Recording | None:
    """The whole-call recording running on ``call_sid``, if any."""
    return session.scalars(select(Recording).where(Recording.call_sid == call_sid, Recording.status == RECORDING)
                           .order_by(Recording.created_at.desc())).first()


def recording_stopped(session: Session, row: Recording, *, actor: Actor) -> None:
    """Note that the recording was stopped at Twilio (what it holds comes by its callback, soon)."""
    row.status = STOPPED
    row.next_attempt_at = clock_of(session).now() + STOPPED_GRACE
    log(session, actor=actor, action="recording.stopped", resource_type="recording", resource_id=row.id,
        patient_id=row.patient_id, details={"call_sid": row.call_sid, "recording_sid": row.provider_sid})


def _by_sid(session: Session, recording_sid: str) -> Recording | None:
    return session.scalars(select(Recording).where(Recording.provider_sid == recording_sid)).one_or_none()


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class _Claimed:
    id: uuid.UUID
    sid: str
    status: str
    patient_id: uuid.UUID
    attempts: int


class _GoneError(Exception):
    """Twilio no longer has the recording."""


class RecordingJob:
    """The worker job that stores due recordings and deletes them at Twilio (a self-committing tick)."""

    def __init__(self, services: BotServices, unit_of_work: UnitOfWork, *, batch: int = 20) -> None:
        self.services = services
        self.unit_of_work = unit_of_work
        self.batch = batch

    def _twilio(self) -> tuple[TwilioAccount, Client] | None:
        """The voice channel's account and REST client (no recordings without a live voice channel)."""
        adapter = self.services.adapters.get("voice")
        account = getattr(adapter, "account", None)
        client = getattr(adapter, "client", None)
        if isinstance(account, TwilioAccount) and isinstance(client, Client):
            return account, client
        return None

    def tick(self) -> int:
        """Handle the recordings that are due; return how many were claimed."""
        twilio = self._twilio()
        store = self.services.blob_store
        if twilio is None or store is None:
            return 0
        with self.unit_of_work() as session:
            claimed = self._claim(session)
        for item in claimed:
            self._handle(*twilio, store, item)
        return len(claimed)

    def _claim(self, session: Session) -> list[_Claimed]:
        now = clock_of(session).now()
        query = (select(Recording).where(Recording.status.in_([*FETCHABLE, STORED]), Recording.next_attempt_at <= now)
                 .order_by(Recording.next_attempt_at).limit(self.batch))
        query = claim_rows(session, query)
        claimed = []
        for row in session.scalars(query):
            row.attempts += 1
            row.next_attempt_at = now + LEASE
            claimed.append(_Claimed(row.id, row.provider_sid, row.status, row.patient_id, row.attempts))
        return claimed

    def _handle(self, account: TwilioAccount, client: Client, store: BlobStore, item: _Claimed) -> None:
        if item.status in FETCHABLE:
            try:
                audio, content_type = self._download(account, item.sid)
            except _GoneError:
                # Twilio may lag a moment behind its own callback; only a lasting 404 means it is gone.
                if item.attempts >= GONE_AFTER_ATTEMPTS:
                    self._missing(item)
                else:
                    self._later(item, "download: twilio 404")
                return
            except (requests.RequestException, ValueError) as failure:
                # The kind of failure only: requests' own message names the recording's URL.
                self._later(item, f"download: {type(failure).__name__}")
                return
            if not self._store(store, item, audio, content_type):
                return
        # Stored and committed: now, and only now, it may go from Twilio.
        try:
            client.recordings(item.sid).delete()
        except TwilioException as failure:
            if int(getattr(failure, "status", 0) or 0) != 404:
                self._later(item, f"delete: twilio {getattr(failure, 'status', '?')}")
                return
        except requests.RequestException as failure:
            self._later(item, f"delete: {type(failure).__name__}")
            return
        with self.unit_of_work() as session:
            row = session.get(Recording, item.id)
            if row is None or row.status != STORED:
                return
            now = clock_of(session).now()
            row.status = DELETED
            row.deleted_at_provider = now
            row.next_attempt_at = None
            row.last_error = None
            log(session, actor=ACTOR, action="recording.provider_deleted", resource_type="recording",
                resource_id=row.id, patient_id=row.patient_id, details={"recording_sid": item.sid})

    @staticmethod
    def _download(account: TwilioAccount, sid: str) -> tuple[bytes, str]:
        url = account.recording_media_url(sid)
        with requests.get(url, auth=(account.account_sid, account.auth_token), timeout=account.timeout,
                          stream=True, allow_redirects=False) as response:
            if response.status_code == 404:
                raise _GoneError(sid)
            if response.status_code != 200:
                raise ValueError(f"twilio answered {response.status_code}")
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if not content_type.startswith("audio/"):
                raise ValueError(f"not audio: {content_type or 'no content type'}")
            chunks = []
            size = 0
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > MAX_AUDIO_BYTES:
                    raise ValueError("recording too large")
                chunks.append(chunk)
        audio = b"".join(chunks)
        if not audio:
            raise ValueError("empty recording")
        return audio, content_type

    def _store(self, store: BlobStore, item: _Claimed, audio: bytes, content_type: str) -> bool:
        with self.unit_of_work() as session:
            row = session.get(Recording, item.id)
            if row is None or row.status not in FETCHABLE:
                return row is not None and row.status == STORED
            key = f"recordings/{row.patient_id}/{row.id}.wav"
            # The blob goes first; if the commit then fails, the row stays pending and the same key is rewritten.
            put_encrypted(session, store, owner_id=row.patient_id, key=key, data=audio)
            row.blob_key = key
            row.content_type = content_type
            row.size_bytes = len(audio)
            row.status = STORED
            row.stored_at = clock_of(session).now()
            row.last_error = None
            log(session, actor=ACTOR, action="recording.store", resource_type="recording", resource_id=row.id,
                patient_id=row.patient_id, details={"recording_sid": item.sid, "bytes": len(audio)})
        logger.info("recording %s stored", item.id)
        return True

    def _later(self, item: _Claimed, error: str) -> None:
        with self.unit_of_work() as session:
            row = session.get(Recording, item.id)
            if row is None or row.status not in (*FETCHABLE, STORED):
                return
            row.next_attempt_at = clock_of(session).now() + backoff(item.attempts)
            row.last_error = error
        logger.warning("recording %s: attempt %d failed; retried later", item.id, item.attempts)

    def _missing(self, item: _Claimed) -> None:
        with self.unit_of_work() as session:
            row = session.get(Recording, item.id)
            if row is None or row.status not in FETCHABLE:
                return
            row.status = MISSING
            row.next_attempt_at = None
            row.last_error = "twilio no longer has it"
            patient = session.get(Patient, row.patient_id)
            if patient is not None:
                create_task(session, patient, kind="recording_missing", priority="normal", reason="recording_missing",
                            details={"recording_id": str(row.id), "recording_sid": item.sid},
                            source_ref=str(row.id), actor=ACTOR)
        logger.warning("recording %s is gone at twilio before it was stored", item.id)


def recording_job(services: BotServices, unit_of_work: UnitOfWork) -> Callable[[], int]:
    """The worker's tick for recordings (see :class:`RecordingJob`)."""
    return RecordingJob(services, unit_of_work).tick
