"""The backup file format: engine-neutral parts, each compressed and sealed, and a manifest at the end.

Layout::

    b"CLBK\\x01" | u32 header length | header (JSON, in clear: format, key id, salt, created_at)
    then parts, each: u16 name length | name (UTF-8) | u32 body length | body
    the last part is named "manifest"; nothing may follow it.

A part's body is ``AES-256-GCM(zlib(payload))`` under a key made for this one file: HKDF-SHA-256 of
the master key ring's backup key (derived from the ring's root, so it survives rotations) with the
file's random salt. The nonce is the part's index (unique under a key used by one file only); the
associated data binds the header's digest, the index and the name, so parts cannot be reordered,
dropped, renamed or moved between files. The manifest lists every part with the SHA-256 of its
payload. The writer and reader hold one part at a time, so memory stays flat however big the clinic.

Table rows are JSON lines (the first line names the columns); values that JSON does not carry are
tagged objects (``{"t": "uuid", "v": "..."}``), so a row read from SQLite is written to PostgreSQL
unchanged, and back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from security.keys import KeyRing

MAGIC = b"CLBK\x01"
FORMAT = "careloop-backup/1"
MANIFEST = "manifest"
SALT_BYTES = 16
# The most a header or a part may claim to be: a garbled length is refused instead of allocated.
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024


class BackupError(Exception):
    """The file is not a backup this key ring can read; the message is one line naming why."""


class BackupDamagedError(BackupError):
    """A part of the backup is altered, truncated or missing (the message names the first such part)."""


def backup_key(key_ring: KeyRing) -> bytes:
    """The ring's backup key, derived from its root (stable across master key rotations)."""
    return key_ring.purpose_key("backup/1")


def _file_key(key_ring: KeyRing, salt: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"careloop-backup-file").derive(
        backup_key(key_ring))


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def _aad(header_digest: bytes, index: int, name: str) -> bytes:
    return b"careloop/backup|" + header_digest + index.to_bytes(8, "big") + name.encode()


@dataclass
class PartRecord:
    """What the manifest says of one part."""

    name: str
    sha256: str
    size: int


class BackupWriter:
    """Write parts to an open binary file; :meth:`finish` writes the manifest."""

    def __init__(self, handle: BinaryIO, key_ring: KeyRing, *, created_at: datetime) -> None:
        self._handle = handle
        salt = secrets.token_bytes(SALT_BYTES)
        header = json.dumps({"format": FORMAT, "key_id": key_ring.key_id, "salt": base64.b64encode(salt).decode(),
                             "created_at": created_at.isoformat()}, sort_keys=True).encode()
        handle.write(MAGIC + struct.pack(">I", len(header)) + header)
        self._digest = hashlib.sha256(header).digest()
        self._aead = AESGCM(_file_key(key_ring, salt))
        self._index = 0
        self.parts: list[PartRecord] = []

    def _write(self, name: str, payload: bytes) -> None:
        encoded = name.encode()
        body = self._aead.encrypt(_nonce(self._index), zlib.compress(payload, 6),
                                  _aad(self._digest, self._index, name))
        self._handle.write(struct.pack(">H", len(encoded)) + encoded + struct.pack(">I", len(body)) + body)
        self._index += 1

    def add_part(self, name: str, payload: bytes) -> PartRecord:
        if name == MANIFEST:
            raise ValueError("the manifest is written by finish()")
        self._write(name, payload)
        record = PartRecord(name, hashlib.sha256(payload).hexdigest(), len(payload))
        self.parts.append(record)
        return record

    def finish(self, manifest: dict[str, Any]) -> None:
        document = {**manifest, "parts": [[part.name, part.sha256, part.size] for part in self.parts]}
        self._write(MANIFEST, json.dumps(document, sort_keys=True).encode())
        self._handle.flush()


@dataclass
class Part:
    index: int
    name: str
    payload: bytes


@dataclass
class BackupHeader:
    key_id: str
    created_at: str
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)


def read_header(handle: BinaryIO, *, what: str) -> BackupHeader:
    """Read the clear header (no key needed): the key id and when the backup was made."""
    magic = handle.read(len(MAGIC))
    if magic != MAGIC:
        raise BackupError(f"{what} is not a Careloop backup file")
    raw_length = handle.read(4)
    if len(raw_length) != 4 or (length := struct.unpack(">I", raw_length)[0]) > MAX_HEADER_BYTES:
        raise BackupDamagedError(f"{what}: the header is damaged")
    raw = handle.read(length)
    try:
        header = json.loads(raw)
        if header["format"] != FORMAT:
            raise BackupError(f"{what} is a backup of an unknown format {header['format']!r}")
        return BackupHeader(key_id=str(header["key_id"]), created_at=str(header["created_at"]),
                            salt=base64.b64decode(header["salt"]), digest=hashlib.sha256(raw).digest())
    except (ValueError, KeyError, TypeError) as problem:
        raise BackupDamagedError(f"{what}: the header is damaged") from problem


class BackupReader:
    """Read and authenticate a backup part by part; :attr:`manifest` is set once :meth:`parts` is exhausted.

    Raises:
        BackupError: not a backup, or made under another master key.
        BackupDamagedError: naming the first part that is altered, truncated or missing.
    """

    def __init__(self, handle: BinaryIO, key_ring: KeyRing, *, what: str) -> None:
        self._handle = handle
        self._what = what
        self.header = read_header(handle, what=what)
        if self.header.key_id != key_ring.key_id:
            raise BackupError(f"{what} was made under master key id {self.header.key_id}, but this key ring is "
                              f"{key_ring.key_id}: use the key file the backup was made with")
        self._aead = AESGCM(_file_key(key_ring, self.header.salt))
        self.manifest: dict[str, Any] | None = None

    def _damaged(self, index: int, name: str | None, why: str) -> BackupDamagedError:
        shown = f"part {index}" + (f" ({name})" if name else "")
        return BackupDamagedError(f"{self._what}: {shown} is damaged: {why}")

    def parts(self) -> Iterator[Part]:
        """Yield each data part (never the manifest) in order, checked against the manifest at the end."""
        seen: list[tuple[str, str]] = []
        index = 0
        while True:
            raw_length = self._handle.read(2)
            if not raw_length:
                raise self._damaged(index, None, "the file ends before its manifest (truncated)")
            raw_name = self._handle.read(struct.unpack(">H", raw_length.rjust(2, b"\0"))[0])
            name = raw_name.decode("utf-8", "replace")
            raw_body_length = self._handle.read(4)
            if len(raw_body_length) != 4 or (length := struct.unpack(">I", raw_body_length)[0]) > MAX_BODY_BYTES:
                raise self._damaged(index, name, "its length is garbled or the file is truncated")
            body = self._handle.read(length)
            if len(body) != length:
                raise self._damaged(index, name, "the file is truncated")
            try:
                payload = zlib.decompress(self._aead.decrypt(_nonce(index), body, _aad(self.header.digest, index,
                                                                                       name)))
            except (InvalidTag, zlib.error):
                raise self._damaged(index, name, "it does not authenticate (altered)") from None
            if name == MANIFEST:
                self._close(json.loads(payload), seen, index)
                return
            seen.append((name, hashlib.sha256(payload).hexdigest()))
            yield Part(index, name, payload)
            index += 1

    def _close(self, manifest: dict[str, Any], seen: Sequence[tuple[str, str]], index: int) -> None:
        listed = [(str(name), str(digest)) for name, digest, _size in manifest.get("parts", [])]
        for position, (name, digest) in enumerate(listed):
            if position >= len(seen):
                raise self._damaged(position, name, "it is missing")
            if seen[position] != (name, digest):
                raise self._damaged(position, seen[position][0], "its checksum is not the manifest's")
        if len(seen) != len(listed):
            raise self._damaged(len(listed), seen[len(listed)][0], "the manifest does not list it")
        if self._handle.read(1):
            raise self._damaged(index + 1, None, "bytes follow the manifest")
        self.manifest = manifest


# -- values -------------------------------------------------------------------------------------
def encode_value(value: Any) -> Any:
    """A column value as JSON: scalars as they are, everything else a tagged object."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"t": "bytes", "v": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, datetime):
        return {"t": "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {"t": "date", "v": value.isoformat()}
    if isinstance(value, time):
        return {"t": "time", "v": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"t": "uuid", "v": str(value)}
    if isinstance(value, Decimal):
        return {"t": "decimal", "v": str(value)}
    if isinstance(value, dict | list):
        return {"t": "json", "v": value}
    raise TypeError(f"a backup cannot hold a value of type {type(value).__name__}")


_DECODERS: dict[str, Any] = {
    "bytes": lambda v: base64.b64decode(v),
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "uuid": uuid.UUID,
    "decimal": Decimal,
    "json": lambda v: v,
}


def decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        return _DECODERS[value["t"]](value["v"])
    return value


def table_payload(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """A part of table rows: the column names, then one JSON array a row."""
    lines = [json.dumps(list(columns))]
    lines.extend(json.dumps([encode_value(value) for value in row], ensure_ascii=False) for row in rows)
    return "\n".join(lines).encode()


def table_rows(payload: bytes) -> tuple[list[str], list[dict[str, Any]]]:
    """The column names and the rows (as mappings) of a table part."""
    lines = payload.decode().split("\n")
    columns = json.loads(lines[0])
    return columns, [dict(zip(columns, map(decode_value, json.loads(line)), strict=True)) for line in lines[1:]]
