"""The erasure ledger: a file, outside the database, naming each patient whose data key was destroyed.

A backup taken before an erasure still holds that patient's wrapped data key. Restoring it re-applies
every erasure of this ledger (``careloop backup restore``), so an erased patient stays erased whichever
backup comes back. The ledger names patients by their internal id and the time only (no PHI, no reason);
each line carries an HMAC under a key derived from the master key ring's root, so a line added or
changed by hand is refused loudly instead of erasing (or sparing) someone.

    {"patient_id": "4f1c...", "erased_at": "2026-12-05T02:00:00+00:00", "mac": "9a0b..."}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from security.files import append_private
from security.keys import KeyRing


class LedgerError(Exception):
    """The ledger cannot be read, or a line of it does not authenticate."""


@dataclass(frozen=True)
class LedgerEntry:
    patient_id: uuid.UUID
    erased_at: datetime


def _mac(key_ring: KeyRing, patient_id: str, erased_at: str) -> str:
    message = f"{patient_id}|{erased_at}".encode()
    return hmac.new(key_ring.purpose_key("erasure-ledger"), message, hashlib.sha256).hexdigest()


def append_erasure(path: Path, key_ring: KeyRing, entry: LedgerEntry) -> None:
    """Append one erasure to the ledger (made 0600 when missing) and sync it to disk."""
    patient_id, erased_at = str(entry.patient_id), entry.erased_at.isoformat()
    line = {"patient_id": patient_id, "erased_at": erased_at, "mac": _mac(key_ring, patient_id, erased_at)}
    append_private(path, (json.dumps(line, sort_keys=True) + "\n").encode())


def read_ledger(path: Path, key_ring: KeyRing) -> list[LedgerEntry]:
    """Every erasure of the ledger (none when there is no ledger file).

    Raises:
        LedgerError: the file cannot be read, or a line is garbled or does not authenticate (naming it).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as problem:
        raise LedgerError(f"the erasure ledger {path} cannot be read: {problem}") from problem
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
            patient_id, erased_at = str(fields["patient_id"]), str(fields["erased_at"])
            valid = hmac.compare_digest(str(fields["mac"]), _mac(key_ring, patient_id, erased_at))
            entry = LedgerEntry(uuid.UUID(patient_id), datetime.fromisoformat(erased_at))
        except (ValueError, KeyError, TypeError) as problem:
            raise LedgerError(f"the erasure ledger {path}, line {number}, is garbled") from problem
        if not valid:
            raise LedgerError(f"the erasure ledger {path}, line {number}, does not authenticate under this "
                              "master key (altered, or another installation's)")
        entries.append(entry)
    return entries
