"""break-glass grants: a staff member's written reason for opening a patient outside their care teams

Revision ID: 0009_break_glass
Revises: 0009_name_index
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_break_glass"
down_revision = "0009_name_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "break_glass_grants",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.LargeBinary(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_break_glass_grants_patient_id_patients"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_break_glass_grants_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_break_glass_grants")),
    )
    op.create_index(op.f("ix_break_glass_grants_user_id"), "break_glass_grants", ["user_id"])
    op.create_index(op.f("ix_break_glass_grants_patient_id"), "break_glass_grants", ["patient_id"])
    op.create_index(op.f("ix_break_glass_grants_granted_at"), "break_glass_grants", ["granted_at"])


def downgrade() -> None:
    op.drop_table("break_glass_grants")
