"""worker heartbeats; outbox resends; unconfirmed sends get their own status

Revision ID: 0002_worker
Revises: 0004_wxsec
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_worker"
down_revision = "0004_wxsec"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_heartbeats")),
        sa.UniqueConstraint("worker_id", name=op.f("uq_worker_heartbeats_worker_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resends", sa.Integer(), server_default="0", nullable=False))
    # Before this revision a WeChat send that could not be confirmed was written down as failed.
    op.execute("UPDATE outbox SET status = 'unconfirmed' WHERE status = 'failed' AND error_code = 'unconfirmed'")


def downgrade() -> None:
    op.execute("UPDATE outbox SET status = 'failed' WHERE status = 'unconfirmed'")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("resends")
    op.drop_table("worker_heartbeats")
