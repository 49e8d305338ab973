"""Scheduled recaps remember failed occurrences in a row and why they paused themselves.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scheduled_recaps") as batch:
        batch.add_column(
            sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("pause_reason", sa.Text, nullable=False, server_default=""))
        batch.add_column(
            sa.Column("last_scheduled_for", sa.BigInteger, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("scheduled_recaps") as batch:
        batch.drop_column("last_scheduled_for")
        batch.drop_column("pause_reason")
        batch.drop_column("consecutive_failures")
