"""Recap channels: the open questions (asked in the window, answered by nobody) and a notice
for the reader (what a post limit left unread), beside highlights and action items.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("recap_channels") as batch:
        batch.add_column(
            sa.Column("open_questions", _JSON, nullable=False, server_default=sa.text("'[]'"))
        )
        batch.add_column(sa.Column("notice", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("recap_channels") as batch:
        batch.drop_column("notice")
        batch.drop_column("open_questions")
