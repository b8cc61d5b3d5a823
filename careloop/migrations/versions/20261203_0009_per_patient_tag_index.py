"""tag and advice-line indexes per patient; the source of a tag encrypted

Revision ID: 0005_seclow
Revises: 0002_worker

- ``patient_tags.tag_bidx`` and ``advice_overrides.line_id_bidx`` were one HMAC per value, the same on
  every patient, so a copy of the database grouped and counted the patients by tag or by line. They
  become per patient (``HMAC(HMAC(k, blind index), patient id)``, see ``security.fields``),
  computed here from the stored index: no value is decrypted.
- ``patient_tags.source`` (``flow:phq9`` says which screening set the tag) becomes a ciphertext
  under the patient's data key, bound to its table, column and row.

Both need the key ring when there are rows (``careloop init`` passes it); without it the upgrade
stops with an error and changes nothing. Rows of an erased patient (no data key) cannot be read by
anyone and are removed. On PostgreSQL the former row versions stay in the table files until they
are vacuumed: after upgrading a database that held rows, run once
``VACUUM FULL patient_tags, advice_overrides``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from security.crypto import FieldCipher, KeyDestroyedError, field_aad
from security.keys import KeyRing

revision = "0005_seclow"
down_revision = "0002_worker"
branch_labels = None
depends_on = None

BATCH = 500
TAGS = sa.table("patient_tags", sa.column("id", sa.Uuid()), sa.column("tag_bidx", sa.LargeBinary()),
                sa.column("source_sealed", sa.LargeBinary()), sa.column("source_clear", sa.String()))
OVERRIDES = sa.table("advice_overrides", sa.column("id", sa.Uuid()), sa.column("line_id_bidx", sa.LargeBinary()))


def _cipher(needed_for: str) -> FieldCipher:
    key_ring = context.config.attributes.get("key_ring")
    if not isinstance(key_ring, KeyRing):
        raise RuntimeError(f"migration 0005_seclow must re-key {needed_for} and needs the key ring: "
                           "run `careloop init` (it passes the key ring to the migration)")
    return FieldCipher(key_ring)


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _rows(connection: sa.Connection, query: str) -> Iterator[list[Any]]:
    """The rows of ``query`` in batches, all read before the first batch's updates are sent."""
    rows = [tuple(row) for row in connection.execute(sa.text(query))]
    for start in range(0, len(rows), BATCH):
        yield rows[start:start + BATCH]


def _count(connection: sa.Connection, table: str) -> int:
    return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() or 0)  # noqa: S608


def _data_key(cipher: FieldCipher, owner: Any, version: Any, wrapped: Any) -> bytes | None:
    """The owner's data key, or None when the owner was erased (no ``data_keys`` row)."""
    try:
        return cipher.data_key_read(_uuid(owner), None if version is None else int(version),
                                    None if wrapped is None else bytes(wrapped))
    except KeyDestroyedError:
        return None


def _secure_delete() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA secure_delete = ON")


def _remove(connection: sa.Connection, table: sa.TableClause, ids: list[uuid.UUID]) -> None:
    if ids:
        connection.execute(table.delete().where(table.c.id.in_(ids)))


def upgrade() -> None:
    connection = op.get_bind()
    _secure_delete()
    with op.batch_alter_table("patient_tags", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_sealed", sa.LargeBinary(), nullable=True))

    pending = _count(connection, "patient_tags") + _count(connection, "advice_overrides")
    if pending:
        cipher = _cipher(f"{pending} row(s)")
        for batch in _rows(connection, "SELECT t.id, t.patient_id, t.tag_bidx, t.source, k.kek_version, k.wrapped "
                                       "FROM patient_tags t LEFT JOIN data_keys k ON k.owner_id = t.patient_id "
                                       "ORDER BY t.id"):
            updates, erased = [], []
            for row_id, owner, index, source, version, wrapped in batch:
                key = _data_key(cipher, owner, version, wrapped)
                if key is None or index is None:
                    erased.append(_uuid(row_id))
                    continue
                updates.append({
                    "row_id": _uuid(row_id),
                    "index": cipher.owner_index(cipher.trapdoor_of(bytes(index)), _uuid(owner)),
                    "sealed": cipher.seal(key, field_aad("patient_tags", "source", _uuid(row_id)), str(source).encode()),
                })
            _remove(connection, TAGS, erased)
            if updates:
                connection.execute(TAGS.update().where(TAGS.c.id == sa.bindparam("row_id"))
                                   .values(tag_bidx=sa.bindparam("index"), source_sealed=sa.bindparam("sealed")),
                                   updates)
        for batch in _rows(connection, "SELECT id, patient_id, line_id_bidx FROM advice_overrides ORDER BY id"):
            updates = [{"row_id": _uuid(row_id),
                        "index": cipher.owner_index(cipher.trapdoor_of(bytes(index)), _uuid(owner))}
                       for row_id, owner, index in batch if index is not None]
            if updates:
                connection.execute(OVERRIDES.update().where(OVERRIDES.c.id == sa.bindparam("row_id"))
                                   .values(line_id_bidx=sa.bindparam("index")), updates)

    with op.batch_alter_table("patient_tags", schema=None) as batch_op:
        batch_op.drop_column("source")
    with op.batch_alter_table("patient_tags", schema=None) as batch_op:
        batch_op.alter_column("source_sealed", new_column_name="source", existing_type=sa.LargeBinary(),
                              nullable=False)


def downgrade() -> None:
    connection = op.get_bind()
    _secure_delete()
    with op.batch_alter_table("patient_tags", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_clear", sa.String(length=32), nullable=True))

    pending = _count(connection, "patient_tags") + _count(connection, "advice_overrides")
    if pending:
        cipher = _cipher(f"{pending} row(s) back to indexes shared by every patient")
        for batch in _rows(connection, "SELECT t.id, t.patient_id, t.tag, t.source, k.kek_version, k.wrapped "
                                       "FROM patient_tags t LEFT JOIN data_keys k ON k.owner_id = t.patient_id "
                                       "ORDER BY t.id"):
            updates, erased = [], []
            for row_id, owner, tag, source, version, wrapped in batch:
                key = _data_key(cipher, owner, version, wrapped)
                if key is None:
                    erased.append(_uuid(row_id))
                    continue
                clear_tag = cipher.open(key, field_aad("patient_tags", "tag", _uuid(row_id)), bytes(tag)).decode()
                updates.append({
                    "row_id": _uuid(row_id),
                    "index": cipher.blind_index("tag", clear_tag.strip().lower()),
                    "clear": cipher.open(key, field_aad("patient_tags", "source", _uuid(row_id)),
                                         bytes(source)).decode()[:32],
                })
            _remove(connection, TAGS, erased)
            if updates:
                connection.execute(TAGS.update().where(TAGS.c.id == sa.bindparam("row_id"))
                                   .values(tag_bidx=sa.bindparam("index"), source_clear=sa.bindparam("clear")),
                                   updates)
        for batch in _rows(connection, "SELECT o.id, o.patient_id, o.line_id, k.kek_version, k.wrapped "
                                       "FROM advice_overrides o LEFT JOIN data_keys k ON k.owner_id = o.patient_id "
                                       "ORDER BY o.id"):
            updates = []
            for row_id, owner, line, version, wrapped in batch:
                key = _data_key(cipher, owner, version, wrapped)
                if key is None:
                    continue  # unreadable either way; its index stays as it is
                clear_line = cipher.open(key, field_aad("advice_overrides", "line_id", _uuid(row_id)),
                                         bytes(line)).decode()
                updates.append({"row_id": _uuid(row_id), "index": cipher.blind_index("advice_line", clear_line.strip())})
            if updates:
                connection.execute(OVERRIDES.update().where(OVERRIDES.c.id == sa.bindparam("row_id"))
                                   .values(line_id_bidx=sa.bindparam("index")), updates)

    with op.batch_alter_table("patient_tags", schema=None) as batch_op:
        batch_op.drop_column("source")
    with op.batch_alter_table("patient_tags", schema=None) as batch_op:
        batch_op.alter_column("source_clear", new_column_name="source", existing_type=sa.String(length=32),
                              nullable=False)
