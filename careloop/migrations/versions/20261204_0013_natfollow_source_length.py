"""a source names its flow: widen followups.source and observations.source to 80 characters

"flow:<flow id>" did not fit 32 characters for a flow id over 27 characters
(flow:national_hypertension_followup); flow ids run to 64.

Revision ID: 0007_natfollow
Revises: 0007_plans
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_natfollow"
down_revision = "0007_plans"
branch_labels = None
depends_on = None

_COLUMNS = (("followups", "source"), ("observations", "source"))


def upgrade() -> None:
    for table, column in _COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=sa.String(length=32), type_=sa.String(length=80),
                                  existing_nullable=False)


def downgrade() -> None:
    # A longer source would not fit again: cut it (the flow id's tail), as the old column could hold.
    for table, column in _COLUMNS:
        rows = sa.table(table, sa.column(column, sa.String()))
        source = rows.c[column]
        op.execute(rows.update().where(sa.func.length(source) > 32).values({column: sa.func.substr(source, 1, 32)}))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=sa.String(length=80), type_=sa.String(length=32),
                                  existing_nullable=False)
