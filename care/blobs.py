"""The blob store: encrypted files (recordings, generated reports) kept outside the database.

Blobs are sealed with the owning patient's data key before they are written, so destroying the
key erases them too. The local folder is the embedded default; an S3-compatible store can stand
behind the same :class:`BlobStore` interface.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Protocol

from sqlalchemy.orm import Session

from security.crypto import field_aad
from security.fields import cipher_of, clock_of
from security.files import open_private, private_folder

_SAFE_KEY = re.compile(r"^[a-z0-9][a-z0-9/_.-]{0,127}$")


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...

    def blob_keys(self) -> list[str]: ...


class BlobNotFoundError(KeyError):
    """No blob under that key."""


class LocalBlobStore:
    """Blobs as files (mode 0600) under one folder (it and the folders in it 0700), written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _SAFE_KEY.match(key) or ".." in key:
            raise ValueError(f"unsafe blob key {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        private_folder(path.parent)
        temporary = path.with_name(path.name + f".{uuid.uuid4().hex}.tmp")
        descriptor = open_private(temporary, os.O_WRONLY | os.O_EXCL)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as missing:
            raise BlobNotFoundError(key) from missing

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def blob_keys(self) -> list[str]:
        """Every blob's key, sorted (files being written, ``*.tmp``, left out)."""
        if not self.root.is_dir():
            return []
        found = (path.relative_to(self.root).as_posix() for path in self.root.rglob("*") if path.is_file())
        return sorted(key for key in found if not key.endswith(".tmp") and _SAFE_KEY.match(key))


def put_encrypted(session: Session, store: BlobStore, *, owner_id: uuid.UUID, key: str, data: bytes) -> None:
    """Seal ``data`` under the owner's data key (bound to the blob key) and store it."""
    cipher = cipher_of(session)
    data_key = cipher.data_key(session, owner_id, create=True, now=clock_of(session).now())
    store.put(key, cipher.seal(data_key, field_aad("blob", "data", key), data))


def get_encrypted(session: Session, store: BlobStore, *, owner_id: uuid.UUID, key: str) -> bytes:
    """Read and open a sealed blob (fails loudly if altered, moved or its owner was erased)."""
    cipher = cipher_of(session)
    data_key = cipher.data_key(session, owner_id, create=False, now=clock_of(session).now())
    return cipher.open(data_key, field_aad("blob", "data", key), store.get(key))
