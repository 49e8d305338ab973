"""Per-user outgoing webhooks for recap delivery (Slack/Mattermost incoming-webhook URLs).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_webhooks",
        sa.Column("user_id", sa.String(26), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("create_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("update_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_delivery_key", sa.String(255), nullable=False, server_default=""),
        sa.Column("last_delivery_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        sa.Column("last_error_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_webhooks"),
    )


def downgrade() -> None:
    op.drop_table("user_webhooks")
