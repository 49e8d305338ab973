"""Delivery: a recap's finish time (what a delivery job was made for) and the webhook
deliveries accepted, one row per job key.

`recaps.finish_at` changes only when a recap completes or fails (never on mark read), so a
delivery job can tell a stale outcome from the current one. Existing finished recaps get their
update_at, the best guess left. `webhook_deliveries` replaces `user_webhooks.last_delivery_key`
as the at-most-once record: one user's concurrent jobs can no longer overwrite each other's.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recaps") as batch:
        batch.add_column(sa.Column("finish_at", sa.BigInteger, nullable=False, server_default="0"))
    op.execute("UPDATE recaps SET finish_at = update_at WHERE status IN ('completed', 'failed')")
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_key", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(26), nullable=False),
        sa.Column("delivered_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("delivery_key", name="pk_webhook_deliveries"),
    )
    op.create_index("ix_webhook_deliveries_delivered_at", "webhook_deliveries", ["delivered_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_delivered_at", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("recaps") as batch:
        batch.drop_column("finish_at")
