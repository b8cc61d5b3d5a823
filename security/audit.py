"""The tamper-evident audit trail.

Writing an entry is cheap and takes no global lock: each row carries an HMAC-SHA-256, made at
write time with a key derived from the root secret, over every field of the entry. The worker
then *seals* entries in order: each sealed entry gets the next sequence number and a chain value
``HMAC(chain_key, previous_chain | seq | entry_mac)``; the head of the chain is kept, with its own
MAC, in ``audit_chain_head``. Someone with database access but without the key can therefore not
forge an entry (its MAC fails), alter one (its MAC fails), remove a sealed one (the sequence has a
gap and the chain breaks), or re-chain entries (the chain MACs need the key).

Entries never hold PHI values: who, what action, which resource and patient (ids), when, from where.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Generator, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from security.crypto import SecurityBase
from security.dialects import lock_rows
from security.keys import KeyRing
from security.storage import BigIntegerPK, UtcDateTime, Uuid

ACTOR_KINDS = ("user", "system", "patient", "api")


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


class AuditKeys:
    """The two audit keys, derived from the root secret."""

    def __init__(self, key_ring: KeyRing) -> None:
        self.entry_key = key_ring.purpose_key("audit-entry")
        self.chain_key = key_ring.purpose_key("audit-chain")

    def entry_mac(self, entry: AuditEntry | Mapping[str, Any]) -> bytes:
        """The MAC over every field of an entry (a row object, or its column values before insertion)."""
        def field(name: str) -> Any:
            return entry[name] if isinstance(entry, Mapping) else getattr(entry, name)

        patient_id = field("patient_id")
        canonical = json.dumps(
            [
                str(field("entry_id")),
                field("occurred_at").isoformat(timespec="microseconds"),
                field("actor_kind"),
                field("actor_id"),
                field("action"),
                field("resource_type"),
                field("resource_id"),
                str(patient_id) if patient_id else None,
                field("source"),
                field("details"),
            ],
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        return hmac.new(self.entry_key, canonical, hashlib.sha256).digest()

    def link(self, previous: bytes, seq: int, entry_mac: bytes) -> bytes:
        return hmac.new(self.chain_key, previous + seq.to_bytes(8, "big") + entry_mac, hashlib.sha256).digest()

    def head_mac(self, seq: int, chain: bytes) -> bytes:
        return hmac.new(self.chain_key, b"head" + seq.to_bytes(8, "big") + chain, hashlib.sha256).digest()


def _check_details(details: Mapping[str, Any]) -> str:
    for value in details.values():
        if not isinstance(value, str | int | float | bool | type(None)):
            raise TypeError("audit details hold ids, counts and codes only (flat scalars)")
    return json.dumps(dict(details), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def entry_row(
    keys: AuditKeys,
    *,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: object = None,
    patient_id: uuid.UUID | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime,
) -> dict[str, Any]:
    """The column values of a new entry, its MAC included (the id is the database's)."""
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
    }
    row["mac"] = keys.entry_mac(row)
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
    entry = AuditEntry(**entry_row(keys, actor=actor, action=action, resource_type=resource_type,
                                   resource_id=resource_id, patient_id=patient_id, details=details, now=now))
    session.add(entry)
    return entry


def seal(session: Session, keys: AuditKeys, *, now: datetime, limit: int = 5000) -> int:
    """Chain up to ``limit`` unsealed entries, in id order; return how many were sealed.

    An entry whose MAC does not verify is left unsealed (``verify`` reports it) and sealing
    stops there, so a forged row never gets a valid place in the chain.
    """
    head_query = select(AuditChainHead).where(AuditChainHead.id == 1)
    head_query = lock_rows(session, head_query)
    head = session.scalars(head_query).one_or_none()
    if head is None:
        seq, chain = 0, GENESIS
    else:
        if not hmac.compare_digest(head.mac, keys.head_mac(head.seq, head.chain)):
            raise AuditIntegrityError("the audit chain head was altered; run `careloop audit verify`")
        seq, chain = head.seq, head.chain
    pending = session.scalars(
        select(AuditEntry).where(AuditEntry.seq.is_(None)).order_by(AuditEntry.id).limit(limit)
    ).all()
    sealed = 0
    for entry in pending:
        if not hmac.compare_digest(entry.mac, keys.entry_mac(entry)):
            break
        seq += 1
        chain = keys.link(chain, seq, entry.mac)
        entry.seq, entry.chain = seq, chain
        sealed += 1
    if sealed:
        if head is None:
            head = AuditChainHead(id=1, seq=seq, chain=chain, sealed_at=now, mac=keys.head_mac(seq, chain))
            session.add(head)
        else:
            head.seq, head.chain, head.sealed_at, head.mac = seq, chain, now, keys.head_mac(seq, chain)
    return sealed


class AuditIntegrityError(Exception):
    """The audit trail does not verify."""


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    sealed: int
    unsealed: int
    problem: str | None = None
    entry_id: int | None = None


def _entries(session: Session, sealed: bool) -> Generator[AuditEntry, None, None]:
    condition = AuditEntry.seq.is_not(None) if sealed else AuditEntry.seq.is_(None)
    order = AuditEntry.seq if sealed else AuditEntry.id
    result = session.scalars(select(AuditEntry).where(condition).order_by(order).execution_options(yield_per=2000))
    try:
        yield from result
    finally:
        # A server-side cursor must be closed even when verification stops at the first problem.
        result.close()


def verify(session: Session, keys: AuditKeys) -> VerifyReport:
    """Walk the chain and every unsealed entry; report the first entry that does not verify."""
    seen: set[uuid.UUID] = set()
    with closing(_entries(session, sealed=True)) as sealed_entries:
        walked = _walk_chain(sealed_entries, keys, seen)
    if isinstance(walked, VerifyReport):
        return walked
    chain, sealed = walked
    head = session.get(AuditChainHead, 1)
    if head is not None:
        if not hmac.compare_digest(head.mac, keys.head_mac(head.seq, head.chain)):
            return VerifyReport(False, sealed, 0, "the chain head was altered")
        if head.seq != sealed or not hmac.compare_digest(head.chain, chain):
            return VerifyReport(False, sealed, 0, f"the chain ends at seq {sealed} but was sealed up to seq "
                                f"{head.seq}: entries at the end were removed")
    elif sealed:
        return VerifyReport(False, sealed, 0, "the chain head is missing")
    unsealed = 0
    with closing(_entries(session, sealed=False)) as unsealed_entries:
        for entry in unsealed_entries:
            if not hmac.compare_digest(entry.mac, keys.entry_mac(entry)):
                return VerifyReport(False, sealed, unsealed, f"entry id {entry.id} was inserted or altered "
                                    "(its MAC does not verify)", entry.id)
            if entry.entry_id in seen:
                return VerifyReport(False, sealed, unsealed, f"entry id {entry.id} duplicates another entry",
                                    entry.id)
            seen.add(entry.entry_id)
            unsealed += 1
    return VerifyReport(True, sealed, unsealed)


def _walk_chain(
    entries: Iterator[AuditEntry], keys: AuditKeys, seen: set[uuid.UUID]
) -> tuple[bytes, int] | VerifyReport:
    """Recompute the chain over sealed entries in order; return (last chain value, count) or the problem."""
    chain, sealed = GENESIS, 0
    for entry in entries:
        expected_seq = sealed + 1
        if entry.seq is None or entry.chain is None or entry.seq < expected_seq:
            return VerifyReport(False, sealed, 0, f"entry id {entry.id} has a broken sequence number", entry.id)
        if entry.seq != expected_seq:
            removed = f"{expected_seq}" if entry.seq == expected_seq + 1 else f"{expected_seq}..{entry.seq - 1}"
            return VerifyReport(False, sealed, 0, f"chain position {removed} was removed (the next entry present is "
                                f"id {entry.id}, seq {entry.seq})", entry.id)
        if not hmac.compare_digest(entry.mac, keys.entry_mac(entry)):
            return VerifyReport(False, sealed, 0, f"entry id {entry.id} (seq {entry.seq}) was altered", entry.id)
        if entry.entry_id in seen:
            return VerifyReport(False, sealed, 0, f"entry id {entry.id} (seq {entry.seq}) duplicates another entry",
                                entry.id)
        seen.add(entry.entry_id)
        chain = keys.link(chain, entry.seq, entry.mac)
        if not hmac.compare_digest(chain, entry.chain):
            return VerifyReport(False, sealed, 0, f"entry id {entry.id} (seq {entry.seq}) was re-chained or an "
                                "entry before it was replaced", entry.id)
        sealed += 1
    return chain, sealed


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
