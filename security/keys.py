"""The master key ring: versioned key-encryption keys and the keys derived from the root secret.

A key ring has one *root* secret, from which the purpose keys are derived with HKDF-SHA-256
(blind indexes, audit MACs, the web session secret), and numbered *master keys* (key-encryption
keys, KEKs) that wrap the per-patient data keys. ``rotate()`` adds a new master key and makes it
primary; the worker then re-wraps every data key under it. The derived keys do not change with a
rotation, so blind indexes and the audit chain stay valid.

The ring lives in a JSON file (mode 0600) or, for containers, in ``CARELOOP_MASTER_KEY``: either
that same JSON, or a single base64 32-byte key that becomes the root of a one-version ring.

A running process holds its ring in memory; a rotation by another process (``careloop keys
rotate``) rewrites the file, and :meth:`KeyRing.refresh` picks it up: one ``stat`` of the file tells
whether it changed since it was read, and only then is it read again. The processes decide how
often to look (the web process every few seconds, the worker at every tick).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from security.files import write_private

KEY_BYTES = 32
KEY_ID_BYTES = 8
FILE_FORMAT = "careloop-keyring/1"


class KeyRingError(Exception):
    """The key ring is missing, unreadable or cannot do what was asked."""


def _b64decode_key(text: str, *, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as problem:
        raise KeyRingError(f"{what} is not valid base64") from problem
    if len(raw) != KEY_BYTES:
        raise KeyRingError(f"{what} must decode to {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def derive(root: bytes, purpose: str, length: int = KEY_BYTES) -> bytes:
    """Derive a purpose key from the root secret (HKDF-SHA-256, RFC 5869)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=b"careloop", info=purpose.encode()
    ).derive(root)


FileStamp = tuple[int, int, int]


def _file_stamp(path: Path) -> FileStamp | None:
    """What tells a rewritten key file from the one read before: inode, modification time, size (None: absent)."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as problem:
        raise KeyRingError(f"key file {path} cannot be read: {problem.strerror}") from problem
    return found.st_ino, found.st_mtime_ns, found.st_size


@dataclass
class KeyRing:
    """Versioned master keys plus the root secret; thread-safe for reads and reloads."""

    root: bytes = field(repr=False)
    master_keys: dict[int, bytes] = field(repr=False)
    primary: int
    path: Path | None = None
    from_environment: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # The key file as it was when last read or written (None: not from a file, or not read yet).
    _stamp: FileStamp | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.primary not in self.master_keys:
            raise KeyRingError(f"primary key version {self.primary} is not in the key ring")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def generate(cls, path: Path | None = None) -> KeyRing:
        """Make a new ring with a fresh root and master key version 1."""
        return cls(
            root=secrets.token_bytes(KEY_BYTES),
            master_keys={1: secrets.token_bytes(KEY_BYTES)},
            primary=1,
            path=path,
        )

    @classmethod
    def from_json(cls, text: str, *, path: Path | None = None, from_environment: bool = False) -> KeyRing:
        """Parse the key-ring JSON document."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as problem:
            raise KeyRingError(f"key ring is not valid JSON ({problem.msg})") from problem
        if not isinstance(document, dict) or document.get("format") != FILE_FORMAT:
            raise KeyRingError(f"key ring format must be {FILE_FORMAT!r}")
        keys = document.get("keys")
        if not isinstance(keys, dict) or not keys:
            raise KeyRingError("key ring has no master keys")
        try:
            master_keys = {
                int(version): _b64decode_key(str(value), what=f"master key {version}")
                for version, value in keys.items()
            }
            primary = int(document["primary"])
        except (KeyError, TypeError, ValueError) as problem:
            if isinstance(problem, KeyRingError):
                raise
            raise KeyRingError("key ring versions must be whole numbers") from problem
        root = _b64decode_key(str(document.get("root", "")), what="root key")
        return cls(root=root, master_keys=master_keys, primary=primary, path=path,
                   from_environment=from_environment)

    @classmethod
    def from_environment_value(cls, value: str) -> KeyRing:
        """Read ``CARELOOP_MASTER_KEY``: the ring's JSON, or one base64 32-byte root key."""
        stripped = value.strip()
        if stripped.startswith("{"):
            return cls.from_json(stripped, from_environment=True)
        root = _b64decode_key(stripped, what="CARELOOP_MASTER_KEY")
        return cls(root=root, master_keys={1: derive(root, "master-key/1")}, primary=1,
                   from_environment=True)

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Read the ring from its file."""
        stamp = _file_stamp(path)  # before the read: a file replaced meanwhile is read again at the next look
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as problem:
            raise KeyRingError(f"key file {path} does not exist (run `careloop init`)") from problem
        except OSError as problem:
            raise KeyRingError(f"key file {path} cannot be read: {problem.strerror}") from problem
        ring = cls.from_json(text, path=path)
        ring._stamp = stamp
        return ring

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FILE_FORMAT,
                "root": _b64(self.root),
                "primary": self.primary,
                "keys": {str(v): _b64(k) for v, k in sorted(self.master_keys.items())},
            },
            indent=2,
        )

    def save(self) -> None:
        """Write the ring to its file atomically, readable by the owner only (0600)."""
        if self.path is None:
            raise KeyRingError("this key ring has no file to save to")
        write_private(self.path, self.to_json().encode("utf-8"))
        self._stamp = _file_stamp(self.path)

    # -- use ----------------------------------------------------------------------------------
    def master_key(self, version: int) -> bytes:
        """Return master key ``version``, re-reading the file once if another process rotated."""
        key = self.master_keys.get(version)
        if key is None:
            self.reload()
            key = self.master_keys.get(version)
        if key is None:
            raise KeyRingError(f"master key version {version} is not in the key ring")
        return key

    def primary_key(self) -> tuple[int, bytes]:
        """The primary version and its key, read together (a reload in another thread swaps both at once)."""
        with self._lock:
            return self.primary, self.master_keys[self.primary]

    def reload(self) -> None:
        """Pick up versions added by a rotation in another process.

        Raises:
            KeyRingError: the file cannot be read, or holds another root (the running ring is kept).
        """
        if self.path is None or not self.path.exists():
            return
        fresh = KeyRing.load(self.path)
        if fresh.root != self.root:
            self._stamp = fresh._stamp  # said once for this file, not again at every look
            raise KeyRingError("key file root changed underneath a running process; keeping the ring it started with")
        with self._lock:
            self.master_keys = dict(fresh.master_keys)
            self.primary = fresh.primary
            self._stamp = fresh._stamp

    def refresh(self) -> bool:
        """Read the ring's file again if it changed since it was read (a rotation elsewhere); True when it did.

        Costs one ``stat`` when nothing changed. A ring without a file (``CARELOOP_MASTER_KEY``) never
        changes underneath a process.

        Raises:
            KeyRingError: the file changed but cannot be read, or holds another root; the running ring is
                kept, and the same file is not reported again.
        """
        if self.path is None:
            return False
        stamp = _file_stamp(self.path)
        if stamp is None or stamp == self._stamp:
            return False
        self.reload()
        return True

    def rotate(self) -> int:
        """Add a new master key version, make it primary and save; return the new version."""
        if self.from_environment:
            raise KeyRingError(
                "the key ring comes from CARELOOP_MASTER_KEY; rotate by adding a version to that "
                "JSON value and restarting, or use a key file"
            )
        with self._lock:
            version = max(self.master_keys) + 1
            self.master_keys[version] = secrets.token_bytes(KEY_BYTES)
            self.primary = version
        self.save()
        return version

    def retire(self, version: int) -> None:
        """Remove an old master key version (only once nothing is wrapped under it)."""
        if version == self.primary:
            raise KeyRingError("the primary master key cannot be retired")
        with self._lock:
            self.master_keys.pop(version, None)
        self.save()

    def purpose_key(self, purpose: str) -> bytes:
        """A key for one purpose, derived from the root: stable across rotations."""
        return derive(self.root, purpose)

    @property
    def key_id(self) -> str:
        """Name this ring by 16 hex digits derived from the root: the same across rotations, safe to show.

        The database records it when its key is first made, so a command run with another key (or
        none) says which key the database expects instead of failing on the first ciphertext.
        """
        return derive(self.root, "key-id", KEY_ID_BYTES).hex()

    def describe_source(self) -> str:
        """Say where this ring was read from, for messages (never the key itself)."""
        if self.from_environment:
            return "CARELOOP_MASTER_KEY"
        return f"key file {self.path}" if self.path is not None else "an in-memory key ring"


def open_key_ring(*, key_file: Path, environment_value: str | None, create: bool = False) -> KeyRing:
    """Open the ring from the environment value if set, else from the file (creating it if asked)."""
    if environment_value:
        return KeyRing.from_environment_value(environment_value)
    if create and not key_file.exists():
        ring = KeyRing.generate(key_file)
        ring.save()
        return ring
    return KeyRing.load(key_file)
