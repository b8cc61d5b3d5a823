"""a blind index of each patient's name, so that staff find a patient by the whole name

Revision ID: 0009_name_index
Revises: 0008_interventions

``patients.name_bidx`` is the keyed hash of the name as ``care.identifiers.normalize_name`` makes it
(NFKC, no spaces, case-folded), like the card number's and the phone's. Existing rows get it here
from their decrypted name, so the upgrade needs the key ring when there are patients (``careloop
init`` passes it); without it the upgrade stops with an error and changes nothing. A patient whose
data key was destroyed (erased), or whose name cannot be decrypted, keeps no index: nobody can read
that name any more.
"""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from security.crypto import DecryptionError, FieldCipher, field_aad
from security.keys import KeyRing

revision = "0009_name_index"
down_revision = "0008_interventions"
branch_labels = None
depends_on = None

BATCH = 500
PATIENTS = sa.table("patients", sa.column("id", sa.Uuid()), sa.column("name_bidx", sa.LargeBinary()))


def _normalized(name: str) -> str:
    # As care.identifiers.normalize_name did when this revision was written (a migration keeps its own copy).
    return "".join(unicodedata.normalize("NFKC", name).split()).casefold()


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _cipher(count: int) -> FieldCipher:
    key_ring = context.config.attributes.get("key_ring")
    if not isinstance(key_ring, KeyRing):
        raise RuntimeError(f"migration 0009_name_index must index the names of {count} patient(s) and needs the "
                           "key ring: run `careloop init` (it passes the key ring to the migration)")
    return FieldCipher(key_ring)


def _index(cipher: FieldCipher, row_id: Any, name: Any, version: Any, wrapped: Any) -> bytes | None:
    try:
        key = cipher.data_key_read(_uuid(row_id), None if version is None else int(version),
                                   None if wrapped is None else bytes(wrapped))
        clear = cipher.open(key, field_aad("patients", "name", _uuid(row_id)), bytes(name)).decode("utf-8")
    except (DecryptionError, UnicodeDecodeError):
        # Erased (no data key) or unreadable: nobody can read this name, so nothing can index it.
        return None
    return cipher.blind_index("name", _normalized(clear))


def upgrade() -> None:
    # Plain ALTER TABLE on both engines: a batch copy of ``patients`` on SQLite would drop the old table,
    # and its ON DELETE CASCADE children (results, tags, tasks...) with it.
    op.add_column("patients", sa.Column("name_bidx", sa.LargeBinary(32), nullable=True))
    op.create_index("ix_patients_name_bidx", "patients", ["name_bidx"])
    connection = op.get_bind()
    count = int(connection.execute(sa.text("SELECT count(*) FROM patients WHERE name IS NOT NULL")).scalar() or 0)
    if not count:
        return
    cipher = _cipher(count)
    rows = [tuple(row) for row in connection.execute(sa.text(
        "SELECT p.id, p.name, k.kek_version, k.wrapped FROM patients p "
        "LEFT JOIN data_keys k ON k.owner_id = p.id WHERE p.name IS NOT NULL ORDER BY p.id"))]
    for start in range(0, len(rows), BATCH):
        updates = []
        for row_id, name, version, wrapped in rows[start:start + BATCH]:
            index = _index(cipher, row_id, name, version, wrapped)
            if index is not None:
                updates.append({"row_id": _uuid(row_id), "index": index})
        if updates:
            connection.execute(PATIENTS.update().where(PATIENTS.c.id == sa.bindparam("row_id"))
                               .values(name_bidx=sa.bindparam("index")), updates)


def downgrade() -> None:
    op.drop_index("ix_patients_name_bidx", table_name="patients")
    # SQLite (3.35+) and PostgreSQL both drop a column in place; no copy of the table (see upgrade).
    op.execute("ALTER TABLE patients DROP COLUMN name_bidx")
