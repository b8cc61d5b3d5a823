"""WeChat: card-number binding without oracles, plain-mode replay guard

Revision ID: 0004_wxsec
Revises: 0004_auth
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_wxsec"
down_revision = "0004_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A card number that names no one we may text still gets a (patient-less) code row, so binding
    # answers the same either way; the card's blind index counts its attempts per day.
    with op.batch_alter_table("binding_codes", schema=None) as batch_op:
        batch_op.alter_column("patient_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.add_column(sa.Column("card_index", sa.LargeBinary(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_binding_codes_card_index"), ["card_index"], unique=False)

    op.create_table(
        "wechat_nonces",
        sa.Column("stamp", sa.BigInteger(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("body_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wechat_nonces")),
        sa.UniqueConstraint("stamp", "nonce", name=op.f("uq_wechat_nonces_stamp_nonce")),
    )
    with op.batch_alter_table("wechat_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wechat_nonces_stamp"), ["stamp"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wechat_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wechat_nonces_stamp"))
    op.drop_table("wechat_nonces")
    op.execute("DELETE FROM binding_codes WHERE patient_id IS NULL")
    with op.batch_alter_table("binding_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_binding_codes_card_index"))
        batch_op.drop_column("card_index")
        batch_op.alter_column("patient_id", existing_type=sa.Uuid(), nullable=False)
