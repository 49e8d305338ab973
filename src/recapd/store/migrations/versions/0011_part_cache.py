"""The part cache (summaries of whole stretches of a channel, shared by recaps) and what each
recap cost: agent calls, parts needed and parts reused.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("recaps") as batch:
        batch.add_column(sa.Column("agent_calls", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("parts_total", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("parts_reused", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "part_cache",
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(26), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("end_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claim", sa.String(32), nullable=False, server_default=""),
        sa.Column("claimed_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("result", _Json, nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("create_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("expire_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("cache_key", name="pk_part_cache"),
    )
    op.create_index("ix_part_cache_expire_at", "part_cache", ["expire_at"])


def downgrade() -> None:
    op.drop_index("ix_part_cache_expire_at", table_name="part_cache")
    op.drop_table("part_cache")
    with op.batch_alter_table("recaps") as batch:
        batch.drop_column("parts_reused")
        batch.drop_column("parts_total")
        batch.drop_column("agent_calls")
