"""care teams (members and patients); test patients; administrators see every patient

Revision ID: 0005_careteam
Revises: 0002_worker
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005_careteam"
down_revision = "0005_seclow"
branch_labels = None
depends_on = None

ALL_PATIENTS = "patient.all_teams"
ROLES = sa.table("roles", sa.column("id", sa.Uuid()), sa.column("name", sa.String()),
                 sa.column("permission_names", sa.JSON()))


def _names(stored: Any) -> list[str]:
    if isinstance(stored, str):
        stored = json.loads(stored)
    return [str(name) for name in stored or []]


def _set_permission(*, granted: bool, only_role: str | None) -> None:
    connection = op.get_bind()
    query = sa.select(ROLES.c.id, ROLES.c.permission_names)
    if only_role is not None:
        query = query.where(ROLES.c.name == only_role)
    for role_id, stored in connection.execute(query).all():
        names = set(_names(stored))
        changed = names | {ALL_PATIENTS} if granted else names - {ALL_PATIENTS}
        if changed != names:
            connection.execute(ROLES.update().where(ROLES.c.id == role_id).values(permission_names=sorted(changed)))


def upgrade() -> None:
    op.create_table(
        "care_teams",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_teams")),
        sa.UniqueConstraint("name_key", name=op.f("uq_care_teams_name_key")),
    )
    op.create_table(
        "care_team_members",
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["care_teams.id"], name=op.f("fk_care_team_members_team_id_care_teams"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_care_team_members_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_team_members")),
        sa.UniqueConstraint("team_id", "user_id", name=op.f("uq_care_team_members_team_id_user_id")),
    )
    op.create_index(op.f("ix_care_team_members_user_id"), "care_team_members", ["user_id"], unique=False)
    op.create_table(
        "care_team_patients",
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["care_teams.id"], name=op.f("fk_care_team_patients_team_id_care_teams"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"],
                                name=op.f("fk_care_team_patients_patient_id_patients"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_team_patients")),
        sa.UniqueConstraint("team_id", "patient_id", name=op.f("uq_care_team_patients_team_id_patient_id")),
    )
    op.create_index(op.f("ix_care_team_patients_patient_id"), "care_team_patients", ["patient_id"], unique=False)
    # Plain ADD COLUMNs (a string default, no foreign key): SQLite adds them in place. Rebuilding the
    # patients table instead would, with foreign keys on, cascade its DROP to every row that names a patient.
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_test", sa.Boolean(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("test_owner_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_patients_test_owner_id"), ["test_owner_id"], unique=False)
    # Seeing only one's care teams starts now: administrators (whatever a clinic made of the role)
    # keep seeing everyone. The clinic lead role is seeded with it when it is first used.
    _set_permission(granted=True, only_role="admin")


def downgrade() -> None:
    _set_permission(granted=False, only_role=None)
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patients_test_owner_id"))
    # SQLite drops a column in place (3.35+) only outside batch mode's rebuild.
    op.drop_column("patients", "test_owner_id")
    op.drop_column("patients", "is_test")
    op.drop_index(op.f("ix_care_team_patients_patient_id"), table_name="care_team_patients")
    op.drop_table("care_team_patients")
    op.drop_index(op.f("ix_care_team_members_user_id"), table_name="care_team_members")
    op.drop_table("care_team_members")
    op.drop_table("care_teams")
