"""Personal access tokens (stored hashed) and the roles of local users.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_tokens",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("user_id", sa.String(26), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("create_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_used_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("delete_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_access_tokens"),
    )
    op.create_index("uq_access_tokens_token_hash", "access_tokens", ["token_hash"], unique=True)
    op.create_index("ix_access_tokens_user_id", "access_tokens", ["user_id"])
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.String(26), nullable=False),
        sa.Column("roles", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_roles"),
    )


def downgrade() -> None:
    op.drop_table("user_roles")
    op.drop_index("ix_access_tokens_user_id", table_name="access_tokens")
    op.drop_index("uq_access_tokens_token_hash", table_name="access_tokens")
    op.drop_table("access_tokens")
