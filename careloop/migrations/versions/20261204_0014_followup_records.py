"""the follow-up record's staff part (staff member, notes; the outcome column came with 0007_plans) and staff tasks' due time and outcome

Tasks without a due time (those raised before this revision) are due by their priority from when they
were raised (care.tasks.due_time).

Revision ID: 0007_records
Revises: 0007_natfollow
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_records"
down_revision = "0007_natfollow"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_tasks") as batch:
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(32), nullable=True))
        batch.add_column(sa.Column("notes", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("closed_by", sa.Uuid(), nullable=True))
        batch.create_index("ix_staff_tasks_due_at", ["due_at"])
    with op.batch_alter_table("followups") as batch:
        batch.add_column(sa.Column("staff_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("staff_notes", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("followups") as batch:
        batch.drop_column("staff_notes")
        batch.drop_column("staff_id")
    with op.batch_alter_table("staff_tasks") as batch:
        batch.drop_index("ix_staff_tasks_due_at")
        batch.drop_column("closed_by")
        batch.drop_column("notes")
        batch.drop_column("outcome")
        batch.drop_column("due_at")
