"""The schema, as SQLAlchemy Core tables. Migrations in `migrations/` must produce exactly this
(a test compares them)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# JSON as JSONB on PostgreSQL, TEXT on SQLite.
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id(name: str = "id", **kwargs: object) -> sa.Column[str]:
    return sa.Column(name, sa.String(26), **kwargs)  # type: ignore[arg-type]


def _ms(name: str) -> sa.Column[int]:
    """A time in epoch milliseconds, 0 meaning never."""
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


scheduled_recaps = sa.Table(
    "scheduled_recaps",
    metadata,
    _id(primary_key=True),
    _id("user_id", nullable=False),
    sa.Column("title", sa.String(255), nullable=False),
    sa.Column("days_of_week", sa.Integer, nullable=False),
    sa.Column("time_of_day", sa.String(5), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("time_period", sa.String(32), nullable=False),
    _ms("next_run_at"),
    _ms("last_run_at"),
    sa.Column("run_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("channel_mode", sa.String(32), nullable=False),
    sa.Column("channel_ids", Json, nullable=False),
    sa.Column("custom_instructions", sa.Text, nullable=False, server_default=""),
    sa.Column("agent_id", sa.String(64), nullable=False),
    sa.Column("is_recurring", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    _ms("create_at"),
    _ms("update_at"),
    _ms("delete_at"),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("pause_reason", sa.Text, nullable=False, server_default=""),
    _ms("last_scheduled_for"),
)

# Partial-index predicates are literal SQL, written identically in the index, the migration and
# the queries: SQLite uses a partial index only when the query repeats its WHERE term for term
# (a bound parameter or `1` for `true` would not match).
SCHEDULE_LIVE = sa.text("enabled AND delete_at = 0")

sa.Index(
    "ix_scheduled_recaps_user_id_delete_at",
    scheduled_recaps.c.user_id,
    scheduled_recaps.c.delete_at,
)
# Due lookups touch only live rows, in (next_run_at, id) order: the cost of a tick does not
# depend on how many rows are not due or not live.
sa.Index(
    "ix_scheduled_recaps_due",
    scheduled_recaps.c.next_run_at,
    scheduled_recaps.c.id,
    sqlite_where=SCHEDULE_LIVE,
    postgresql_where=SCHEDULE_LIVE,
)

recaps = sa.Table(
    "recaps",
    metadata,
    _id(primary_key=True),
    _id("user_id", nullable=False),
    sa.Column("title", sa.String(255), nullable=False, server_default=""),
    _ms("create_at"),
    _ms("update_at"),
    _ms("delete_at"),
    _ms("read_at"),
    _ms("viewed_at"),
    sa.Column("total_message_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("bot_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("scheduled_recap_id", sa.String(26), nullable=False, server_default=""),
    _ms("scheduled_for"),
    sa.Column("skip_reason", sa.String(64), nullable=False, server_default=""),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    # What to summarize, kept so a retry or a regenerate makes the same recap.
    sa.Column("channel_ids", Json, nullable=False),
    sa.Column("time_period", sa.String(32), nullable=False, server_default=""),
    sa.Column("custom_instructions", sa.Text, nullable=False, server_default=""),
    # Tokens the agent calls of this recap consumed (estimated for the offline agent).
    sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
    # When the recap last completed or failed (0: never); unlike update_at, reading it does
    # not move it, so a delivery job can tell whether its outcome is still the current one.
    _ms("finish_at"),
    # What the recap cost: agent calls made, and how many of its parts (map-stage summaries)
    # it needed and took from the part cache.
    sa.Column("agent_calls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("parts_total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("parts_reused", sa.Integer, nullable=False, server_default="0"),
)

RECAP_IS_SCHEDULED = sa.text("scheduled_recap_id <> ''")

sa.Index("ix_recaps_user_id_create_at", recaps.c.user_id, recaps.c.create_at)
# The web page's live updates ask for a user's recaps changed since the last look.
sa.Index("ix_recaps_user_id_update_at", recaps.c.user_id, recaps.c.update_at)
sa.Index("ix_recaps_status", recaps.c.status)
# One recap per occurrence: the unique key a retried job runs into instead of making another.
sa.Index(
    "uq_recaps_occurrence",
    recaps.c.scheduled_recap_id,
    recaps.c.scheduled_for,
    unique=True,
    sqlite_where=RECAP_IS_SCHEDULED,
    postgresql_where=RECAP_IS_SCHEDULED,
)

recap_channels = sa.Table(
    "recap_channels",
    metadata,
    _id(primary_key=True),
    sa.Column(
        "recap_id",
        sa.String(26),
        sa.ForeignKey("recaps.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("channel_id", sa.String(26), nullable=False),
    sa.Column("channel_name", sa.String(255), nullable=False, server_default=""),
    sa.Column("highlights", Json, nullable=False),
    sa.Column("action_items", Json, nullable=False),
    sa.Column("source_post_ids", Json, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    _ms("create_at"),
    sa.Column("open_questions", Json, nullable=False, server_default=sa.text("'[]'")),
    sa.Column("notice", sa.Text, nullable=False, server_default=""),
)
sa.Index(
    "uq_recap_channels_recap_id_channel_id",
    recap_channels.c.recap_id,
    recap_channels.c.channel_id,
    unique=True,
)

jobs = sa.Table(
    "jobs",
    metadata,
    _id(primary_key=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    _ms("create_at"),
    _ms("start_at"),
    _ms("last_activity_at"),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
    sa.Column("data", Json, nullable=False),
    sa.Column("dedupe_key", sa.String(255), nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    _ms("run_at"),
    sa.Column("node_id", sa.String(255), nullable=False, server_default=""),
    sa.Column("term", sa.BigInteger, nullable=False, server_default="0"),
)

JOB_PENDING = sa.text("status = 'pending'")
JOB_LIVE = sa.text("status IN ('pending', 'in_progress', 'cancel_requested')")
JOB_RUNNING = sa.text("status IN ('in_progress', 'cancel_requested')")
JOB_FINISHED = sa.text("status IN ('success', 'error', 'canceled', 'warning')")
# The dedupe index's predicate, which ON CONFLICT (dedupe_key) must repeat: jobs without a key
# (most of them) cost that index nothing when inserted or claimed.
JOB_LIVE_KEY = sa.text(
    "dedupe_key IS NOT NULL AND status IN ('pending', 'in_progress', 'cancel_requested')"
)

# Claiming reads only pending rows of one type, best first.
sa.Index(
    "ix_jobs_claim",
    jobs.c.type,
    jobs.c.priority.desc(),
    jobs.c.run_at,
    jobs.c.id,
    sqlite_where=JOB_PENDING,
    postgresql_where=JOB_PENDING,
)
# Listing, newest first, all or of one type. No other index leads with (type, status): a
# planner without fresh statistics (a burst into an empty table) must still pick ix_jobs_claim
# for claims instead of sorting every pending row.
sa.Index("ix_jobs_create_at", jobs.c.create_at, jobs.c.id)
sa.Index("ix_jobs_type_create_at", jobs.c.type, jobs.c.create_at)
# Wedged-job recovery scans running jobs by heartbeat; cleanup scans finished jobs by age.
sa.Index(
    "ix_jobs_running",
    jobs.c.last_activity_at,
    sqlite_where=JOB_RUNNING,
    postgresql_where=JOB_RUNNING,
)
sa.Index(
    "ix_jobs_finished",
    jobs.c.last_activity_at,
    sqlite_where=JOB_FINISHED,
    postgresql_where=JOB_FINISHED,
)
# At most one live job per dedupe key, enforced by the database, not by a racy count.
sa.Index(
    "uq_jobs_live_dedupe_key",
    jobs.c.dedupe_key,
    unique=True,
    sqlite_where=JOB_LIVE_KEY,
    postgresql_where=JOB_LIVE_KEY,
)

# Named leases (leader election): the database's clock decides expiry and issues the terms.
cluster_leases = sa.Table(
    "cluster_leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("term", sa.BigInteger, nullable=False),
    sa.Column("acquired_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
)

# The local chat workspace (chat/local.py and the importers), in Mattermost's shape: 26-character
# ids, epoch-ms times, team_id "" for direct and group channels.
users = sa.Table(
    "users",
    metadata,
    _id(primary_key=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("display_name", sa.String(255), nullable=False, server_default=""),
    sa.Column("email", sa.String(255), nullable=False, server_default=""),
    sa.Column("locale", sa.String(32), nullable=False, server_default="en"),
    sa.Column("timezone", sa.String(64), nullable=False, server_default=""),
    sa.Column("is_bot", sa.Boolean, nullable=False, server_default=sa.false()),
    _ms("create_at"),
    _ms("delete_at"),
)
sa.Index("uq_users_username", users.c.username, unique=True)

teams = sa.Table(
    "teams",
    metadata,
    _id(primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("display_name", sa.String(255), nullable=False, server_default=""),
    _ms("create_at"),
    _ms("delete_at"),
)
sa.Index("uq_teams_name", teams.c.name, unique=True)

channels = sa.Table(
    "channels",
    metadata,
    _id(primary_key=True),
    sa.Column("team_id", sa.String(26), nullable=False, server_default=""),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("display_name", sa.String(255), nullable=False, server_default=""),
    sa.Column("type", sa.String(8), nullable=False, server_default="O"),
    sa.Column("header", sa.Text, nullable=False, server_default=""),
    sa.Column("purpose", sa.Text, nullable=False, server_default=""),
    _ms("create_at"),
    _ms("delete_at"),
)
sa.Index("uq_channels_team_id_name", channels.c.team_id, channels.c.name, unique=True)

channel_members = sa.Table(
    "channel_members",
    metadata,
    _id("channel_id", primary_key=True),
    _id("user_id", primary_key=True),
    _ms("last_viewed_at"),
    _ms("create_at"),
)
sa.Index("ix_channel_members_user_id", channel_members.c.user_id)

posts = sa.Table(
    "posts",
    metadata,
    _id(primary_key=True),
    _id("channel_id", nullable=False),
    _id("user_id", nullable=False),
    _id("root_id", nullable=False, server_default=""),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("type", sa.String(64), nullable=False, server_default=""),
    sa.Column("props", Json, nullable=False),
    _ms("create_at"),
    _ms("update_at"),
    _ms("edit_at"),
    _ms("delete_at"),
)
# Windowed paging walks one channel in (create_at, id) order with a keyset cursor.
sa.Index("ix_posts_channel_id_create_at_id", posts.c.channel_id, posts.c.create_at, posts.c.id)
sa.Index("ix_posts_root_id", posts.c.root_id)

reactions = sa.Table(
    "reactions",
    metadata,
    _id("post_id", primary_key=True),
    _id("user_id", primary_key=True),
    sa.Column("emoji_name", sa.String(64), primary_key=True),
    _ms("create_at"),
)

# Personal access tokens: only the SHA-256 of a token is stored.
access_tokens = sa.Table(
    "access_tokens",
    metadata,
    _id(primary_key=True),
    _id("user_id", nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    _ms("create_at"),
    _ms("last_used_at"),
    _ms("delete_at"),
)
sa.Index("uq_access_tokens_token_hash", access_tokens.c.token_hash, unique=True)
sa.Index("ix_access_tokens_user_id", access_tokens.c.user_id)

# Roles of local users: "system_admin" or "".
user_roles = sa.Table(
    "user_roles",
    metadata,
    _id("user_id", primary_key=True),
    sa.Column("roles", sa.Text, nullable=False, server_default=""),
)

# Per-user outgoing webhook (Slack/Mattermost incoming-webhook URL) told of finished recaps.
user_webhooks = sa.Table(
    "user_webhooks",
    metadata,
    _id("user_id", primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    _ms("create_at"),
    _ms("update_at"),
    # The last delivery that succeeded and the last failure, so the user can see a broken
    # webhook (what was delivered is in webhook_deliveries).
    sa.Column("last_delivery_key", sa.String(255), nullable=False, server_default=""),
    _ms("last_delivery_at"),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    _ms("last_error_at"),
)

# Every webhook delivery a receiver accepted, by its job's key: a retried or recovered job
# does not post twice, whatever the user's other jobs did meanwhile. Pruned by age.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("delivery_key", sa.String(255), primary_key=True),
    _id("user_id", nullable=False),
    _ms("delivered_at"),
)
sa.Index("ix_webhook_deliveries_delivered_at", webhook_deliveries.c.delivered_at)

# Server-wide secrets every node shares (the web session-signing key), made once on first use.
system_secrets = sa.Table(
    "system_secrets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    _ms("create_at"),
)

# Web sign-ins, one row each: the cookie carries the session's id, and only its SHA-256 is
# kept. Signing out, revoking the token and expiry delete the row, which every node sees.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    _id("user_id", nullable=False),
    # The personal access token signed in with, or "mattermost" (a Mattermost token).
    sa.Column("token_id", sa.String(26), nullable=False),
    _ms("create_at"),
    _ms("expires_at"),
)
sa.Index("ix_web_sessions_token_id", web_sessions.c.token_id)
sa.Index("ix_web_sessions_expires_at", web_sessions.c.expires_at)
# Summaries of whole stretches of a channel (the map stage), shared by every recap that needs
# them. The key (SHA-256 of channel, agent and version, bounds, content digest: see
# summarize/part_cache.py) changes with any edit, deletion or late post, so a row is never
# stale, only unused; rows expire and the leader's cleanup deletes them. A row is first
# inserted `computing` by the one run that claimed it (INSERT ... ON CONFLICT DO NOTHING on
# the key), which every other run waits for: one computation per part in the cluster.
part_cache = sa.Table(
    "part_cache",
    metadata,
    sa.Column("cache_key", sa.String(64), primary_key=True),
    _id("channel_id", nullable=False),
    sa.Column("agent_id", sa.String(64), nullable=False),
    _ms("start_ms"),
    _ms("end_ms"),
    sa.Column("status", sa.String(16), nullable=False),
    # The claiming run's random token and when it claimed (a claim older than the timeout
    # may be taken over: its run died).
    sa.Column("claim", sa.String(32), nullable=False, server_default=""),
    _ms("claimed_at"),
    sa.Column("result", Json, nullable=True),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
    _ms("create_at"),
    _ms("expire_at"),
    # The fingerprint of the row's stretch (summarize/fingerprint.py; "" when the chat source
    # gives none) and which of the stretch's parts the row is: a recap finds every part of a
    # stretch by its fingerprint, without reading the stretch's posts.
    sa.Column("fingerprint", sa.String(64), nullable=False, server_default=""),
    sa.Column("part", sa.Integer, nullable=False, server_default="1"),
    sa.Column("parts", sa.Integer, nullable=False, server_default="1"),
)
sa.Index("ix_part_cache_expire_at", part_cache.c.expire_at)
sa.Index("ix_part_cache_fingerprint", part_cache.c.fingerprint)
