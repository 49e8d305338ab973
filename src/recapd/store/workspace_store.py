"""SQL for the local chat workspace: users, teams, channels, members, posts and reactions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recapd.model.app_error import AppError
from recapd.model.chat import (
    SYSTEM_POST_PREFIX,
    Channel,
    ChannelMember,
    ChannelType,
    Post,
    PostStamp,
    Reaction,
    Team,
    User,
)
from recapd.model.ids import is_valid_id
from recapd.store.database import Database
from recapd.store.tables import channel_members, channels, posts, reactions, teams, users

# Mattermost's limit on a post's message (model.PostMessageMaxRunesV2).
POST_MESSAGE_MAX_RUNES = 16383
# Rows per upsert round trip: keeps SQLite under its bound-parameter limit.
UPSERT_CHUNK = 1000

_USER_FIELDS = tuple(f.name for f in fields(User))
_TEAM_FIELDS = tuple(f.name for f in fields(Team))
_CHANNEL_FIELDS = tuple(f.name for f in fields(Channel))
_MEMBER_FIELDS = tuple(f.name for f in fields(ChannelMember))
_POST_FIELDS = tuple(f.name for f in fields(Post) if f.name != "reactions")

# Columns an upsert may change on an existing row (creation times and keys never change).
_USER_MUTABLE = ("username", "display_name", "email", "locale", "timezone", "is_bot", "delete_at")
_TEAM_MUTABLE = ("name", "display_name", "delete_at")
_CHANNEL_MUTABLE = ("display_name", "type", "header", "purpose", "delete_at")
_POST_MUTABLE = ("message", "props", "update_at", "edit_at", "delete_at")

_K = TypeVar("_K")


@dataclass(slots=True)
class UpsertCounts:
    """How many rows an upsert created and how many it changed."""

    created: int = 0
    updated: int = 0

    def add(self, other: UpsertCounts) -> None:
        """Accumulate another batch's counts."""
        self.created += other.created
        self.updated += other.updated


def _conversation() -> sa.ColumnElement[bool]:
    """Posts a recap reads: not deleted, not a system message."""
    # Escaped: in LIKE 'system_%' the "_" would match any character.
    return sa.and_(
        posts.c.delete_at == 0,
        sa.not_(posts.c.type.startswith(SYSTEM_POST_PREFIX, autoescape=True)),
    )


def posts_page_query(
    channel_id: str, since_ms: int, until_ms: int, after: tuple[int, str] | None, limit: int
) -> sa.Select[Any]:
    """The SELECT of WorkspaceStore.posts_page: one range of ix_posts_channel_id_create_at_id."""
    q = sa.select(posts).where(
        posts.c.channel_id == channel_id,
        posts.c.create_at >= since_ms,
        posts.c.create_at < until_ms,
        _conversation(),
    )
    if after is not None:
        q = q.where(sa.tuple_(posts.c.create_at, posts.c.id) > sa.tuple_(*after))
    return q.order_by(posts.c.create_at, posts.c.id).limit(limit)


def _stamps_query() -> sa.Select[Any]:
    """Posts' stamps: the post's times and links, its author's name and bot flag now, and how
    many reactions it has (in PostStamp's field order)."""
    reaction_count = (
        sa.select(sa.func.count())
        .where(reactions.c.post_id == posts.c.id)
        .correlate(posts)
        .scalar_subquery()
    )
    return sa.select(
        posts.c.id,
        posts.c.create_at,
        posts.c.root_id,
        posts.c.update_at,
        posts.c.edit_at,
        posts.c.user_id,
        sa.func.coalesce(users.c.username, ""),
        sa.func.coalesce(users.c.is_bot, sa.false()),
        reaction_count,
    ).select_from(posts.outerjoin(users, users.c.id == posts.c.user_id))


# The stamps of a window (WorkspaceStore.post_stamps): one statement for the process, so the
# driver runs it prepared and its rows come back as plain tuples (Database.fetch_tuples).
_WINDOW_STAMPS = (
    _stamps_query()
    .where(
        posts.c.channel_id == sa.bindparam("channel_id"),
        posts.c.create_at >= sa.bindparam("since_ms"),
        posts.c.create_at < sa.bindparam("until_ms"),
        _conversation(),
    )
    .order_by(posts.c.create_at, posts.c.id)
)


def _not_found(what: str, detail: str) -> AppError:
    return AppError(
        f"store.sql_workspace.get_{what}.not_found.app_error",
        f"{what} not found",
        detailed_error=detail,
        status_code=404,
    )


def _add_post_error(reason: str, message: str, detail: str, status: int = 400) -> AppError:
    return AppError(
        f"store.sql_workspace.add_post.{reason}.app_error",
        message,
        detailed_error=detail,
        status_code=status,
    )


def _no_permission_to_post(post: Post) -> AppError:
    """Mattermost's answer to posting where one may not (create_post), word for word: the
    same for a missing channel and one the user is not a member of."""
    return AppError(
        "api.context.permissions.app_error",
        "You do not have the appropriate permissions.",
        detailed_error=f"userId={post.user_id}, channelId={post.channel_id}, "
        "permission=create_post",
        status_code=403,
    )


def _row_to_user(row: sa.Row[Any]) -> User:
    m = row._mapping
    return User(**{f: m[f] for f in _USER_FIELDS})


def _row_to_team(row: sa.Row[Any]) -> Team:
    m = row._mapping
    return Team(**{f: m[f] for f in _TEAM_FIELDS})


def _row_to_channel(row: sa.Row[Any]) -> Channel:
    m = row._mapping
    return Channel(**{f: m[f] for f in _CHANNEL_FIELDS})


def _row_to_member(row: sa.Row[Any]) -> ChannelMember:
    m = row._mapping
    return ChannelMember(**{f: m[f] for f in _MEMBER_FIELDS})


def _row_to_post(row: sa.Row[Any]) -> Post:
    m = row._mapping
    post = Post(**{f: m[f] for f in _POST_FIELDS})
    post.props = dict(post.props or {})
    return post


def _row_to_stamp(row: Sequence[Any]) -> PostStamp:
    post_id, create_at, root_id, update_at, edit_at, user_id, username, is_bot, n = row
    return PostStamp(
        post_id, create_at, root_id, update_at, edit_at, user_id, username, bool(is_bot), n
    )


def _post_row(p: Post) -> dict[str, Any]:
    row = {f: getattr(p, f) for f in _POST_FIELDS}
    row["type"] = str(p.type)
    row["props"] = dict(p.props)
    # A post is last updated no earlier than its creation, edit or deletion.
    row["update_at"] = max(p.update_at, p.create_at, p.edit_at, p.delete_at)
    return row


def _channel_row(ch: Channel) -> dict[str, Any]:
    row = {f: getattr(ch, f) for f in _CHANNEL_FIELDS}
    row["type"] = str(ch.type)
    return row


def _last_by_key(rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], _K]) -> list[Any]:
    """One row per key, the last given winning: one statement must not touch a row twice."""
    out: dict[_K, dict[str, Any]] = {}
    for row in rows:
        out[key(row)] = row
    return list(out.values())


def _changed(
    row: dict[str, Any], old: Mapping[Any, Any], mutable: Sequence[str], newer: str | None
) -> bool:
    if newer is not None:
        return bool(row[newer] > old[newer])
    return any(row[col] != old[col] for col in mutable)


class WorkspaceStore:
    """The local chat workspace in the database.

    Membership methods take (channel_id, user_id), in the order of ChannelMember's fields.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    # ----------------------------------------------------------------- upserts

    def _upsert(
        self,
        c: Connection,
        table: sa.Table,
        rows: list[dict[str, Any]],
        keys: Sequence[str],
        mutable: Sequence[str],
        newer: str | None = None,
    ) -> UpsertCounts:
        """Insert new rows and update existing ones that changed, UPSERT_CHUNK rows at a time.

        An existing row changed when a `mutable` column differs or, given `newer`, when that
        column grew. Per chunk: one SELECT of the existing rows, then one executemany upsert
        of only the new and changed rows (none at all when importing the same data again).
        The upsert repeats the test in its WHERE, so a concurrent writer is never overwritten
        by older data; the counts then are what this call saw.
        """
        counts = UpsertCounts()
        for start in range(0, len(rows), UPSERT_CHUNK):
            chunk = rows[start : start + UPSERT_CHUNK]
            counts.add(self._upsert_chunk(c, table, chunk, keys, mutable, newer))
        return counts

    def _upsert_chunk(
        self,
        c: Connection,
        table: sa.Table,
        rows: list[dict[str, Any]],
        keys: Sequence[str],
        mutable: Sequence[str],
        newer: str | None,
    ) -> UpsertCounts:
        key_cols = [table.c[k] for k in keys]
        compared = [newer] if newer is not None else list(mutable)
        q = sa.select(*key_cols, *(table.c[col] for col in compared))
        if len(keys) == 1:
            q = q.where(key_cols[0].in_([r[keys[0]] for r in rows]))
        else:
            q = q.where(sa.tuple_(*key_cols).in_([tuple(r[k] for k in keys) for r in rows]))
        existing = {tuple(r[: len(keys)]): r._mapping for r in c.execute(q)}
        created: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        for row in rows:
            old = existing.get(tuple(row[k] for k in keys))
            if old is None:
                created.append(row)
            elif _changed(row, old, mutable, newer):
                updated.append(row)
        if not created and not updated:
            return UpsertCounts()
        ins = self._db.insert(table)
        if mutable:
            ex = ins.excluded
            where = (
                ex[newer] > table.c[newer]
                if newer is not None
                else sa.or_(*(table.c[col].is_distinct_from(ex[col]) for col in mutable))
            )
            ins = ins.on_conflict_do_update(
                index_elements=key_cols, set_={col: ex[col] for col in mutable}, where=where
            )
        else:
            ins = ins.on_conflict_do_nothing(index_elements=key_cols)
        c.execute(ins, created + updated)
        return UpsertCounts(len(created), len(updated))

    def upsert_users(
        self, items: Sequence[User], *, conn: Connection | None = None
    ) -> UpsertCounts:
        """Insert users or update their profile fields (by id)."""
        rows = _last_by_key(({f: getattr(u, f) for f in _USER_FIELDS} for u in items), _id_key)
        with self._db.transaction(conn) as c:
            return self._upsert(c, users, rows, ["id"], _USER_MUTABLE)

    def upsert_teams(
        self, items: Sequence[Team], *, conn: Connection | None = None
    ) -> UpsertCounts:
        """Insert teams or update their names (by id)."""
        rows = _last_by_key(({f: getattr(t, f) for f in _TEAM_FIELDS} for t in items), _id_key)
        with self._db.transaction(conn) as c:
            return self._upsert(c, teams, rows, ["id"], _TEAM_MUTABLE)

    def upsert_channels(
        self, items: Sequence[Channel], *, conn: Connection | None = None
    ) -> UpsertCounts:
        """Insert channels or update their names, type, header and purpose (by id)."""
        rows = _last_by_key((_channel_row(ch) for ch in items), _id_key)
        with self._db.transaction(conn) as c:
            return self._upsert(c, channels, rows, ["id"], _CHANNEL_MUTABLE)

    def upsert_members(
        self, items: Sequence[ChannelMember], *, conn: Connection | None = None
    ) -> UpsertCounts:
        """Insert memberships; an existing one only moves its last_viewed_at forward.

        Re-importing old data never marks a channel unread again.
        """
        rows = _last_by_key(
            ({f: getattr(m, f) for f in _MEMBER_FIELDS} for m in items),
            lambda r: (r["channel_id"], r["user_id"]),
        )
        with self._db.transaction(conn) as c:
            return self._upsert(
                c,
                channel_members,
                rows,
                ["channel_id", "user_id"],
                ["last_viewed_at"],
                newer="last_viewed_at",
            )

    def upsert_posts(
        self, items: Sequence[Post], *, conn: Connection | None = None
    ) -> tuple[UpsertCounts, UpsertCounts]:
        """Insert posts with their reactions; (post counts, reaction counts).

        An existing post takes the text, props, edit and delete times of a version with a newer
        update_at; an older or equal version changes nothing. Reactions are only added.
        """
        best: dict[str, dict[str, Any]] = {}
        for p in items:
            row = _post_row(p)
            seen = best.get(p.id)
            if seen is None or row["update_at"] >= seen["update_at"]:
                best[p.id] = row
        reaction_rows = _last_by_key(
            (
                {
                    "post_id": p.id,
                    "user_id": r.user_id,
                    "emoji_name": r.emoji_name,
                    "create_at": r.create_at,
                }
                for p in items
                for r in p.reactions
            ),
            lambda r: (r["post_id"], r["user_id"], r["emoji_name"]),
        )
        with self._db.transaction(conn) as c:
            post_counts = self._upsert(
                c,
                posts,
                list(best.values()),
                ["id"],
                _POST_MUTABLE,
                newer="update_at",
            )
            reaction_counts = self._upsert(
                c, reactions, reaction_rows, ["post_id", "user_id", "emoji_name"], []
            )
        return post_counts, reaction_counts

    # ----------------------------------------------------------------- users and teams

    def get_user(self, user_id: str, *, conn: Connection | None = None) -> User:
        """The user; AppError 404 when missing."""
        with self._db.read(conn) as c:
            row = c.execute(sa.select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise _not_found("user", f"id={user_id}")
        return _row_to_user(row)

    def get_user_by_username(self, username: str, *, conn: Connection | None = None) -> User:
        """The user with this username; AppError 404 when missing."""
        with self._db.read(conn) as c:
            row = c.execute(sa.select(users).where(users.c.username == username)).first()
        if row is None:
            raise _not_found("user", f"username={username}")
        return _row_to_user(row)

    def get_users(
        self, user_ids: Sequence[str], *, conn: Connection | None = None
    ) -> dict[str, User]:
        """The users among `user_ids` that exist, by id."""
        if not user_ids:
            return {}
        with self._db.read(conn) as c:
            rows = c.execute(sa.select(users).where(users.c.id.in_(set(user_ids))))
            return {r.id: _row_to_user(r) for r in rows}

    def user_ids_by_username(
        self, usernames: Sequence[str], *, conn: Connection | None = None
    ) -> dict[str, str]:
        """username -> id for the usernames that exist."""
        if not usernames:
            return {}
        q = sa.select(users.c.username, users.c.id).where(users.c.username.in_(set(usernames)))
        with self._db.read(conn) as c:
            return {r.username: r.id for r in c.execute(q)}

    def get_team(self, team_id: str, *, conn: Connection | None = None) -> Team:
        """The team; AppError 404 when missing."""
        with self._db.read(conn) as c:
            row = c.execute(sa.select(teams).where(teams.c.id == team_id)).first()
        if row is None:
            raise _not_found("team", f"id={team_id}")
        return _row_to_team(row)

    def get_team_by_name(self, name: str, *, conn: Connection | None = None) -> Team:
        """The team with this name (URL slug); AppError 404 when missing."""
        with self._db.read(conn) as c:
            row = c.execute(sa.select(teams).where(teams.c.name == name)).first()
        if row is None:
            raise _not_found("team", f"name={name}")
        return _row_to_team(row)

    # ----------------------------------------------------------------- channels and members

    def get_channel(self, channel_id: str, *, conn: Connection | None = None) -> Channel:
        """The channel (archived ones too); AppError 404 when missing."""
        with self._db.read(conn) as c:
            row = c.execute(sa.select(channels).where(channels.c.id == channel_id)).first()
        if row is None:
            raise _not_found("channel", f"id={channel_id}")
        return _row_to_channel(row)

    def get_channel_by_name(
        self, team_id: str, name: str, *, conn: Connection | None = None
    ) -> Channel:
        """The channel `name` of a team ("" for direct and group channels); 404 when missing."""
        q = sa.select(channels).where(channels.c.team_id == team_id, channels.c.name == name)
        with self._db.read(conn) as c:
            row = c.execute(q).first()
        if row is None:
            raise _not_found("channel", f"team_id={team_id} name={name}")
        return _row_to_channel(row)

    def find_channels_by_name(self, name: str, *, conn: Connection | None = None) -> list[Channel]:
        """Every channel called `name`, in any team (archived ones too)."""
        q = (
            sa.select(channels)
            .where(channels.c.name == name)
            .order_by(channels.c.team_id, channels.c.id)
        )
        with self._db.read(conn) as c:
            return [_row_to_channel(r) for r in c.execute(q)]

    def channels_of_user(self, user_id: str, *, conn: Connection | None = None) -> list[Channel]:
        """Live (not archived) channels the user is a member of, by name."""
        m = channel_members
        q = (
            sa.select(channels)
            .join(m, m.c.channel_id == channels.c.id)
            .where(m.c.user_id == user_id, channels.c.delete_at == 0)
            .order_by(channels.c.name, channels.c.id)
        )
        with self._db.read(conn) as c:
            return [_row_to_channel(r) for r in c.execute(q)]

    def team_channels(
        self, user_id: str | None = None, *, conn: Connection | None = None
    ) -> list[tuple[Channel, int]]:
        """Team channels (not direct or group ones, archived ones too) with how many members
        each has, by team and name; only those `user_id` is a member of when given."""
        m = channel_members
        counts = (
            sa.select(m.c.channel_id, sa.func.count().label("n"))
            .group_by(m.c.channel_id)
            .subquery()
        )
        q = (
            sa.select(channels, sa.func.coalesce(counts.c.n, 0).label("member_count"))
            .outerjoin(counts, counts.c.channel_id == channels.c.id)
            .where(channels.c.team_id != "")
            .order_by(channels.c.team_id, channels.c.name, channels.c.id)
        )
        if user_id is not None:
            mine = sa.select(m.c.channel_id).where(m.c.user_id == user_id)
            q = q.where(channels.c.id.in_(mine))
        with self._db.read(conn) as c:
            return [(_row_to_channel(r), int(r.member_count)) for r in c.execute(q)]

    def remove_member(
        self, channel_id: str, user_id: str, *, conn: Connection | None = None
    ) -> bool:
        """Take the user out of the channel; False when they were not in it."""
        m = channel_members
        q = m.delete().where(m.c.channel_id == channel_id, m.c.user_id == user_id)
        with self._db.transaction(conn) as c:
            return bool(c.execute(q).rowcount)

    def unread_channels(self, user_id: str, *, conn: Connection | None = None) -> list[Channel]:
        """The user's live channels with a conversation post by someone else since last read.

        A bot's post in a direct channel does not count: the recap bot's own messages must not
        make the next "all unreads" recap summarize the last one.
        """
        m = channel_members
        bots = sa.select(users.c.id).where(users.c.is_bot.is_(True))
        unread = (
            sa.select(sa.literal(1))
            .where(
                posts.c.channel_id == channels.c.id,
                posts.c.create_at > m.c.last_viewed_at,
                posts.c.user_id != user_id,
                _conversation(),
                sa.not_(
                    sa.and_(channels.c.type == ChannelType.DIRECT.value, posts.c.user_id.in_(bots))
                ),
            )
            .exists()
        )
        q = (
            sa.select(channels)
            .join(m, m.c.channel_id == channels.c.id)
            .where(m.c.user_id == user_id, channels.c.delete_at == 0, unread)
            .order_by(channels.c.name, channels.c.id)
        )
        with self._db.read(conn) as c:
            return [_row_to_channel(r) for r in c.execute(q)]

    def is_member(
        self,
        channel_id: str,
        user_id: str,
        *,
        live_channel: bool = False,
        conn: Connection | None = None,
    ) -> bool:
        """Whether the user is a member of the channel (and, if asked, it is not archived)."""
        m = channel_members
        q = sa.select(sa.literal(1)).where(m.c.channel_id == channel_id, m.c.user_id == user_id)
        if live_channel:
            q = q.join(channels, channels.c.id == m.c.channel_id).where(channels.c.delete_at == 0)
        with self._db.read(conn) as c:
            return c.execute(q).first() is not None

    def get_member(
        self, channel_id: str, user_id: str, *, conn: Connection | None = None
    ) -> ChannelMember:
        """The membership; AppError 404 when the user is not a member."""
        m = channel_members
        q = sa.select(m).where(m.c.channel_id == channel_id, m.c.user_id == user_id)
        with self._db.read(conn) as c:
            row = c.execute(q).first()
        if row is None:
            raise _not_found("member", f"channel_id={channel_id} user_id={user_id}")
        return _row_to_member(row)

    def reader_view(
        self, channel_id: str, user_id: str, *, conn: Connection | None = None
    ) -> tuple[Channel, ChannelMember | None]:
        """The channel and the user's membership of it (None when not a member), in one
        statement; AppError 404 when the channel is missing."""
        m = channel_members
        on = sa.and_(m.c.channel_id == channels.c.id, m.c.user_id == user_id)
        q = (
            sa.select(channels, m.c.last_viewed_at, m.c.create_at.label("member_create_at"))
            .add_columns(m.c.user_id.label("member_user_id"))
            .select_from(channels.outerjoin(m, on))
            .where(channels.c.id == channel_id)
        )
        with self._db.read(conn) as c:
            row = c.execute(q).first()
        if row is None:
            raise _not_found("channel", f"id={channel_id}")
        member = None
        if row.member_user_id is not None:
            member = ChannelMember(channel_id, user_id, row.last_viewed_at, row.member_create_at)
        return _row_to_channel(row), member

    def set_last_viewed_at(
        self, channel_id: str, user_id: str, at_ms: int, *, conn: Connection | None = None
    ) -> None:
        """Record where the user stopped reading; AppError 404 when not a member."""
        m = channel_members
        q = (
            m.update()
            .where(m.c.channel_id == channel_id, m.c.user_id == user_id)
            .values(last_viewed_at=at_ms)
        )
        with self._db.transaction(conn) as c:
            if not c.execute(q).rowcount:
                raise _not_found("member", f"channel_id={channel_id} user_id={user_id}")

    # ----------------------------------------------------------------- posts

    def _with_reactions(self, c: Connection, found: list[Post]) -> list[Post]:
        if not found:
            return found
        by_id = {p.id: p for p in found}
        q = (
            sa.select(reactions)
            .where(reactions.c.post_id.in_(list(by_id)))
            .order_by(reactions.c.create_at, reactions.c.user_id, reactions.c.emoji_name)
        )
        for r in c.execute(q):
            by_id[r.post_id].reactions.append(Reaction(r.user_id, r.emoji_name, r.create_at))
        return found

    def posts_page(
        self,
        channel_id: str,
        since_ms: int,
        until_ms: int,
        after: tuple[int, str] | None,
        limit: int,
        *,
        conn: Connection | None = None,
    ) -> list[Post]:
        """Conversation posts created in [since_ms, until_ms), in (create_at, id) order.

        `after` is the (create_at, id) of the last post of the previous page; the cursor stays
        exact however many posts share a create_at.
        """
        q = posts_page_query(channel_id, since_ms, until_ms, after, limit)
        with self._db.read(conn) as c:
            return self._with_reactions(c, [_row_to_post(r) for r in c.execute(q)])

    def post_stamps(
        self, channel_id: str, since_ms: int, until_ms: int, *, conn: Connection | None = None
    ) -> list[PostStamp]:
        """The stamps of the conversation posts created in [since_ms, until_ms), in
        (create_at, id) order: one statement, no text read (see PostStamp)."""
        params = {"channel_id": channel_id, "since_ms": since_ms, "until_ms": until_ms}
        with self._db.read(conn) as c:
            return [_row_to_stamp(r) for r in self._db.fetch_tuples(c, _WINDOW_STAMPS, params)]

    def post_stamps_by_id(
        self, post_ids: Sequence[str], *, conn: Connection | None = None
    ) -> dict[str, PostStamp]:
        """The stamps of live posts by id (deleted ones left out, as get_posts does)."""
        if not post_ids:
            return {}
        q = _stamps_query().where(posts.c.id.in_(set(post_ids)), posts.c.delete_at == 0)
        with self._db.read(conn) as c:
            return {r.id: _row_to_stamp(r) for r in c.execute(q)}

    def latest_posts(
        self, channel_id: str, limit: int, *, conn: Connection | None = None
    ) -> list[Post]:
        """The `limit` newest conversation posts of the channel, oldest first."""
        q = (
            sa.select(posts)
            .where(posts.c.channel_id == channel_id, _conversation())
            .order_by(posts.c.create_at.desc(), posts.c.id.desc())
            .limit(limit)
        )
        with self._db.read(conn) as c:
            found = [_row_to_post(r) for r in c.execute(q)]
            found.reverse()
            return self._with_reactions(c, found)

    def get_posts(
        self,
        post_ids: Sequence[str],
        *,
        include_deleted: bool = False,
        conn: Connection | None = None,
    ) -> dict[str, Post]:
        """Posts by id with their reactions; deleted ones only when asked."""
        if not post_ids:
            return {}
        q = sa.select(posts).where(posts.c.id.in_(set(post_ids)))
        if not include_deleted:
            q = q.where(posts.c.delete_at == 0)
        with self._db.read(conn) as c:
            found = self._with_reactions(c, [_row_to_post(r) for r in c.execute(q)])
        return {p.id: p for p in found}

    def posts_and_authors(
        self, post_ids: Sequence[str], *, conn: Connection | None = None
    ) -> tuple[dict[str, Post], dict[str, User]]:
        """get_posts (live ones) and get_users of their authors, on one connection."""
        with self._db.read(conn) as c:
            found = self.get_posts(post_ids, conn=c)
            authors = self.get_users(sorted({p.user_id for p in found.values()}), conn=c)
        return found, authors

    def count_posts(self, channel_id: str | None = None, *, conn: Connection | None = None) -> int:
        """How many posts (every type and state), in one channel or everywhere."""
        q = sa.select(sa.func.count()).select_from(posts)
        if channel_id is not None:
            q = q.where(posts.c.channel_id == channel_id)
        with self._db.read(conn) as c:
            return int(c.execute(q).scalar_one())

    def add_post(self, post: Post, *, conn: Connection | None = None) -> Post:
        """Insert one new post written by a member of a live channel (the ingest path).

        A reply's root must be a live root post of the same channel. Errors are AppErrors with
        ids `store.sql_workspace.add_post.<reason>.app_error`, except Mattermost's 403
        `api.context.permissions.app_error`, alike for a missing channel and a non-member.
        """
        for name in ("id", "channel_id", "user_id"):
            if not is_valid_id(getattr(post, name)):
                raise _add_post_error(f"invalid_{name}", f"invalid {name}", f"{name}={post!r}")
        if post.root_id and not is_valid_id(post.root_id):
            raise _add_post_error("invalid_root_id", "invalid root_id", f"root_id={post.root_id}")
        if len(post.message) > POST_MESSAGE_MAX_RUNES:
            raise _add_post_error(
                "message_length",
                f"message longer than {POST_MESSAGE_MAX_RUNES} characters",
                f"length={len(post.message)}",
            )
        detail = f"post_id={post.id} channel_id={post.channel_id}"
        with self._db.transaction(conn) as c:
            ch = c.execute(
                sa.select(channels.c.delete_at).where(channels.c.id == post.channel_id)
            ).first()
            # A missing channel answers as one the user is not in, so posting cannot tell
            # which channels exist; only a member learns that a channel is archived.
            if ch is None or not self.is_member(post.channel_id, post.user_id, conn=c):
                raise _no_permission_to_post(post)
            if ch.delete_at:
                raise _add_post_error("channel_archived", "channel is archived", detail)
            if post.root_id:
                self._check_root(c, post)
            ins = (
                self._db.insert(posts)
                .values(_post_row(post))
                .on_conflict_do_nothing(index_elements=[posts.c.id])
                .returning(posts.c.id)
            )
            if c.execute(ins).first() is None:
                raise _add_post_error("exists", "a post with this id exists", detail, 409)
            if post.reactions:
                rows = [
                    {
                        "post_id": post.id,
                        "user_id": r.user_id,
                        "emoji_name": r.emoji_name,
                        "create_at": r.create_at,
                    }
                    for r in post.reactions
                ]
                keys = ["post_id", "user_id", "emoji_name"]
                self._upsert(c, reactions, _last_by_key(rows, _reaction_key), keys, [])
        return post

    def _check_root(self, c: Connection, post: Post) -> None:
        q = sa.select(posts.c.channel_id, posts.c.root_id, posts.c.delete_at).where(
            posts.c.id == post.root_id
        )
        root = c.execute(q).first()
        detail = f"post_id={post.id} root_id={post.root_id}"
        if root is None or root.delete_at:
            raise _add_post_error("root_not_found", "the thread's root post was not found", detail)
        if root.channel_id != post.channel_id:
            raise _add_post_error(
                "root_other_channel", "the thread's root post is in another channel", detail
            )
        if root.root_id:
            raise _add_post_error("root_is_reply", "a reply cannot start a thread", detail)


def _id_key(row: dict[str, Any]) -> str:
    return str(row["id"])


def _reaction_key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (row["post_id"], row["user_id"], row["emoji_name"])
