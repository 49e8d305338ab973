"""Initial schema: scheduled recaps, recaps and their channels, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ms(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "scheduled_recaps",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("user_id", sa.String(26), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("days_of_week", sa.Integer, nullable=False),
        sa.Column("time_of_day", sa.String(5), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("time_period", sa.String(32), nullable=False),
        _ms("next_run_at"),
        _ms("last_run_at"),
        sa.Column("run_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("channel_mode", sa.String(32), nullable=False),
        sa.Column("channel_ids", Json, nullable=False),
        sa.Column("custom_instructions", sa.Text, nullable=False, server_default=""),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("is_recurring", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        _ms("create_at"),
        _ms("update_at"),
        _ms("delete_at"),
        sa.PrimaryKeyConstraint("id", name="pk_scheduled_recaps"),
    )
    op.create_index(
        "ix_scheduled_recaps_user_id_delete_at", "scheduled_recaps", ["user_id", "delete_at"]
    )
    live = sa.text("enabled AND delete_at = 0")
    op.create_index(
        "ix_scheduled_recaps_due",
        "scheduled_recaps",
        ["next_run_at", "id"],
        sqlite_where=live,
        postgresql_where=live,
    )

    op.create_table(
        "recaps",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("user_id", sa.String(26), nullable=False),
        sa.Column("title", sa.String(255), nullable=False, server_default=""),
        _ms("create_at"),
        _ms("update_at"),
        _ms("delete_at"),
        _ms("read_at"),
        _ms("viewed_at"),
        sa.Column("total_message_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("bot_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("scheduled_recap_id", sa.String(26), nullable=False, server_default=""),
        _ms("scheduled_for"),
        sa.Column("skip_reason", sa.String(64), nullable=False, server_default=""),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("channel_ids", Json, nullable=False),
        sa.Column("time_period", sa.String(32), nullable=False, server_default=""),
        sa.Column("custom_instructions", sa.Text, nullable=False, server_default=""),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_recaps"),
    )
    op.create_index("ix_recaps_user_id_create_at", "recaps", ["user_id", "create_at"])
    op.create_index("ix_recaps_status", "recaps", ["status"])
    scheduled = sa.text("scheduled_recap_id <> ''")
    op.create_index(
        "uq_recaps_occurrence",
        "recaps",
        ["scheduled_recap_id", "scheduled_for"],
        unique=True,
        sqlite_where=scheduled,
        postgresql_where=scheduled,
    )

    op.create_table(
        "recap_channels",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("recap_id", sa.String(26), nullable=False),
        sa.Column("channel_id", sa.String(26), nullable=False),
        sa.Column("channel_name", sa.String(255), nullable=False, server_default=""),
        sa.Column("highlights", Json, nullable=False),
        sa.Column("action_items", Json, nullable=False),
        sa.Column("source_post_ids", Json, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        _ms("create_at"),
        sa.PrimaryKeyConstraint("id", name="pk_recap_channels"),
        sa.ForeignKeyConstraint(
            ["recap_id"],
            ["recaps.id"],
            name="fk_recap_channels_recap_id_recaps",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "uq_recap_channels_recap_id_channel_id",
        "recap_channels",
        ["recap_id", "channel_id"],
        unique=True,
    )

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        _ms("create_at"),
        _ms("start_at"),
        _ms("last_activity_at"),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
        sa.Column("data", Json, nullable=False),
        sa.Column("dedupe_key", sa.String(255), nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        _ms("run_at"),
        sa.Column("node_id", sa.String(255), nullable=False, server_default=""),
        sa.Column("term", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    pending = sa.text("status = 'pending'")
    op.create_index(
        "ix_jobs_claim",
        "jobs",
        ["type", sa.text("priority DESC"), "run_at", "id"],
        sqlite_where=pending,
        postgresql_where=pending,
    )
    op.create_index("ix_jobs_create_at", "jobs", ["create_at", "id"])
    op.create_index("ix_jobs_type_create_at", "jobs", ["type", "create_at"])
    running = sa.text("status IN ('in_progress', 'cancel_requested')")
    op.create_index(
        "ix_jobs_running",
        "jobs",
        ["last_activity_at"],
        sqlite_where=running,
        postgresql_where=running,
    )
    finished = sa.text("status IN ('success', 'error', 'canceled', 'warning')")
    op.create_index(
        "ix_jobs_finished",
        "jobs",
        ["last_activity_at"],
        sqlite_where=finished,
        postgresql_where=finished,
    )
    live = sa.text("status IN ('pending', 'in_progress', 'cancel_requested')")
    op.create_index(
        "uq_jobs_live_dedupe_key",
        "jobs",
        ["dedupe_key"],
        unique=True,
        sqlite_where=live,
        postgresql_where=live,
    )


def downgrade() -> None:
    op.drop_table("jobs")
    op.drop_table("recap_channels")
    op.drop_table("recaps")
    op.drop_table("scheduled_recaps")
