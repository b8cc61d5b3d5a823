"""initial schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("chain", sa.LargeBinary(length=32), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mac", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.String(length=128), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("mac", sa.LargeBinary(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("chain", sa.LargeBinary(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_audit_log_entry_id")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_log_seq")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_actor_id"), ["actor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_occurred_at"), ["occurred_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "data_keys",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("kek_version", sa.Integer(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rewrapped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_data_keys")),
    )
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_keys_kek_version"), ["kek_version"], unique=False)

    op.create_table(
        "inbound_receipts",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("provider_key", sa.String(length=160), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reply", sa.LargeBinary(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_receipts")),
        sa.UniqueConstraint("channel", "provider_key", name=op.f("uq_inbound_receipts_channel_provider_key")),
    )
    with op.batch_alter_table("inbound_receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbound_receipts_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_inbound_receipts_received_at"), ["received_at"], unique=False)

    op.create_table(
        "patients",
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("card_no", sa.LargeBinary(), nullable=False),
        sa.Column("card_no_bidx", sa.LargeBinary(length=32), nullable=True),
        sa.Column("name", sa.LargeBinary(), nullable=False),
        sa.Column("gender", sa.LargeBinary(), nullable=False),
        sa.Column("birth_date", sa.LargeBinary(), nullable=False),
        sa.Column("id_number", sa.LargeBinary(), nullable=True),
        sa.Column("id_number_bidx", sa.LargeBinary(length=32), nullable=True),
        sa.Column("phone", sa.LargeBinary(), nullable=True),
        sa.Column("phone_bidx", sa.LargeBinary(length=32), nullable=True),
        sa.Column("wechat_openid", sa.LargeBinary(), nullable=True),
        sa.Column("wechat_openid_bidx", sa.LargeBinary(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
    )
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patients_card_no_bidx"), ["card_no_bidx"], unique=True)
        batch_op.create_index(batch_op.f("ix_patients_id_number_bidx"), ["id_number_bidx"], unique=True)
        batch_op.create_index(batch_op.f("ix_patients_phone_bidx"), ["phone_bidx"], unique=False)
        batch_op.create_index(batch_op.f("ix_patients_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_patients_wechat_openid_bidx"), ["wechat_openid_bidx"], unique=True)

    op.create_table(
        "provider_credentials",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refreshing_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_credentials")),
        sa.UniqueConstraint("name", name=op.f("uq_provider_credentials_name")),
    )
    op.create_table(
        "roles",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("title_zh", sa.String(length=64), nullable=False),
        sa.Column("title_en", sa.String(length=64), nullable=False),
        sa.Column("permission_names", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
        sa.UniqueConstraint("name", name=op.f("uq_roles_name")),
    )
    op.create_table(
        "source_api_keys",
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("source_name", sa.String(length=64), nullable=False),
        sa.Column("key_mac", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_api_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_source_api_keys_key_id")),
        sa.UniqueConstraint("key_mac", name=op.f("uq_source_api_keys_key_mac")),
    )
    with op.batch_alter_table("source_api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_source_api_keys_source_name"), ["source_name"], unique=False)

    op.create_table(
        "unknown_senders",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unknown_senders")),
        sa.UniqueConstraint("channel", "address_index", name=op.f("uq_unknown_senders_channel_address_index")),
    )
    op.create_table(
        "advice_overrides",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("line_id", sa.String(length=64), nullable=False),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.LargeBinary(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_advice_overrides_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advice_overrides")),
        sa.UniqueConstraint("patient_id", "line_id", name=op.f("uq_advice_overrides_patient_id_line_id")),
    )
    op.create_table(
        "binding_codes",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("openid", sa.LargeBinary(), nullable=False),
        sa.Column("openid_bidx", sa.LargeBinary(length=32), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_binding_codes_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_binding_codes")),
    )
    with op.batch_alter_table("binding_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_binding_codes_openid_bidx"), ["openid_bidx"], unique=False)
        batch_op.create_index(batch_op.f("ix_binding_codes_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "binding_tokens",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("qr_ticket", sa.LargeBinary(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_binding_tokens_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_binding_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_binding_tokens_token_hash")),
    )
    with op.batch_alter_table("binding_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_binding_tokens_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "cards",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("package", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_cards_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cards")),
    )
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cards_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "channel_consents",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("consented", sa.Boolean(), nullable=False),
        sa.Column("consented_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recording_consent", sa.Boolean(), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_channel_consents_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_consents")),
        sa.UniqueConstraint("patient_id", "channel", name=op.f("uq_channel_consents_patient_id_channel")),
    )
    with op.batch_alter_table("channel_consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_channel_consents_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "checkup_reports",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("report_date", sa.Date(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("result_count", sa.Integer(), nullable=False),
        sa.Column("skipped_count", sa.Integer(), nullable=False),
        sa.Column("content_mac", sa.LargeBinary(length=32), nullable=False),
        sa.Column("import_count", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("report_ref", sa.LargeBinary(), nullable=False),
        sa.Column("report_ref_bidx", sa.LargeBinary(length=32), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_checkup_reports_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkup_reports")),
        sa.UniqueConstraint("source", "report_ref_bidx", name=op.f("uq_checkup_reports_source_report_ref_bidx")),
    )
    with op.batch_alter_table("checkup_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_checkup_reports_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_checkup_reports_report_ref_bidx"), ["report_ref_bidx"], unique=False)

    op.create_table(
        "conversation_messages",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=4), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.LargeBinary(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_conversation_messages_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_messages")),
    )
    with op.batch_alter_table("conversation_messages", schema=None) as batch_op:
        batch_op.create_index("ix_conversation_messages_patient_time", ["patient_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversation_messages_session_id"), ["session_id"], unique=False)

    op.create_table(
        "conversation_sessions",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("active_patient_id", sa.Uuid(), nullable=True),
        sa.Column("flow_id", sa.String(length=64), nullable=False),
        sa.Column("flow_version", sa.Integer(), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("next_timer_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_status", sa.String(length=16), nullable=True),
        sa.Column("followup_id", sa.Uuid(), nullable=True),
        sa.Column("call_sid", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.LargeBinary(), nullable=True),
        sa.Column("facts", sa.LargeBinary(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_conversation_sessions_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_sessions")),
        sa.UniqueConstraint("active_patient_id", name=op.f("uq_conversation_sessions_active_patient_id")),
    )
    with op.batch_alter_table("conversation_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversation_sessions_call_sid"), ["call_sid"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversation_sessions_followup_id"), ["followup_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversation_sessions_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index("ix_conversation_sessions_timer", ["status", "next_timer_at"], unique=False)

    op.create_table(
        "flow_results",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("flow_id", sa.String(length=64), nullable=False),
        sa.Column("flow_version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("code", sa.String(length=32), nullable=True),
        sa.Column("unit", sa.String(length=32), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column("label", sa.LargeBinary(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_flow_results_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_results")),
    )
    with op.batch_alter_table("flow_results", schema=None) as batch_op:
        batch_op.create_index("ix_flow_results_patient_name", ["patient_id", "name"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_results_session_id"), ["session_id"], unique=False)

    op.create_table(
        "followups",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("flow_id", sa.String(length=64), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel_order", sa.JSON(), nullable=False),
        sa.Column("channel_index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts_per_channel", sa.Integer(), nullable=False),
        sa.Column("answer_window_hours", sa.Integer(), nullable=False),
        sa.Column("current_channel", sa.String(length=16), nullable=True),
        sa.Column("invited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_action_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_followups_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followups")),
    )
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.create_index("ix_followups_due", ["status", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_followups_next_action_at"), ["next_action_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_followups_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "health_profiles",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("history", sa.LargeBinary(), nullable=True),
        sa.Column("family_history", sa.LargeBinary(), nullable=True),
        sa.Column("allergies", sa.LargeBinary(), nullable=True),
        sa.Column("medications", sa.LargeBinary(), nullable=True),
        sa.Column("lifestyle", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_health_profiles_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_profiles")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_health_profiles_patient_id")),
    )
    op.create_table(
        "observations",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_ref", sa.String(length=128), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column("value_text", sa.LargeBinary(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_observations_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
    )
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.create_index("ix_observations_patient_code_time", ["patient_id", "code", "effective_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_observations_source_ref"), ["source_ref"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("idempotency_key", sa.String(length=160), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_by", sa.String(length=64), nullable=True),
        sa.Column("sending_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("followup_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("address", sa.LargeBinary(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_outbox_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_followup_id"), ["followup_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_provider_id"), ["provider_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_session_id"), ["session_id"], unique=False)

    op.create_table(
        "patient_tags",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tag", sa.LargeBinary(), nullable=False),
        sa.Column("tag_bidx", sa.LargeBinary(length=32), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_patient_tags_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_tags")),
        sa.UniqueConstraint("patient_id", "tag_bidx", name=op.f("uq_patient_tags_patient_id_tag_bidx")),
    )
    with op.batch_alter_table("patient_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patient_tags_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_patient_tags_tag_bidx"), ["tag_bidx"], unique=False)

    op.create_table(
        "recordings",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("provider_sid", sa.String(length=64), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=True),
        sa.Column("followup_id", sa.Uuid(), nullable=True),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("blob_key", sa.String(length=128), nullable=True),
        sa.Column("content_type", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at_provider", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_url", sa.LargeBinary(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_recordings_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.UniqueConstraint("provider_sid", name=op.f("uq_recordings_provider_sid")),
    )
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recordings_call_sid"), ["call_sid"], unique=False)
        batch_op.create_index(batch_op.f("ix_recordings_followup_id"), ["followup_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recordings_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recordings_session_id"), ["session_id"], unique=False)

    op.create_table(
        "risk_assessments",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.String(length=32), nullable=False),
        sa.Column("assessed_on", sa.Date(), nullable=False),
        sa.Column("rule_pack", sa.String(length=64), nullable=False),
        sa.Column("missing", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column("category", sa.LargeBinary(), nullable=False),
        sa.Column("inputs", sa.LargeBinary(), nullable=True),
        sa.Column("result", sa.LargeBinary(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_risk_assessments_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_assessments")),
        sa.UniqueConstraint(
            "patient_id", "model", "assessed_on", name=op.f("uq_risk_assessments_patient_id_model_assessed_on")
        ),
    )
    op.create_table(
        "staff_tasks",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source_ref", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.Uuid(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.LargeBinary(), nullable=False),
        sa.Column("details", sa.LargeBinary(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_staff_tasks_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_tasks")),
    )
    with op.batch_alter_table("staff_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_tasks_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index("ix_staff_tasks_status_priority", ["status", "priority", "created_at"], unique=False)

    op.create_table(
        "tag_reevaluations",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_tag_reevaluations_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag_reevaluations")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_tag_reevaluations_patient_id")),
    )
    with op.batch_alter_table("tag_reevaluations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tag_reevaluations_requested_at"), ["requested_at"], unique=False)

    op.create_table(
        "users",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("totp_last_step", sa.Integer(), nullable=True),
        sa.Column("recovery_code_hashes", sa.JSON(), nullable=False),
        sa.Column("role_id", sa.Uuid(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("totp_secret", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["role_id"], ["roles.id"], name=op.f("fk_users_role_id_roles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "stage_summaries",
        sa.Column("summary_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed_by", sa.Uuid(), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("conclusion", sa.LargeBinary(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_stage_summaries_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["signed_by"], ["users.id"], name=op.f("fk_stage_summaries_signed_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_summaries")),
        sa.UniqueConstraint("summary_id", "version", name=op.f("uq_stage_summaries_summary_id_version")),
    )
    with op.batch_alter_table("stage_summaries", schema=None) as batch_op:
        batch_op.create_index("ix_stage_summaries_patient_period", ["patient_id", "period_end"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("stage_summaries", schema=None) as batch_op:
        batch_op.drop_index("ix_stage_summaries_patient_period")

    op.drop_table("stage_summaries")
    op.drop_table("users")
    with op.batch_alter_table("tag_reevaluations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tag_reevaluations_requested_at"))

    op.drop_table("tag_reevaluations")
    with op.batch_alter_table("staff_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_staff_tasks_status_priority")
        batch_op.drop_index(batch_op.f("ix_staff_tasks_patient_id"))

    op.drop_table("staff_tasks")
    op.drop_table("risk_assessments")
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recordings_session_id"))
        batch_op.drop_index(batch_op.f("ix_recordings_patient_id"))
        batch_op.drop_index(batch_op.f("ix_recordings_followup_id"))
        batch_op.drop_index(batch_op.f("ix_recordings_call_sid"))

    op.drop_table("recordings")
    with op.batch_alter_table("patient_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_tags_tag_bidx"))
        batch_op.drop_index(batch_op.f("ix_patient_tags_patient_id"))

    op.drop_table("patient_tags")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_session_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_provider_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_patient_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_followup_id"))
        batch_op.drop_index("ix_outbox_due")

    op.drop_table("outbox")
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_observations_source_ref"))
        batch_op.drop_index("ix_observations_patient_code_time")

    op.drop_table("observations")
    op.drop_table("health_profiles")
    with op.batch_alter_table("followups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_followups_patient_id"))
        batch_op.drop_index(batch_op.f("ix_followups_next_action_at"))
        batch_op.drop_index("ix_followups_due")

    op.drop_table("followups")
    with op.batch_alter_table("flow_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_results_session_id"))
        batch_op.drop_index("ix_flow_results_patient_name")

    op.drop_table("flow_results")
    with op.batch_alter_table("conversation_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_conversation_sessions_timer")
        batch_op.drop_index(batch_op.f("ix_conversation_sessions_patient_id"))
        batch_op.drop_index(batch_op.f("ix_conversation_sessions_followup_id"))
        batch_op.drop_index(batch_op.f("ix_conversation_sessions_call_sid"))

    op.drop_table("conversation_sessions")
    with op.batch_alter_table("conversation_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_messages_session_id"))
        batch_op.drop_index("ix_conversation_messages_patient_time")

    op.drop_table("conversation_messages")
    with op.batch_alter_table("checkup_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_checkup_reports_report_ref_bidx"))
        batch_op.drop_index(batch_op.f("ix_checkup_reports_patient_id"))

    op.drop_table("checkup_reports")
    with op.batch_alter_table("channel_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_consents_patient_id"))

    op.drop_table("channel_consents")
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cards_patient_id"))

    op.drop_table("cards")
    with op.batch_alter_table("binding_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_binding_tokens_patient_id"))

    op.drop_table("binding_tokens")
    with op.batch_alter_table("binding_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_binding_codes_patient_id"))
        batch_op.drop_index(batch_op.f("ix_binding_codes_openid_bidx"))

    op.drop_table("binding_codes")
    op.drop_table("advice_overrides")
    op.drop_table("unknown_senders")
    with op.batch_alter_table("source_api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_source_api_keys_source_name"))

    op.drop_table("source_api_keys")
    op.drop_table("roles")
    op.drop_table("provider_credentials")
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patients_wechat_openid_bidx"))
        batch_op.drop_index(batch_op.f("ix_patients_status"))
        batch_op.drop_index(batch_op.f("ix_patients_phone_bidx"))
        batch_op.drop_index(batch_op.f("ix_patients_id_number_bidx"))
        batch_op.drop_index(batch_op.f("ix_patients_card_no_bidx"))

    op.drop_table("patients")
    with op.batch_alter_table("inbound_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_receipts_received_at"))
        batch_op.drop_index(batch_op.f("ix_inbound_receipts_patient_id"))

    op.drop_table("inbound_receipts")
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_keys_kek_version"))

    op.drop_table("data_keys")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_patient_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_audit_log_actor_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_action"))

    op.drop_table("audit_log")
    op.drop_table("audit_chain_head")
