"""tag definitions, tag rules with their versions and bulk runs; pinned patient tags

Revision ID: 0006_tagrules
Revises: 0005_careteam

- ``tag_definitions``: the clinic's tags, their colour and zh/en description (a tag without one stays valid).
- ``tag_rules`` and ``tag_rule_versions``: a rule sets a tag while its expression holds; each edit is a version.
- ``tag_rule_runs``: the bulk evaluation of a rule version, with its progress and the last patient done.
- ``patient_tags.pinned``: a tag staff set or pinned, which no rule removes. Existing tags are not pinned.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_tagrules"
down_revision = "0005_careteam"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tag_definitions",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("colour", sa.String(length=7), nullable=True),
        sa.Column("description_zh", sa.Text(), nullable=True),
        sa.Column("description_en", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag_definitions")),
        sa.UniqueConstraint("name", name=op.f("uq_tag_definitions_name")),
    )
    op.create_table(
        "tag_rules",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_key", sa.String(length=64), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag_rules")),
        sa.UniqueConstraint("name_key", name=op.f("uq_tag_rules_name_key")),
    )
    op.create_index(op.f("ix_tag_rules_tag"), "tag_rules", ["tag"], unique=False)
    op.create_table(
        "tag_rule_versions",
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["tag_rules.id"], name=op.f("fk_tag_rule_versions_rule_id_tag_rules"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag_rule_versions")),
        sa.UniqueConstraint("rule_id", "version", name=op.f("uq_tag_rule_versions_rule_id_version")),
    )
    op.create_table(
        "tag_rule_runs",
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("tagged", sa.Integer(), nullable=False),
        sa.Column("untagged", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("last_patient_id", sa.Uuid(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["tag_rules.id"], name=op.f("fk_tag_rule_runs_rule_id_tag_rules"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag_rule_runs")),
    )
    op.create_index(op.f("ix_tag_rule_runs_rule_id"), "tag_rule_runs", ["rule_id"], unique=False)
    op.create_index(op.f("ix_tag_rule_runs_status"), "tag_rule_runs", ["status"], unique=False)
    # A plain ADD COLUMN with a constant default: SQLite adds it in place, PostgreSQL without a rewrite.
    op.add_column("patient_tags", sa.Column("pinned", sa.Boolean(), server_default="0", nullable=False))


def downgrade() -> None:
    # SQLite drops a column in place (3.35+) only outside batch mode's rebuild.
    op.drop_column("patient_tags", "pinned")
    op.drop_index(op.f("ix_tag_rule_runs_status"), table_name="tag_rule_runs")
    op.drop_index(op.f("ix_tag_rule_runs_rule_id"), table_name="tag_rule_runs")
    op.drop_table("tag_rule_runs")
    op.drop_table("tag_rule_versions")
    op.drop_index(op.f("ix_tag_rules_tag"), table_name="tag_rules")
    op.drop_table("tag_rules")
    op.drop_table("tag_definitions")
