"""Envelope encryption of fields: a data key per owner (patient), wrapped by the master key ring.

Ciphertext layout (bytes)::

    0x01 | nonce (12) | AES-256-GCM ciphertext and tag

The associated data names the table, column and row, so a ciphertext copied to another row or
column fails to decrypt. Data keys are stored wrapped in ``data_keys``; destroying an owner's row
there makes everything encrypted under it unreadable (crypto-shredding). A rotation adds a master
key version; :meth:`FieldCipher.rewrap_batch` moves data keys onto it in the background.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from typing import cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Integer, LargeBinary, Table, func, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from security.dialects import claim_rows
from security.keys import KeyRing
from security.storage import UtcDateTime, Uuid, metadata

FORMAT_VERSION = 1
NONCE_BYTES = 12
# Owners per query when data keys are loaded in bulk (well under every engine's parameter limit).
LOAD_CHUNK = 500
# The owner of data that belongs to no patient (staff TOTP secrets, settings).
SYSTEM_OWNER = uuid.UUID(int=0)


class DecryptionError(Exception):
    """A ciphertext did not authenticate: tampered, moved, or under a wrong or destroyed key."""


class KeyDestroyedError(DecryptionError):
    """The owner's data key was destroyed (the record was erased)."""


class SecurityBase(DeclarativeBase):
    metadata = metadata


class DataKey(SecurityBase):
    """One owner's data key, wrapped (AES-256-GCM) by master key ``kek_version``."""

    __tablename__ = "data_keys"

    owner_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kek_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    rewrapped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


def _wrap_aad(owner_id: uuid.UUID, kek_version: int) -> bytes:
    return b"careloop/dek|" + owner_id.bytes + kek_version.to_bytes(4, "big")


def field_aad(table: str, column: str, row_id: object) -> bytes:
    """The associated data binding a field's ciphertext to its table, column and row."""
    return f"careloop/field|{table}|{column}|{row_id}".encode()


class FieldCipher:
    """Encrypts and decrypts fields under per-owner data keys; computes blind indexes.

    Unwrapped data keys are cached per process (bounded LRU); :meth:`destroy` evicts at once,
    and other processes drop a destroyed key at their next cache miss or restart.
    """

    def __init__(self, key_ring: KeyRing, *, cache_size: int = 50_000) -> None:
        self.key_ring = key_ring
        self._index_key = key_ring.purpose_key("blind-index")
        self._owner_index_key = key_ring.purpose_key("owner-blind-index")
        self._cache: OrderedDict[uuid.UUID, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # -- data keys ----------------------------------------------------------------------------
    def _cache_get(self, owner_id: uuid.UUID) -> bytes | None:
        with self._lock:
            key = self._cache.get(owner_id)
            if key is not None:
                self._cache.move_to_end(owner_id)
            return key

    def _cache_put(self, owner_id: uuid.UUID, key: bytes) -> None:
        with self._lock:
            self._cache[owner_id] = key
            self._cache.move_to_end(owner_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _wrap(self, owner_id: uuid.UUID, data_key: bytes) -> tuple[int, bytes]:
        version, master = self.key_ring.primary_key()
        nonce = secrets.token_bytes(NONCE_BYTES)
        return version, nonce + AESGCM(master).encrypt(nonce, data_key, _wrap_aad(owner_id, version))

    def _unwrap(self, row: DataKey) -> bytes:
        return self._unwrap_parts(row.owner_id, row.kek_version, row.wrapped)

    def _unwrap_parts(self, owner_id: uuid.UUID, kek_version: int, wrapped: bytes) -> bytes:
        master = self.key_ring.master_key(kek_version)
        nonce, body = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
        try:
            return AESGCM(master).decrypt(nonce, body, _wrap_aad(owner_id, kek_version))
        except InvalidTag as problem:
            raise DecryptionError(f"data key of owner {owner_id} does not unwrap") from problem

    def _create(self, session: Session, owner_id: uuid.UUID, now: datetime) -> bytes:
        data_key = AESGCM.generate_key(bit_length=256)
        version, wrapped = self._wrap(owner_id, data_key)
        session.add(DataKey(owner_id=owner_id, kek_version=version, wrapped=wrapped, created_at=now))
        self._cache_put(owner_id, data_key)
        return data_key

    def forget(self, owner_ids: Iterable[uuid.UUID]) -> None:
        """Drop these owners' data keys from this process's cache (destroyed by another process: erased)."""
        with self._lock:
            for owner_id in owner_ids:
                self._cache.pop(owner_id, None)

    def is_cached(self, owner_id: uuid.UUID) -> bool:
        """Whether the owner's data key is at hand without a query."""
        with self._lock:
            return owner_id in self._cache

    def data_key(self, session: Session, owner_id: uuid.UUID, *, create: bool, now: datetime) -> bytes:
        """Return the owner's data key, creating and wrapping a new one if ``create``."""
        cached = self._cache_get(owner_id)
        if cached is not None:
            return cached
        row = session.get(DataKey, owner_id)
        if row is None and create:
            return self._create(session, owner_id, now)
        return self.data_key_read(owner_id, row.kek_version if row else None, row.wrapped if row else None)

    def data_key_read(self, owner_id: uuid.UUID, kek_version: int | None, wrapped: bytes | None) -> bytes:
        """The owner's data key from its ``data_keys`` row as a caller read it (with other data, in the
        same statement); the cached key if there is one.

        Raises:
            KeyDestroyedError: there was no row (the owner was erased, or never had a key).
        """
        cached = self._cache_get(owner_id)
        if cached is not None:
            return cached
        if kek_version is None or wrapped is None:
            raise KeyDestroyedError(f"no data key for owner {owner_id} (erased or never created)")
        data_key = self._unwrap_parts(owner_id, kek_version, wrapped)
        self._cache_put(owner_id, data_key)
        return data_key

    def load_keys(self, session: Session, owner_ids: Iterable[uuid.UUID], *, create: bool, now: datetime) -> None:
        """Bring many owners' data keys into the cache with one query per chunk (not one per owner).

        With ``create``, owners that have no key yet get a new one, as :meth:`data_key` would give
        them (written with one INSERT per chunk); without it they are skipped, and reading their
        fields fails as usual.
        """
        with self._lock:
            missing = [owner for owner in dict.fromkeys(owner_ids) if owner not in self._cache]
        for start in range(0, len(missing), LOAD_CHUNK):
            chunk = missing[start : start + LOAD_CHUNK]
            query = select(DataKey.owner_id, DataKey.kek_version, DataKey.wrapped).where(DataKey.owner_id.in_(chunk))
            found = {owner: (version, wrapped) for owner, version, wrapped in session.execute(query)}
            created: list[dict[str, object]] = []
            for owner in chunk:
                stored = found.get(owner)
                if stored is not None:
                    self._cache_put(owner, self._unwrap_parts(owner, *stored))
                elif create:
                    data_key = AESGCM.generate_key(bit_length=256)
                    version, wrapped = self._wrap(owner, data_key)
                    created.append({"owner_id": owner, "kek_version": version, "wrapped": wrapped, "created_at": now})
                    self._cache_put(owner, data_key)
            if created:
                # One INSERT for the chunk's new keys (no per-object bookkeeping; the rows are the same).
                session.execute(insert(cast(Table, DataKey.__table__)), created)

    def destroy(self, session: Session, owner_id: uuid.UUID) -> bool:
        """Destroy the owner's data key (crypto-shredding); True if there was one."""
        with self._lock:
            self._cache.pop(owner_id, None)
        row = session.get(DataKey, owner_id)
        if row is None:
            return False
        session.delete(row)
        return True

    def rewrap_batch(self, session: Session, *, now: datetime, limit: int = 500) -> int:
        """Re-wrap up to ``limit`` data keys that are not under the primary master key."""
        primary, _ = self.key_ring.primary_key()
        query = (
            select(DataKey).where(DataKey.kek_version != primary).order_by(DataKey.owner_id).limit(limit)
        )
        query = claim_rows(session, query)
        rows = list(session.scalars(query))
        for row in rows:
            data_key = self._unwrap(row)
            row.kek_version, row.wrapped = self._wrap(row.owner_id, data_key)
            row.rewrapped_at = now
        return len(rows)

    def keys_not_on_primary(self, session: Session) -> int:
        primary, _ = self.key_ring.primary_key()
        count = session.scalar(select(func.count()).select_from(DataKey).where(DataKey.kek_version != primary))
        return int(count or 0)

    # -- fields -------------------------------------------------------------------------------
    def seal(self, data_key: bytes, aad: bytes, plaintext: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return bytes([FORMAT_VERSION]) + nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)

    def open(self, data_key: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        if len(ciphertext) < 1 + NONCE_BYTES + 16 or ciphertext[0] != FORMAT_VERSION:
            raise DecryptionError("ciphertext is truncated or of an unknown format")
        nonce, body = ciphertext[1 : 1 + NONCE_BYTES], ciphertext[1 + NONCE_BYTES :]
        try:
            return AESGCM(data_key).decrypt(nonce, body, aad)
        except InvalidTag as problem:
            raise DecryptionError("ciphertext does not authenticate (altered, moved or wrong key)") from problem

    # -- blind indexes ------------------------------------------------------------------------
    def blind_index(self, kind: str, normalized: str) -> bytes:
        """HMAC-SHA-256 of a normalised value under the index key, separated by kind."""
        message = kind.encode() + b"\x00" + normalized.encode()
        return hmac.new(self._index_key, message, hashlib.sha256).digest()

    # An owner-scoped index is one value's index on one owner's rows only: the same value has another
    # index on every patient, so a copy of the database cannot group or count the patients by it. It is
    # ``HMAC(trapdoor, owner id)``, the value's trapdoor being ``HMAC(owner-index key, blind index)``: a
    # query for the value on every owner computes the trapdoor once and checks each row with one HMAC.
    def owner_trapdoor(self, kind: str, normalized: str) -> bytes:
        """The trapdoor of a value: what finds its owner-scoped index on any owner's rows."""
        return self.trapdoor_of(self.blind_index(kind, normalized))

    def trapdoor_of(self, blind_index: bytes) -> bytes:
        """The trapdoor of the value whose (global) blind index is ``blind_index``."""
        return hmac.new(self._owner_index_key, blind_index, hashlib.sha256).digest()

    @staticmethod
    def owner_index(trapdoor: bytes, owner_id: uuid.UUID) -> bytes:
        """The owner-scoped index of the value of ``trapdoor`` on the rows of ``owner_id``
        (``security.fields.EncryptedField.owners_with`` computes it inline, row by row)."""
        return hmac.digest(trapdoor, owner_id.bytes, "sha256")
