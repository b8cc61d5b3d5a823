"""answers, categories and advice line ids encrypted; the audit trail's writer link and its own chain key

Revision ID: 0002_secdata
Revises: 0002_imports

- ``flow_results.category`` (what the patient answered, e.g. ``nearly_every_day``) becomes a
  ciphertext under the patient's data key, bound to its table, column and row; existing rows are
  re-encrypted here.
- ``advice_overrides.line_id`` (``mental.depression_assessment`` names a condition) becomes a
  ciphertext with a blind index ``line_id_bidx``; one override per patient and line as before.
- ``audit_log.prev_entry_id``: the entry its writer had committed last (see ``security.audit``).
- The chain key now comes from the audit key, no longer from the master root: the existing seals
  cannot be checked with it, so they are cleared here and the worker seals every entry again (the
  entries' own MACs are unchanged and are checked as it does).

Re-encrypting needs the key ring: ``careloop init`` passes it. Without it, the upgrade of a
database that has rows to re-encrypt stops with an error and changes nothing. On SQLite the
tables are rewritten with ``secure_delete`` on, so the clear values do not stay in free pages.
On PostgreSQL the former row versions stay in the table files (never in a ``pg_dump``) until they
are vacuumed: after upgrading a database that held rows, run once
``VACUUM FULL flow_results, advice_overrides`` (it cannot run inside the migration's transaction).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from security.crypto import FieldCipher, field_aad
from security.keys import KeyRing

revision = "0002_secdata"
down_revision = "0002_imports"
branch_labels = None
depends_on = None

BATCH = 500


def _key_ring(needed_for: str) -> KeyRing:
    key_ring = context.config.attributes.get("key_ring")
    if not isinstance(key_ring, KeyRing):
        raise RuntimeError(f"migration 0002_secdata must re-encrypt {needed_for} and needs the key ring: "
                           "run `careloop init` (it passes the key ring to the migration)")
    return key_ring


def _rows(connection: sa.Connection, query: str) -> Iterator[list[tuple[Any, Any, Any, Any, Any]]]:
    """The rows of ``query`` (id, patient_id, value, kek_version, wrapped), in batches."""
    result = connection.execute(sa.text(query))
    while batch := result.fetchmany(BATCH):
        yield [(row[0], row[1], row[2], row[3], row[4]) for row in batch]


def _keys_of(cipher: FieldCipher) -> Callable[[Any, Any, Any], bytes]:
    def key(owner: Any, version: Any, wrapped: Any) -> bytes:
        return cipher.data_key_read(_uuid(owner), None if version is None else int(version),
                                    None if wrapped is None else bytes(wrapped))
    return key


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _count(connection: sa.Connection, query: str) -> int:
    return int(connection.execute(sa.text(query)).scalar() or 0)


def _secure_delete() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA secure_delete = ON")


def upgrade() -> None:
    connection = op.get_bind()
    _secure_delete()
    with op.batch_alter_table("flow_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("category_sealed", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("advice_overrides", schema=None) as batch_op:
        batch_op.add_column(sa.Column("line_id_sealed", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("line_id_bidx", sa.LargeBinary(length=32), nullable=True))
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_entry_id", sa.Uuid(), nullable=True))

    pending = (_count(connection, "SELECT count(*) FROM flow_results WHERE category IS NOT NULL")
               + _count(connection, "SELECT count(*) FROM advice_overrides"))
    if pending:
        cipher = FieldCipher(_key_ring(f"{pending} row(s)"))
        key = _keys_of(cipher)
        results = sa.table("flow_results", sa.column("id", sa.Uuid()), sa.column("category_sealed", sa.LargeBinary()))
        for batch in _rows(connection, "SELECT r.id, r.patient_id, r.category, k.kek_version, k.wrapped "
                                       "FROM flow_results r LEFT JOIN data_keys k ON k.owner_id = r.patient_id "
                                       "WHERE r.category IS NOT NULL ORDER BY r.id"):
            updates = [{"row_id": _uuid(row_id), "sealed": cipher.seal(key(owner, version, wrapped),
                                                                      field_aad("flow_results", "category", _uuid(row_id)),
                                                                      str(category).encode())}
                       for row_id, owner, category, version, wrapped in batch]
            connection.execute(results.update().where(results.c.id == sa.bindparam("row_id"))
                               .values(category_sealed=sa.bindparam("sealed")), updates)
        overrides = sa.table("advice_overrides", sa.column("id", sa.Uuid()), sa.column("line_id_sealed",
                             sa.LargeBinary()), sa.column("line_id_bidx", sa.LargeBinary()))
        for batch in _rows(connection, "SELECT o.id, o.patient_id, o.line_id, k.kek_version, k.wrapped "
                                       "FROM advice_overrides o LEFT JOIN data_keys k ON k.owner_id = o.patient_id "
                                       "ORDER BY o.id"):
            updates = [{"row_id": _uuid(row_id),
                        "sealed": cipher.seal(key(owner, version, wrapped),
                                              field_aad("advice_overrides", "line_id", _uuid(row_id)),
                                              str(line).encode()),
                        "bidx": cipher.blind_index("advice_line", str(line).strip())}
                       for row_id, owner, line, version, wrapped in batch]
            connection.execute(overrides.update().where(overrides.c.id == sa.bindparam("row_id"))
                               .values(line_id_sealed=sa.bindparam("sealed"), line_id_bidx=sa.bindparam("bidx")),
                               updates)

    with op.batch_alter_table("flow_results", schema=None) as batch_op:
        batch_op.drop_column("category")
    with op.batch_alter_table("flow_results", schema=None) as batch_op:
        batch_op.alter_column("category_sealed", new_column_name="category", existing_type=sa.LargeBinary(),
                              existing_nullable=True)
    with op.batch_alter_table("advice_overrides", schema=None) as batch_op:
        batch_op.drop_constraint("uq_advice_overrides_patient_id_line_id", type_="unique")
        batch_op.drop_column("line_id")
    with op.batch_alter_table("advice_overrides", schema=None) as batch_op:
        batch_op.alter_column("line_id_sealed", new_column_name="line_id", existing_type=sa.LargeBinary(),
                              nullable=False)
        batch_op.create_index(batch_op.f("ix_advice_overrides_line_id_bidx"), ["line_id_bidx"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_advice_overrides_patient_id_line_id_bidx"),
                                          ["patient_id", "line_id_bidx"])

    # Seals made with the old chain key: the worker seals every entry again under the audit key.
    op.execute("DELETE FROM audit_chain_head")
    op.execute("UPDATE audit_log SET seq = NULL, chain = NULL")


def downgrade() -> None:
    connection = op.get_bind()
    _secure_delete()
    with op.batch_alter_table("flow_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("category_clear", sa.String(length=64), nullable=True))
    with op.batch_alter_table("advice_overrides", schema=None) as batch_op:
        batch_op.add_column(sa.Column("line_id_clear", sa.String(length=64), nullable=True))

    pending = (_count(connection, "SELECT count(*) FROM flow_results WHERE category IS NOT NULL")
               + _count(connection, "SELECT count(*) FROM advice_overrides"))
    if pending:
        cipher = FieldCipher(_key_ring(f"{pending} row(s) back to clear text"))
        key = _keys_of(cipher)
        results = sa.table("flow_results", sa.column("id", sa.Uuid()), sa.column("category_clear", sa.String()))
        for batch in _rows(connection, "SELECT r.id, r.patient_id, r.category, k.kek_version, k.wrapped "
                                       "FROM flow_results r LEFT JOIN data_keys k ON k.owner_id = r.patient_id "
                                       "WHERE r.category IS NOT NULL ORDER BY r.id"):
            updates = [{"row_id": _uuid(row_id),
                        "clear": cipher.open(key(owner, version, wrapped), field_aad("flow_results", "category",
                                                                                     _uuid(row_id)),
                                             bytes(sealed)).decode()}
                       for row_id, owner, sealed, version, wrapped in batch]
            connection.execute(results.update().where(results.c.id == sa.bindparam("row_id"))
                               .values(category_clear=sa.bindparam("clear")), updates)
        overrides = sa.table("advice_overrides", sa.column("id", sa.Uuid()), sa.column("line_id_clear", sa.String()))
        for batch in _rows(connection, "SELECT o.id, o.patient_id, o.line_id, k.kek_version, k.wrapped "
                                       "FROM advice_overrides o LEFT JOIN data_keys k ON k.owner_id = o.patient_id "
                                       "ORDER BY o.id"):
            updates = [{"row_id": _uuid(row_id),
                        "clear": cipher.open(key(owner, version, wrapped), field_aad("advice_overrides", "line_id",
                                                                                     _uuid(row_id)),
                                             bytes(sealed)).decode()}
                       for row_id, owner, sealed, version, wrapped in batch]
            connection.execute(overrides.update().where(overrides.c.id == sa.bindparam("row_id"))
                               .values(line_id_clear=sa.bindparam("clear")), updates)

    with op.batch_alter_table("flow_results", schema=None) as batch_op:
        batch_op.drop_column("category")
    with op.batch_alter_table("flow_results", schema=None) as batch_op:
        batch_op.alter_column("category_clear", new_column_name="category", existing_type=sa.String(length=64),
                              existing_nullable=True)
    with op.batch_alter_table("advice_overrides", schema=None) as batch_op:
        batch_op.drop_constraint("uq_advice_overrides_patient_id_line_id_bidx", type_="unique")
        batch_op.drop_index(batch_op.f("ix_advice_overrides_line_id_bidx"))
        batch_op.drop_column("line_id")
        batch_op.drop_column("line_id_bidx")
    with op.batch_alter_table("advice_overrides", schema=None) as batch_op:
        batch_op.alter_column("line_id_clear", new_column_name="line_id", existing_type=sa.String(length=64),
                              nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_advice_overrides_patient_id_line_id"),
                                          ["patient_id", "line_id"])
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("prev_entry_id")
    # Entries that named their writer's previous entry no longer verify without that column; their seals go.
    op.execute("DELETE FROM audit_chain_head")
    op.execute("UPDATE audit_log SET seq = NULL, chain = NULL")
