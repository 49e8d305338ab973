"""Server-wide secrets shared by every node (the web session-signing key), and an index for
the web page's live updates (a user's recaps changed since a time).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "system_secrets",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("create_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("name", name="pk_system_secrets"),
    )
    op.create_index("ix_recaps_user_id_update_at", "recaps", ["user_id", "update_at"])


def downgrade() -> None:
    op.drop_index("ix_recaps_user_id_update_at", table_name="recaps")
    op.drop_table("system_secrets")
