"""The local chat workspace: users, teams, channels, channel members, posts and reactions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id(name: str = "id", **kwargs: object) -> sa.Column[str]:
    return sa.Column(name, sa.String(26), nullable=False, **kwargs)  # type: ignore[arg-type]


def _ms(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "users",
        _id(),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False, server_default=""),
        sa.Column("email", sa.String(255), nullable=False, server_default=""),
        sa.Column("locale", sa.String(32), nullable=False, server_default="en"),
        sa.Column("timezone", sa.String(64), nullable=False, server_default=""),
        sa.Column("is_bot", sa.Boolean, nullable=False, server_default=sa.false()),
        _ms("create_at"),
        _ms("delete_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
    )
    op.create_index("uq_users_username", "users", ["username"], unique=True)

    op.create_table(
        "teams",
        _id(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False, server_default=""),
        _ms("create_at"),
        _ms("delete_at"),
        sa.PrimaryKeyConstraint("id", name="pk_teams"),
    )
    op.create_index("uq_teams_name", "teams", ["name"], unique=True)

    op.create_table(
        "channels",
        _id(),
        _id("team_id", server_default=""),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False, server_default=""),
        sa.Column("type", sa.String(8), nullable=False, server_default="O"),
        sa.Column("header", sa.Text, nullable=False, server_default=""),
        sa.Column("purpose", sa.Text, nullable=False, server_default=""),
        _ms("create_at"),
        _ms("delete_at"),
        sa.PrimaryKeyConstraint("id", name="pk_channels"),
    )
    op.create_index("uq_channels_team_id_name", "channels", ["team_id", "name"], unique=True)

    op.create_table(
        "channel_members",
        _id("channel_id"),
        _id("user_id"),
        _ms("last_viewed_at"),
        _ms("create_at"),
        sa.PrimaryKeyConstraint("channel_id", "user_id", name="pk_channel_members"),
    )
    op.create_index("ix_channel_members_user_id", "channel_members", ["user_id"])

    op.create_table(
        "posts",
        _id(),
        _id("channel_id"),
        _id("user_id"),
        _id("root_id", server_default=""),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("type", sa.String(64), nullable=False, server_default=""),
        sa.Column("props", Json, nullable=False),
        _ms("create_at"),
        _ms("update_at"),
        _ms("edit_at"),
        _ms("delete_at"),
        sa.PrimaryKeyConstraint("id", name="pk_posts"),
    )
    op.create_index("ix_posts_channel_id_create_at_id", "posts", ["channel_id", "create_at", "id"])
    op.create_index("ix_posts_root_id", "posts", ["root_id"])

    op.create_table(
        "reactions",
        _id("post_id"),
        _id("user_id"),
        sa.Column("emoji_name", sa.String(64), nullable=False),
        _ms("create_at"),
        sa.PrimaryKeyConstraint("post_id", "user_id", "emoji_name", name="pk_reactions"),
    )


def downgrade() -> None:
    op.drop_table("reactions")
    op.drop_table("posts")
    op.drop_table("channel_members")
    op.drop_table("channels")
    op.drop_table("teams")
    op.drop_table("users")
