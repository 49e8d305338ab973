"""The part cache: each row names the fingerprint of its stretch (summarize/fingerprint.py) and
which part of it the row is, so a recap finds a stretch's parts without reading its posts.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("part_cache") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("part", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("parts", sa.Integer, nullable=False, server_default="1"))
    op.create_index("ix_part_cache_fingerprint", "part_cache", ["fingerprint"])


def downgrade() -> None:
    op.drop_index("ix_part_cache_fingerprint", table_name="part_cache")
    with op.batch_alter_table("part_cache") as batch:
        batch.drop_column("parts")
        batch.drop_column("part")
        batch.drop_column("fingerprint")
