"""record which master key the database belongs to

Revision ID: 0002_cli
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_cli"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row (id 1), written by `careloop init` when the key is first made or first seen.
    op.create_table(
        "key_ring_identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_ring_identity")),
    )


def downgrade() -> None:
    op.drop_table("key_ring_identity")
