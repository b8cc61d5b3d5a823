"""interventions (健康干预): programs, their versions, enrolments; follow-ups that send an education message

Revision ID: 0008_interventions
Revises: 0007_records

- ``intervention_programs`` and ``intervention_program_versions``: a program's definition per
  published version (the YAML and its checked JSON).
- ``intervention_enrolments``: a patient in a program, from its start to its end (by the worker when
  the duration runs out, or by hand), the plan enrolment that carries it out and the stage summary
  drafted at its end; staff's reason for ending it is encrypted.
- ``followups.content_key``: the education message (content library id) a plan's message step sends;
  existing follow-ups send flows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_interventions"
down_revision = "0007_records"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intervention_programs",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("title_zh", sa.String(length=200), nullable=False),
        sa.Column("title_en", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("duration_days", sa.Integer(), nullable=False),
        sa.Column("start_on_tag", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intervention_programs")),
        sa.UniqueConstraint("key", name=op.f("uq_intervention_programs_key")),
    )
    with op.batch_alter_table("intervention_programs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_intervention_programs_start_on_tag"), ["start_on_tag"], unique=False)
    op.create_table(
        "intervention_program_versions",
        sa.Column("program_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["intervention_programs.id"],
                                name=op.f("fk_intervention_program_versions_program_id_intervention_programs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intervention_program_versions")),
        sa.UniqueConstraint("program_id", "version", name=op.f("uq_intervention_program_versions_program_id_version")),
    )
    op.create_table(
        "intervention_enrolments",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("program_key", sa.String(length=64), nullable=False),
        sa.Column("program_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("ended_by", sa.String(length=64), nullable=True),
        sa.Column("end_reason", sa.LargeBinary(), nullable=True),
        sa.Column("plan_enrolment_id", sa.Uuid(), nullable=True),
        sa.Column("summary_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"],
                                name=op.f("fk_intervention_enrolments_patient_id_patients"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intervention_enrolments")),
    )
    with op.batch_alter_table("intervention_enrolments", schema=None) as batch_op:
        batch_op.create_index("ix_intervention_enrolments_patient", ["patient_id", "status"], unique=False)
        batch_op.create_index("ix_intervention_enrolments_due", ["status", "ends_at"], unique=False)
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.drop_column("content_key")
    with op.batch_alter_table("intervention_enrolments", schema=None) as batch_op:
        batch_op.drop_index("ix_intervention_enrolments_due")
        batch_op.drop_index("ix_intervention_enrolments_patient")
    op.drop_table("intervention_enrolments")
    op.drop_table("intervention_program_versions")
    with op.batch_alter_table("intervention_programs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intervention_programs_start_on_tag"))
    op.drop_table("intervention_programs")
