"""A temporary, encrypted spool of records: written once in order, read back once in order.

Report import checks a tabular file in a first pass and imports it in a second; the second pass
reads the rows the first pass already checked and converted from this spool instead of parsing the
workbook again (parsing is most of the work). The spool is an anonymous temporary file (unlinked at
once, gone when closed or when the process dies) whose chunks are sealed with AES-256-GCM under a
key that exists only in this object's memory; each chunk's number is its associated data, so
chunks cannot be reordered, dropped or replayed unnoticed. Results never reach the disk in clear.
"""

from __future__ import annotations

import marshal
import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: Records per sealed chunk (bounds the memory of writing and reading).
CHUNK_RECORDS = 4096
_LENGTH_BYTES = 4


class SpoolError(RuntimeError):
    """The spool cannot be read back (it was altered, or written by something else)."""


class EncryptedSpool:
    """Write records (tuples of ints, floats and strings) with :meth:`append`, then iterate them once."""

    def __init__(self, chunk_records: int = CHUNK_RECORDS) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="careloop-spool-")  # noqa: SIM115 - closed in close()
        self._cipher = AESGCM(AESGCM.generate_key(bit_length=256))
        self._pending: list[tuple[Any, ...]] = []
        self._chunk_records = chunk_records
        self._chunks = 0
        self.records = 0

    def append(self, record: tuple[Any, ...]) -> None:
        """Add one record (its values must be what :mod:`marshal` writes: numbers, strings, tuples)."""
        self._pending.append(record)
        self.records += 1
        if len(self._pending) >= self._chunk_records:
            self._seal()

    def _nonce(self, number: int) -> bytes:
        return number.to_bytes(12, "big")

    def _seal(self) -> None:
        if not self._pending:
            return
        number = self._chunks
        sealed = self._cipher.encrypt(self._nonce(number), marshal.dumps(self._pending), number.to_bytes(8, "big"))
        self._file.write(len(sealed).to_bytes(_LENGTH_BYTES, "big") + sealed)
        self._chunks += 1
        self._pending = []

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        """Read every record back, in the order written."""
        self._seal()
        self._file.flush()
        self._file.seek(0)
        for number in range(self._chunks):
            length = int.from_bytes(self._file.read(_LENGTH_BYTES), "big")
            sealed = self._file.read(length)
            try:
                plain = self._cipher.decrypt(self._nonce(number), sealed, number.to_bytes(8, "big"))
            except InvalidTag as problem:
                raise SpoolError("the import's temporary spool was altered") from problem
            yield from marshal.loads(plain)  # noqa: S302 - authenticated (AES-GCM) data this object wrote

    def close(self) -> None:
        """Drop the spool (the file is already unlinked; closing frees its space)."""
        self._pending = []
        self._file.close()

    def __enter__(self) -> EncryptedSpool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
