"""The live dedupe-key index of jobs covers only jobs that have a key, so the many jobs
without one cost it nothing when inserted and claimed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_LIVE = "status IN ('pending', 'in_progress', 'cancel_requested')"


def _dedupe_index(where: str) -> None:
    # Dropped and made again in one transaction: uniqueness never lapses.
    op.drop_index("uq_jobs_live_dedupe_key", table_name="jobs")
    op.create_index(
        "uq_jobs_live_dedupe_key",
        "jobs",
        ["dedupe_key"],
        unique=True,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def upgrade() -> None:
    _dedupe_index(f"dedupe_key IS NOT NULL AND {_LIVE}")


def downgrade() -> None:
    _dedupe_index(_LIVE)
