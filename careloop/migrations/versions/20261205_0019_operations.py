"""operations: legal holds that block an erasure, and the record of each erasure

Revision ID: 0011_operations
Revises: 0010_quiet_hours

- ``legal_holds``: a patient whose record must be kept (one hold a patient); ``careloop erase`` refuses them.
- ``erasures``: who erased which patient, when and why; no foreign key, it outlives the record it erased
  (the erasure ledger file beside the key file is what a restore re-applies).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_operations"
down_revision = "0010_quiet_hours"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "legal_holds",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("placed_by", sa.String(length=200), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_legal_holds_patient_id_patients"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_holds")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_legal_holds_patient_id")),
    )
    op.create_table(
        "erasures",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_by", sa.String(length=200), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_erasures_patient_id")),
    )


def downgrade() -> None:
    op.drop_table("erasures")
    op.drop_table("legal_holds")
