"""The encrypted spool of the second import pass: records come back in order; nothing is in clear on disk."""

from __future__ import annotations

import pytest

from care.imports.spool import EncryptedSpool, SpoolError


def test_records_come_back_in_order_across_chunks() -> None:
    records = [(number, f"R{number // 3}", 739000 + number, "8480-6", 120.5 + number, "mmHg") for number in range(25)]
    with EncryptedSpool(chunk_records=4) as spool:
        for record in records:
            spool.append(record)
        assert spool.records == 25
        assert list(spool) == records


def test_the_file_holds_no_value_in_clear_and_tampering_is_caught() -> None:
    with EncryptedSpool(chunk_records=2) as spool:
        for number in range(4):
            spool.append((number, "SECRET-REPORT", 146.25))
        list(spool)  # seals the last chunk
        handle = spool._file
        handle.seek(0)
        raw = handle.read()
        assert b"SECRET-REPORT" not in raw
        assert b"146.25" not in raw
        handle.seek(10)
        handle.write(b"\x00" if raw[10] else b"\x01")
        with pytest.raises(SpoolError, match="altered"):
            list(spool)
