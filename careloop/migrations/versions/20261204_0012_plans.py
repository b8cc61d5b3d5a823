"""follow-up plans (自动随访): plans, their versions, enrolments; follow-ups carry their plan occurrence

Revision ID: 0007_plans
Revises: 0006_tagrules

- ``plans`` and ``plan_versions``: a plan's definition per published version (the YAML and its checked JSON).
- ``plan_enrolments``: a patient in a plan, its source and the ``fire_version`` of its timing.
- ``followups``: the plan, version, step, occurrence and enrolment of a plan's occurrence, its
  ``fire_version``, start mode, what silence does and its outcome. Existing follow-ups are no plan's.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_plans"
down_revision = "0006_tagrules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("title_zh", sa.String(length=200), nullable=False),
        sa.Column("title_en", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("enrol_on_tag", sa.String(length=64), nullable=True),
        sa.Column("enrol_on_events", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("key", name=op.f("uq_plans_key")),
    )
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plans_enrol_on_tag"), ["enrol_on_tag"], unique=False)
    op.create_table(
        "plan_versions",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_plan_versions_plan_id_plans"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_versions")),
        sa.UniqueConstraint("plan_id", "version", name=op.f("uq_plan_versions_plan_id_version")),
    )
    op.create_table(
        "plan_enrolments",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("plan_key", sa.String(length=64), nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("fire_version", sa.Integer(), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_plan_enrolments_patient_id_patients"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_enrolments")),
    )
    with op.batch_alter_table("plan_enrolments", schema=None) as batch_op:
        batch_op.create_index("ix_plan_enrolments_plan_status", ["plan_key", "status"], unique=False)
        batch_op.create_index("ix_plan_enrolments_patient", ["patient_id", "status"], unique=False)
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("plan_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("step_index", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("occurrence", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("enrolment_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("fire_version", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("start_mode", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("on_silence", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_followups_enrolment", ["enrolment_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.drop_index("ix_followups_enrolment")
        for column in ("outcome", "on_silence", "start_mode", "fire_version", "enrolment_id", "occurrence",
                       "step_index", "plan_version", "plan_key"):
            batch_op.drop_column(column)
    with op.batch_alter_table("plan_enrolments", schema=None) as batch_op:
        batch_op.drop_index("ix_plan_enrolments_patient")
        batch_op.drop_index("ix_plan_enrolments_plan_status")
    op.drop_table("plan_enrolments")
    op.drop_table("plan_versions")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plans_enrol_on_tag"))
    op.drop_table("plans")
