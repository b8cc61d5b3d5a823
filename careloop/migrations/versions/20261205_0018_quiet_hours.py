"""a patient's own quiet hours (patients.quiet_hours, HH:MM-HH:MM; NULL: the clinic's CARELOOP_QUIET_HOURS)

Revision ID: 0010_quiet_hours
Revises: 0009_break_glass
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_quiet_hours"
down_revision = "0009_break_glass"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default): SQLite adds it in place. Rebuilding the patients table
    # instead would, with foreign keys on, cascade its DROP to every row that names a patient.
    op.add_column("patients", sa.Column("quiet_hours", sa.String(11), nullable=True))


def downgrade() -> None:
    # SQLite drops a column in place (3.35+) only outside batch mode's rebuild.
    op.drop_column("patients", "quiet_hours")
