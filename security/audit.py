"""The tamper-evident audit trail.

Writing an entry is cheap and takes no global lock: each row carries an HMAC-SHA-256 over every
field, made at write time with the *entry key* (derived from the master root secret, which every
process holds), and names the entry its writing process committed last (``prev_entry_id``: the
link that shows an entry deleted before sealing). The worker then *seals* entries in the order
of their insert id: each sealed entry gets the next sequence number, assigned at sealing time so
that concurrent writers and rolled-back transactions never leave a gap, and a chain value
``HMAC(chain_key, previous_chain | seq | entry_mac)``. The head of the chain is kept, with its own
MAC, in ``audit_chain_head``, and is appended after every seal to the *anchor file* outside the
database (beside the audit key, append-only, mode 0600).

The *chain key* is derived from a key of its own, the audit key (``CARELOOP_AUDIT_KEY_FILE`` or
``CARELOOP_AUDIT_KEY``), which only the sealing process (the worker) and ``careloop audit verify``
are given: the web process writes entries but cannot forge a seal, a head or an anchor.

So someone with database access but without the keys cannot forge or alter an entry (its MAC
fails), remove a sealed one (a sequence number is missing), remove one awaiting sealing (a later
entry of the same writer names it), re-chain entries (the chain needs the chain key), delete the
whole trail or roll its head back (the anchor file records how far it went). A bad row does not
stop the sealer: it is sealed in its place, and an incident entry recording it is sealed after it,
so that ``verify`` reports it from then on.

Entries never hold PHI values: who, what action, which resource and patient (ids), when, from where.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import threading
import uuid
from collections.abc import Generator, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from security.crypto import SecurityBase
from security.dialects import lock_rows
from security.files import append_private, write_private
from security.keys import KEY_BYTES, KeyRing, derive
from security.storage import BigIntegerPK, UtcDateTime, Uuid

ACTOR_KINDS = ("user", "system", "patient", "api")
INCIDENT_ACTION = "audit.incident"
AUDIT_KEY_FORMAT = "careloop-audit-key/1"

logger = logging.getLogger("careloop.audit")


class AuditEntry(SecurityBase):
    """One touch of the record. Append-only; sealing fills ``seq`` and ``chain`` once."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True, autoincrement=True)
    entry_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    source: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[str] = mapped_column(Text, default="{}")
    #: the entry its writing process had committed last when this one was written (None: the first)
    prev_entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    mac: Mapped[bytes] = mapped_column(LargeBinary(32))
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    chain: Mapped[bytes | None] = mapped_column(LargeBinary(32))


class AuditChainHead(SecurityBase):
    """The last sealed position of the chain (one row, id 1)."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    chain: Mapped[bytes] = mapped_column(LargeBinary(32))
    sealed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    mac: Mapped[bytes] = mapped_column(LargeBinary(32))


GENESIS = b"\x00" * 32


@dataclass(frozen=True)
class Actor:
    """Who did it: a staff user, the system (worker, CLI), a patient over a channel, an API client."""

    kind: str
    id: str
    source: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTOR_KINDS:
            raise ValueError(f"unknown actor kind {self.kind!r}")


SYSTEM = Actor("system", "careloop")
SEALER = Actor("system", "audit-sealer", "worker")


class AuditIntegrityError(Exception):
    """The audit trail does not verify."""


class AuditKeyError(Exception):
    """The audit key (the chain key's secret) is missing, unreadable, or not held by this process."""


# -- the audit key and the anchor file (the sealing process only) ------------------------------------------
def _private_append(path: Path, text: str) -> None:
    append_private(path, text.encode("utf-8"))


def read_audit_secret(text: str, *, what: str) -> bytes:
    """The audit key from its file's JSON document, or from a bare base64 32-byte value."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError as problem:
            raise AuditKeyError(f"{what} is not valid JSON ({problem.msg})") from problem
        if not isinstance(document, dict) or document.get("format") != AUDIT_KEY_FORMAT:
            raise AuditKeyError(f"{what}: format must be {AUDIT_KEY_FORMAT!r}")
        stripped = str(document.get("key", ""))
    try:
        raw = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError) as problem:
        raise AuditKeyError(f"{what} is not valid base64") from problem
    if len(raw) != KEY_BYTES:
        raise AuditKeyError(f"{what} must hold {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def open_audit_secret(*, key_file: Path, environment_value: str | None, create: bool = False) -> bytes:
    """The audit key: ``CARELOOP_AUDIT_KEY`` if set, else its file (made, mode 0600, when ``create``).

    Raises:
        AuditKeyError: there is none, or it cannot be read.
    """
    if environment_value:
        return read_audit_secret(environment_value, what="CARELOOP_AUDIT_KEY")
    if create and not key_file.exists():
        secret = os.urandom(KEY_BYTES)
        document = json.dumps({"format": AUDIT_KEY_FORMAT, "key": base64.b64encode(secret).decode("ascii")})
        write_private(key_file, document.encode("utf-8"))
        return secret
    try:
        text = key_file.read_text(encoding="utf-8")
    except FileNotFoundError as problem:
        raise AuditKeyError(f"audit key file {key_file} does not exist (run `careloop init`)") from problem
    except OSError as problem:
        raise AuditKeyError(f"audit key file {key_file} cannot be read: {problem.strerror}") from problem
    return read_audit_secret(text, what=f"audit key file {key_file}")


@dataclass(frozen=True)
class AnchorRecord:
    """One line of the anchor file: the chain's head after one seal."""

    seq: int
    chain: bytes
    sealed_at: str
    line: int


class AnchorFile:
    """The append-only record, outside the database, of how far the chain was sealed.

    One JSON line per seal, ``{"seq", "chain", "at", "mac"}``; the MAC (chain key) covers the
    rest, so a line cannot be forged or edited by someone who has only the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, chain_key: bytes, seq: int, chain: bytes, sealed_at: datetime) -> None:
        at = sealed_at.astimezone(UTC).isoformat(timespec="microseconds")
        line = {"seq": seq, "chain": chain.hex(), "at": at, "mac": _anchor_mac(chain_key, seq, chain, at).hex()}
        _private_append(self.path, json.dumps(line, separators=(",", ":")) + "\n")

    def exists(self) -> bool:
        return self.path.exists()

    def read(self, chain_key: bytes) -> tuple[list[AnchorRecord], list[int]]:
        """The anchored heads, and the numbers of the lines that do not verify."""
        records: list[AnchorRecord] = []
        bad: list[int] = []
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return records, bad
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                item = json.loads(text)
                seq, chain, at = int(item["seq"]), bytes.fromhex(item["chain"]), str(item["at"])
                mac = bytes.fromhex(item["mac"])
            except (ValueError, KeyError, TypeError):
                bad.append(number)
                continue
            if not hmac.compare_digest(mac, _anchor_mac(chain_key, seq, chain, at)):
                bad.append(number)
                continue
            records.append(AnchorRecord(seq, chain, at, number))
        return records, bad


def _anchor_mac(chain_key: bytes, seq: int, chain: bytes, at: str) -> bytes:
    return hmac.new(chain_key, b"anchor" + seq.to_bytes(8, "big") + chain + at.encode(), hashlib.sha256).digest()


class Sealing:
    """What only the sealing process holds: the chain key (derived from the audit key) and the anchor file."""

    def __init__(self, secret: bytes, anchor: Path | None) -> None:
        self.chain_key = derive(secret, "audit-chain")
        self.anchor = AnchorFile(anchor) if anchor is not None else None


# -- keys ------------------------------------------------------------------------------------------------
class AuditKeys:
    """The audit trail's keys: the entry key (every process), the chain key (the sealing process only).

    It also remembers, for this process, the last entry it has committed (what the next entry
    names as ``prev_entry_id``).
    """

    def __init__(self, key_ring: KeyRing, sealing: Sealing | None = None) -> None:
        self.entry_key = key_ring.purpose_key("audit-entry")
        self.sealing = sealing
        self._lock = threading.Lock()
        self._last_committed: uuid.UUID | None = None

    @property
    def can_seal(self) -> bool:
        return self.sealing is not None

    @property
    def chain_key(self) -> bytes:
        if self.sealing is None:
            raise AuditKeyError("this process holds no audit key: only the worker and `careloop audit verify` seal "
                                "and check the chain")
        return self.sealing.chain_key

    def entry_mac(self, entry: AuditEntry | Mapping[str, Any]) -> bytes:
        """The MAC over every field of an entry (a row object, or its column values before insertion)."""
        def value(name: str) -> Any:
            if isinstance(entry, Mapping):
                return entry.get(name)
            return getattr(entry, name)

        patient_id = value("patient_id")
        fields: list[Any] = [
            str(value("entry_id")),
            value("occurred_at").isoformat(timespec="microseconds"),
            value("actor_kind"),
            value("actor_id"),
            value("action"),
            value("resource_type"),
            value("resource_id"),
            str(patient_id) if patient_id else None,
            value("source"),
            value("details"),
        ]
        previous = value("prev_entry_id")
        if previous is not None:  # entries written before the link existed keep their MAC
            fields.append(str(previous))
        canonical = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
        return hmac.new(self.entry_key, canonical, hashlib.sha256).digest()

    def link(self, previous: bytes, seq: int, entry_mac: bytes) -> bytes:
        return hmac.new(self.chain_key, previous + seq.to_bytes(8, "big") + entry_mac, hashlib.sha256).digest()

    def head_mac(self, seq: int, chain: bytes) -> bytes:
        return hmac.new(self.chain_key, b"head" + seq.to_bytes(8, "big") + chain, hashlib.sha256).digest()

    # -- the writer's link ---------------------------------------------------------------------------
    def last_committed(self) -> uuid.UUID | None:
        with self._lock:
            return self._last_committed

    def committed(self, entry_id: uuid.UUID) -> None:
        with self._lock:
            self._last_committed = entry_id


_WRITTEN = "careloop_audit_written"
_ANCHOR = "careloop_audit_anchor"


def note_written(session: Session, entry_id: uuid.UUID) -> None:
    """Remember that the session's transaction wrote entry ``entry_id`` (its last one so far)."""
    session.info[_WRITTEN] = entry_id


def after_commit(session: Session) -> None:
    """Once a transaction is committed: its last entry is what this process's next entry links to,
    and the head it sealed (if any) goes to the anchor file (an ``after_commit`` hook)."""
    keys = session.info.get("audit_keys")
    written = session.info.pop(_WRITTEN, None)
    anchor = session.info.pop(_ANCHOR, None)
    if not isinstance(keys, AuditKeys):
        return
    if written is not None:
        keys.committed(written)
    if anchor is not None and keys.sealing is not None:
        seq, chain, sealed_at = anchor
        logger.info("audit chain sealed to seq %d (head %s)", seq, chain.hex())
        if keys.sealing.anchor is not None:
            try:
                keys.sealing.anchor.append(keys.sealing.chain_key, seq, chain, sealed_at)
            except OSError:
                # The seal is committed; the next one anchors a later head. Verify notices a stale anchor only
                # as "behind", never as a tamper.
                logger.exception("could not append seq %d to the audit anchor file", seq)


def after_rollback(session: Session, _previous: object = None) -> None:
    """A rolled-back transaction's entries never happened: forget them (an ``after_soft_rollback`` hook)."""
    session.info.pop(_WRITTEN, None)
    session.info.pop(_ANCHOR, None)


def _check_details(details: Mapping[str, Any]) -> str:
    for value in details.values():
        if not isinstance(value, str | int | float | bool | type(None)):
            raise TypeError("audit details hold ids, counts and codes only (flat scalars)")
    return json.dumps(dict(details), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def entry_row(
    keys: AuditKeys,
    *,
    session: Session,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: object = None,
    patient_id: uuid.UUID | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime,
) -> dict[str, Any]:
    """The column values of a new entry, its MAC included (the id is the database's), to be written in
    ``session``'s transaction."""
    row: dict[str, Any] = {
        "entry_id": uuid.uuid4(),
        "occurred_at": now.astimezone(UTC),
        "actor_kind": actor.kind,
        "actor_id": actor.id[:64],
        "action": action,
        "resource_type": resource_type,
        "resource_id": None if resource_id is None else str(resource_id),
        "patient_id": patient_id,
        "source": actor.source[:128] if actor.source else None,
        "details": _check_details(details or {}),
        "prev_entry_id": keys.last_committed(),
    }
    row["mac"] = keys.entry_mac(row)
    note_written(session, row["entry_id"])
    return row


def record(
    session: Session,
    keys: AuditKeys,
    *,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: object = None,
    patient_id: uuid.UUID | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime,
) -> AuditEntry:
    """Append one entry (in the caller's transaction; the entry point commits)."""
    entry = AuditEntry(**entry_row(keys, session=session, actor=actor, action=action, resource_type=resource_type,
                                   resource_id=resource_id, patient_id=patient_id, details=details, now=now))
    session.add(entry)
    return entry


_ENTRY_COLUMNS = ("entry_id", "occurred_at", "actor_kind", "actor_id", "action", "resource_type", "resource_id",
                  "patient_id", "source", "details", "prev_entry_id", "mac")


def take_pending_entries(session: Session) -> list[dict[str, Any]]:
    """Take the entries added to ``session`` and not yet flushed out of it, as rows for a batched insert.

    A writer that inserts a unit of work's rows in one statement per table takes the entries the
    care services added as objects too, so the trail is written once per unit of work.
    """
    pending = [instance for instance in session.new if isinstance(instance, AuditEntry)]
    rows = [{column: getattr(entry, column) for column in _ENTRY_COLUMNS} for entry in pending]
    for entry in pending:
        session.expunge(entry)
    return rows


# -- sealing -----------------------------------------------------------------------------------------------
#: What an incident says, by its code (``details.problem``).
INCIDENTS = {
    "mac": "did not verify when it was sealed (inserted or altered before sealing)",
    "previous_missing": "names an entry written before it that is missing (deleted before sealing)",
    "head_missing": "the chain head row was missing",
    "head_altered": "the chain head row was altered",
    "head_behind": "the chain head row was behind the sealed entries (rolled back)",
    "tail_removed": "sealed entries at the end of the chain were missing",
}

LOOKUP_CHUNK = 500


def _existing_entries(session: Session, entry_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    wanted = list(dict.fromkeys(entry_ids))
    found: set[uuid.UUID] = set()
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start:start + LOOKUP_CHUNK]
        found.update(session.scalars(select(AuditEntry.entry_id).where(AuditEntry.entry_id.in_(chunk))))
    return found


def _position(session: Session, keys: AuditKeys,
              head: AuditChainHead | None) -> tuple[int, bytes, tuple[int, str] | None]:
    """Where sealing goes on (seq, chain) and, when the head and the sealed entries disagree, the first
    affected sequence number and why."""
    last = session.execute(select(AuditEntry.seq, AuditEntry.chain).where(AuditEntry.seq.is_not(None))
                           .order_by(AuditEntry.seq.desc()).limit(1)).first()
    last_seq, last_chain = (int(last[0] or 0), bytes(last[1] or GENESIS)) if last is not None else (0, GENESIS)
    if head is None:
        return last_seq, last_chain, ((1, "head_missing") if last is not None else None)
    if not hmac.compare_digest(head.mac, keys.head_mac(head.seq, head.chain)):
        return last_seq, last_chain, (last_seq + 1, "head_altered")
    if last_seq > head.seq:
        return last_seq, last_chain, (head.seq + 1, "head_behind")
    if last_seq < head.seq:
        # Go on after the head: the removed positions stay a gap that verify names.
        return head.seq, head.chain, (last_seq + 1, "tail_removed")
    return head.seq, head.chain, None


def seal(session: Session, keys: AuditKeys, *, now: datetime, limit: int = 5000) -> int:
    """Chain up to ``limit`` unsealed entries, in insert-id order; return how many were sealed.

    An entry that does not verify (its MAC, or the entry it links to is gone) is sealed in its
    place all the same, and an incident entry naming its sequence number is sealed after it: one
    bad row never stops the sealing of the rows after it, and the incident stays in the trail.
    A head that disagrees with the sealed entries is an incident too. The new head is appended
    to the anchor file once the transaction commits (:func:`after_commit`).
    """
    head_query = select(AuditChainHead).where(AuditChainHead.id == 1)
    head_query = lock_rows(session, head_query)
    head = session.scalars(head_query).one_or_none()
    seq, chain, position_problem = _position(session, keys, head)
    pending = list(session.scalars(
        select(AuditEntry).where(AuditEntry.seq.is_(None)).order_by(AuditEntry.id).limit(limit)))
    if not pending and position_problem is None:
        return 0
    batch_ids = {entry.entry_id for entry in pending}
    known = _existing_entries(session, {entry.prev_entry_id for entry in pending
                                        if entry.prev_entry_id is not None and entry.prev_entry_id not in batch_ids})
    incidents: list[tuple[int | None, int | None, str]] = []
    if position_problem is not None:
        incidents.append((position_problem[0], None, position_problem[1]))
    sealed = 0

    def place(entry: AuditEntry) -> int:
        nonlocal seq, chain, sealed
        seq += 1
        chain = keys.link(chain, seq, entry.mac)
        entry.seq, entry.chain = seq, chain
        sealed += 1
        return seq

    for entry in pending:
        problem = None
        if not hmac.compare_digest(entry.mac, keys.entry_mac(entry)):
            problem = "mac"
        elif entry.prev_entry_id is not None and entry.prev_entry_id not in known:
            problem = "previous_missing"
        position = place(entry)
        known.add(entry.entry_id)
        if problem is not None:
            incidents.append((position, entry.id, problem))
    for affected, row_id, problem in incidents:
        logger.warning("audit incident at seq %s (row %s): %s", affected, row_id, problem)
        incident = record(session, keys, actor=SEALER, action=INCIDENT_ACTION, resource_type="audit_entry",
                          resource_id=row_id, details={"seq": affected, "problem": problem}, now=now)
        place(incident)
    if head is None:
        head = AuditChainHead(id=1, seq=seq, chain=chain, sealed_at=now, mac=keys.head_mac(seq, chain))
        session.add(head)
    else:
        head.seq, head.chain, head.sealed_at, head.mac = seq, chain, now, keys.head_mac(seq, chain)
    session.info[_ANCHOR] = (seq, chain, now)
    return sealed


# -- verification ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One thing wrong with the trail: the first sequence number it affects (None: an entry awaiting sealing)."""

    seq: int | None
    message: str
    entry_id: int | None = None


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    sealed: int
    unsealed: int
    problems: tuple[Problem, ...] = field(default=())

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    @property
    def problem(self) -> str | None:
        return self.first.message if self.first else None

    @property
    def entry_id(self) -> int | None:
        return self.first.entry_id if self.first else None

    @property
    def first_seq(self) -> int | None:
        return self.first.seq if self.first else None


def _entries(session: Session, sealed: bool) -> Generator[AuditEntry, None, None]:
    condition = AuditEntry.seq.is_not(None) if sealed else AuditEntry.seq.is_(None)
    order = AuditEntry.seq if sealed else AuditEntry.id
    result = session.scalars(select(AuditEntry).where(condition).order_by(order).execution_options(yield_per=2000))
    try:
        yield from result
    finally:
        # A server-side cursor must be closed even when the caller stops early.
        result.close()


def _incident_problem(entry: AuditEntry) -> Problem:
    try:
        details = json.loads(entry.details)
    except ValueError:
        details = {}
    affected = details.get("seq") if isinstance(details.get("seq"), int) else entry.seq
    what = INCIDENTS.get(str(details.get("problem")), str(details.get("problem")))
    subject = f"entry seq {affected}" if details.get("problem") in ("mac", "previous_missing") else "the chain"
    return Problem(affected, f"incident recorded by the sealer at seq {entry.seq} "
                   f"({entry.occurred_at.isoformat(timespec='seconds')}): {subject} {what}", entry.id)


@dataclass
class _Walk:
    seen: set[uuid.UUID] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    chains: dict[int, bytes] = field(default_factory=dict)
    sealed: int = 0
    last_seq: int = 0
    chain: bytes = GENESIS


def _walk_chain(entries: Iterator[AuditEntry], keys: AuditKeys, anchored: set[int]) -> _Walk:
    """Recompute the chain over the sealed entries in order, noting every problem and going on past it."""
    walk = _Walk()
    for entry in entries:
        seq = int(entry.seq or 0)
        stored = bytes(entry.chain) if entry.chain is not None else b""
        if seq <= walk.last_seq:
            walk.problems.append(Problem(seq, f"entry id {entry.id} has a broken sequence number ({seq})", entry.id))
            continue
        base: bytes | None = walk.chain
        if seq != walk.last_seq + 1:
            first = walk.last_seq + 1
            removed = f"seq {first}" if seq == first + 1 else f"seq {first}..{seq - 1}"
            walk.problems.append(Problem(first, f"{removed} was removed (the next entry present is seq {seq}, "
                                         f"id {entry.id})", entry.id))
            base = None  # the link into this entry cannot be recomputed: take its stored chain value
        if not hmac.compare_digest(entry.mac, keys.entry_mac(entry)):
            walk.problems.append(Problem(seq, f"entry seq {seq} (id {entry.id}) was altered or inserted "
                                         "(its MAC does not verify)", entry.id))
        if entry.entry_id in walk.seen:
            walk.problems.append(Problem(seq, f"entry seq {seq} (id {entry.id}) duplicates another entry", entry.id))
        if entry.prev_entry_id is not None and entry.prev_entry_id not in walk.seen:
            walk.problems.append(Problem(seq, f"entry seq {seq} (id {entry.id}) names an earlier entry that is "
                                         "missing (removed before or after sealing)", entry.id))
        if entry.action == INCIDENT_ACTION and entry.actor_id == SEALER.id:
            walk.problems.append(_incident_problem(entry))
        walk.seen.add(entry.entry_id)
        if base is not None and not hmac.compare_digest(keys.link(base, seq, entry.mac), stored):
            walk.problems.append(Problem(seq, f"entry seq {seq} (id {entry.id}) was re-chained, or an entry "
                                         "before it was replaced", entry.id))
        walk.chain, walk.last_seq = stored, seq
        if seq in anchored:
            walk.chains[seq] = stored
        walk.sealed += 1
    return walk


def _check_head(session: Session, keys: AuditKeys, walk: _Walk) -> list[Problem]:
    head = session.get(AuditChainHead, 1)
    last = walk.last_seq
    if head is None:
        return [Problem(1, "the chain head row is missing")] if last else []
    if not hmac.compare_digest(head.mac, keys.head_mac(head.seq, head.chain)):
        return [Problem(min(head.seq, last) + 1 if last else 1, "the chain head row was altered")]
    if head.seq > last:
        return [Problem(last + 1, f"the chain ends at seq {last} but was sealed up to seq {head.seq}: entries at "
                        "the end were removed")]
    if head.seq < last:
        return [Problem(head.seq + 1, f"the chain head was rolled back to seq {head.seq} (entries are sealed up "
                        f"to seq {last})")]
    if not hmac.compare_digest(head.chain, walk.chain):
        return [Problem(last, f"entry seq {last} does not match the chain head (replaced)")]
    return []


def _check_anchor(keys: AuditKeys, records: list[AnchorRecord], bad_lines: list[int], walk: _Walk) -> list[Problem]:
    sealing = keys.sealing
    if sealing is None or sealing.anchor is None:
        return []
    anchor = sealing.anchor
    problems = [Problem(None, f"line {number} of the anchor file {anchor.path} was altered") for number in bad_lines]
    if not records:
        if walk.sealed and not anchor.exists():
            problems.append(Problem(None, f"the anchor file {anchor.path} is missing: the trail cannot be checked "
                                    "against it"))
        return problems
    furthest = max(records, key=lambda item: item.seq)
    if walk.last_seq < furthest.seq:
        what = "every entry was deleted" if walk.sealed == 0 else "the trail was truncated or its head rolled back"
        problems.append(Problem(walk.last_seq + 1, f"the trail ends at seq {walk.last_seq} but the anchor file "
                                f"records seq {furthest.seq} sealed at {furthest.sealed_at}: {what}"))
    for item in sorted(records, key=lambda item: item.seq):
        stored = walk.chains.get(item.seq)
        if stored is not None and not hmac.compare_digest(stored, item.chain):
            problems.append(Problem(item.seq, f"entry seq {item.seq} is not the one the anchor file records "
                                    f"(line {item.line}, sealed at {item.sealed_at}): the trail was rewritten"))
            break
    return problems


def verify(session: Session, keys: AuditKeys) -> VerifyReport:
    """Walk the chain, the head, the anchor file and every unsealed entry; report every problem found,
    the one affecting the lowest sequence number first.

    Raises:
        AuditKeyError: this process holds no audit key.
    """
    records: list[AnchorRecord] = []
    bad_lines: list[int] = []
    _ = keys.chain_key  # fail at once, not half-way, without the audit key
    if keys.sealing is not None and keys.sealing.anchor is not None:
        records, bad_lines = keys.sealing.anchor.read(keys.chain_key)
    with closing(_entries(session, sealed=True)) as sealed_entries:
        walk = _walk_chain(sealed_entries, keys, {item.seq for item in records})
    problems = list(walk.problems)
    problems += _check_head(session, keys, walk)
    problems += _check_anchor(keys, records, bad_lines, walk)
    unsealed = 0
    with closing(_entries(session, sealed=False)) as unsealed_entries:
        for entry in unsealed_entries:
            where = f"entry id {entry.id}, awaiting sealing,"
            if not hmac.compare_digest(entry.mac, keys.entry_mac(entry)):
                problems.append(Problem(None, f"{where} was inserted or altered (its MAC does not verify)", entry.id))
            elif entry.entry_id in walk.seen:
                problems.append(Problem(None, f"{where} duplicates another entry", entry.id))
            elif entry.prev_entry_id is not None and entry.prev_entry_id not in walk.seen:
                problems.append(Problem(None, f"{where} names an earlier entry that is missing (deleted before "
                                        "sealing)", entry.id))
            walk.seen.add(entry.entry_id)
            unsealed += 1
    ordered = sorted(problems, key=lambda item: (item.seq is None, item.seq or 0))
    return VerifyReport(not ordered, walk.sealed, unsealed, tuple(ordered))


def log(
    session: Session,
    *,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: object = None,
    patient_id: uuid.UUID | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry using the audit keys and clock the session carries."""
    keys = session.info.get("audit_keys")
    clock = session.info.get("clock")
    if not isinstance(keys, AuditKeys) or clock is None:
        raise AuditIntegrityError("this session carries no audit keys; it was not configured by an entry point")
    return record(
        session, keys, actor=actor, action=action, resource_type=resource_type, resource_id=resource_id,
        patient_id=patient_id, details=details, now=clock.now(),
    )
