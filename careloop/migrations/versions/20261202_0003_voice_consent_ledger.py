"""consent ledger (recording consent asked on calls)

Revision ID: 0002_voice
Revises: 0002_cli
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_voice"
down_revision = "0002_cli"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_ledger",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("wording_version", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_ref", sa.String(length=64), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_consent_ledger_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_ledger")),
        sa.UniqueConstraint("patient_id", "channel", "purpose", "seq",
                            name=op.f("uq_consent_ledger_patient_id_channel_purpose_seq")),
    )


def downgrade() -> None:
    op.drop_table("consent_ledger")
