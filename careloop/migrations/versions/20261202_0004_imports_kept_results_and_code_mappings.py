"""imports: results kept as they came (code system, display, recognised) and the clinic's code mappings

Revision ID: 0002_imports
Revises: 0002_voice
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_imports"
down_revision = "0002_voice"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "code_mappings",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("local_code", sa.String(length=32), nullable=False),
        sa.Column("local_key", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=True),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_mappings")),
        sa.UniqueConstraint("source", "local_key", name=op.f("uq_code_mappings_source_local_key")),
    )
    # Every observation stored so far was recognised (imports refused unknown codes): the server
    # default fills the existing rows, so the NOT NULL column needs no rewrite of them.
    op.add_column("observations", sa.Column("code_system", sa.String(length=255), nullable=True))
    op.add_column("observations", sa.Column("recognised", sa.Boolean(), server_default=sa.true(), nullable=False))
    op.add_column("observations", sa.Column("display", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.drop_column("display")
        batch_op.drop_column("recognised")
        batch_op.drop_column("code_system")
    op.drop_table("code_mappings")
