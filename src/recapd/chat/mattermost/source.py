"""MattermostChatSource: the ChatSource protocol over a Mattermost server's REST API v4.

Which token reads what (docs/mattermost.md has the full table):
- posts, channels, one member's `last_viewed_at`: any token that can read the channel (a bot
  must be a member of it);
- a user's channel list and unread counts (`channels_of_user`, `unread_channels`): the user's
  own token, or one with `manage_system` / `edit_other_users` (an admin). With a plain bot
  token recapd falls back to the bot's own channels that the user is also a member of.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from recapd.chat.mattermost.client import ClientOptions, MattermostClient
from recapd.clock import Clock
from recapd.config import Settings
from recapd.model.app_error import AppError
from recapd.model.chat import Channel, ChannelType, Post, Reaction, Team, User

# Mattermost's team-less permalink segment: the web app sends it on to a team of the reader.
REDIRECT_TEAM = "_redirect"
# The server's cap on per_page for channel posts (web/params.go PerPageMaximum).
MAX_PER_PAGE = 200
# Ids per POST /users/ids or /posts/ids call.
IDS_PER_CALL = 200
# Channel types recaps read; boards ("BO"/"BP") and others are left out.
READABLE_TYPES = frozenset(t.value for t in ChannelType)
# Concurrent membership look-ups when a bot token has to check channels one by one.
LOOKUP_CONCURRENCY = 8

T = TypeVar("T")


class TTLCache(Generic[T]):
    """A small dict whose entries expire `ttl_ms` after they were stored (injected clock)."""

    def __init__(self, clock: Clock, ttl_ms: int) -> None:
        self._clock = clock
        self._ttl_ms = ttl_ms
        self._items: dict[str, tuple[int, T]] = {}

    def get(self, key: str) -> T | None:
        """The live value under `key`, or None."""
        found = self._items.get(key)
        if found is None:
            return None
        expires, value = found
        if self._clock.now_ms() >= expires:
            del self._items[key]
            return None
        return value

    def put(self, key: str, value: T) -> None:
        """Store `value` until now + ttl."""
        self._items[key] = (self._clock.now_ms() + self._ttl_ms, value)


def user_from_json(d: dict[str, Any]) -> User:
    """A Mattermost User as recapd's User (effective zone as GetPreferredTimezone)."""
    tz = d.get("timezone") or {}
    automatic = str(tz.get("useAutomaticTimezone", "")).lower() == "true"
    zone = tz.get("automaticTimezone", "") if automatic else tz.get("manualTimezone", "")
    full = " ".join(x for x in (d.get("first_name", ""), d.get("last_name", "")) if x)
    return User(
        id=d["id"],
        username=d.get("username", ""),
        display_name=full or d.get("nickname", ""),
        email=d.get("email", ""),
        locale=d.get("locale") or "en",
        timezone=str(zone or ""),
        is_bot=bool(d.get("is_bot", False)),
        create_at=int(d.get("create_at", 0)),
        delete_at=int(d.get("delete_at", 0)),
    )


def channel_from_json(d: dict[str, Any]) -> Channel:
    """A Mattermost Channel as recapd's Channel."""
    return Channel(
        id=d["id"],
        team_id=d.get("team_id", ""),
        name=d.get("name", ""),
        display_name=d.get("display_name", ""),
        type=d.get("type", ChannelType.OPEN),
        header=d.get("header", ""),
        purpose=d.get("purpose", ""),
        create_at=int(d.get("create_at", 0)),
        delete_at=int(d.get("delete_at", 0)),
    )


def post_from_json(d: dict[str, Any]) -> Post:
    """A Mattermost Post as recapd's Post (reactions from its metadata when present)."""
    meta = d.get("metadata") or {}
    reactions = [
        Reaction(
            user_id=r.get("user_id", ""),
            emoji_name=r.get("emoji_name", ""),
            create_at=int(r.get("create_at", 0)),
        )
        for r in meta.get("reactions") or []
    ]
    return Post(
        id=d["id"],
        channel_id=d.get("channel_id", ""),
        user_id=d.get("user_id", ""),
        message=d.get("message", ""),
        create_at=int(d.get("create_at", 0)),
        root_id=d.get("root_id", ""),
        type=d.get("type", ""),
        props=dict(d.get("props") or {}),
        update_at=int(d.get("update_at", 0)),
        edit_at=int(d.get("edit_at", 0)),
        delete_at=int(d.get("delete_at", 0)),
        reactions=reactions,
    )


def _is_conversation(p: dict[str, Any]) -> bool:
    return not p.get("delete_at") and not str(p.get("type", "")).startswith("system_")


def _status(err: AppError) -> int:
    return err.status_code


class MattermostChatSource:
    """A ChatSource reading one Mattermost server with one token (see the module doc)."""

    def __init__(
        self,
        client: MattermostClient,
        clock: Clock,
        *,
        cache_ttl_ms: int = 10 * 60_000,
        page_size: int = MAX_PER_PAGE,
    ) -> None:
        self.client = client
        self._page_size = max(1, min(MAX_PER_PAGE, page_size))
        self._users: TTLCache[User] = TTLCache(clock, cache_ttl_ms)
        self._teams: TTLCache[Team] = TTLCache(clock, cache_ttl_ms)
        self._config: TTLCache[dict[str, Any]] = TTLCache(clock, cache_ttl_ms)
        # A channel never changes team, so this one does not expire.
        self._channel_team: dict[str, str] = {}

    # -- users and teams (cached with expiry) --------------------------------------------------

    async def get_user(self, user_id: str) -> User:
        """The user by id (cached for the cache TTL)."""
        cached = self._users.get(user_id)
        if cached is not None:
            return cached
        user = user_from_json(await self.client.get(f"/users/{user_id}"))
        self._users.put(user.id, user)
        return user

    async def get_users(self, user_ids: Sequence[str]) -> dict[str, User]:
        """The users among `user_ids` that exist (missing ones are left out)."""
        found: dict[str, User] = {}
        missing: list[str] = []
        for uid in dict.fromkeys(user_ids):
            cached = self._users.get(uid)
            if cached is not None:
                found[uid] = cached
            else:
                missing.append(uid)
        for i in range(0, len(missing), IDS_PER_CALL):
            chunk = missing[i : i + IDS_PER_CALL]
            data = await self.client.post("/users/ids", chunk, idempotent=True)
            for d in data or []:
                user = user_from_json(d)
                self._users.put(user.id, user)
                found[user.id] = user
        return found

    async def get_team(self, team_id: str) -> Team:
        """The team by id (cached for the cache TTL)."""
        cached = self._teams.get(team_id)
        if cached is not None:
            return cached
        d = await self.client.get(f"/teams/{team_id}")
        team = Team(
            id=d["id"],
            name=d.get("name", ""),
            display_name=d.get("display_name", ""),
            create_at=int(d.get("create_at", 0)),
            delete_at=int(d.get("delete_at", 0)),
        )
        self._teams.put(team.id, team)
        return team

    async def client_config(self) -> dict[str, Any]:
        """GET /config/client (SiteURL, MaxPostSize, Version), cached for the cache TTL."""
        cached = self._config.get("client")
        if cached is not None:
            return cached
        data = await self.client.get("/config/client")
        config = dict(data) if isinstance(data, dict) else {}
        self._config.put("client", config)
        return config

    async def site_url(self) -> str:
        """The server's SiteURL, or the URL recapd talks to when the server has none set."""
        site = str((await self.client_config()).get("SiteURL") or "").rstrip("/")
        return site or self.client.base_url

    # -- channels ---------------------------------------------------------------------------------

    async def get_channel(self, channel_id: str) -> Channel:
        """The channel; a direct message gets its two usernames as display name."""
        channel = channel_from_json(await self.client.get(f"/channels/{channel_id}"))
        self._channel_team[channel.id] = channel.team_id
        if channel.type == ChannelType.DIRECT and not channel.display_name:
            ids = [i for i in channel.name.split("__") if i]
            users = await self.get_users(ids)
            names = [users[i].username for i in ids if i in users]
            channel.display_name = ", ".join(dict.fromkeys(names)) or channel.name
        return channel

    async def _member(self, channel_id: str, user_id: str) -> dict[str, Any] | None:
        """The user's ChannelMember, or None when not a member (or the token cannot look)."""
        try:
            data = await self.client.get(f"/channels/{channel_id}/members/{user_id}")
        except AppError as err:
            if _status(err) in (403, 404):
                return None
            raise
        return data if isinstance(data, dict) else None

    async def can_read(self, user_id: str, channel_id: str) -> bool:
        """Asked of the server at every call: the channel exists, is not archived, the token
        can read it, the user is active and still a member."""
        try:
            channel = await self.client.get(f"/channels/{channel_id}")
        except AppError as err:
            if _status(err) in (403, 404):
                return False
            raise
        if channel.get("delete_at"):
            return False
        try:
            user = await self.get_user(user_id)
        except AppError as err:
            if _status(err) == 404:
                return False
            raise
        if user.delete_at:
            return False
        return await self._member(channel_id, user_id) is not None

    async def last_viewed_at(self, user_id: str, channel_id: str) -> int:
        """When the user last read the channel (ms; 0 if never or not a member)."""
        member = await self._member(channel_id, user_id)
        return int(member.get("last_viewed_at", 0)) if member else 0

    async def _channels_json(self, user_id: str) -> list[dict[str, Any]]:
        """The user's live channels as JSON (team channels, DMs and GMs)."""
        try:
            data = await self.client.get(f"/users/{user_id}/channels", {"include_deleted": False})
        except AppError as err:
            if _status(err) != 403:
                raise
            # A bot token may not list someone else's channels: use the bot's own channels
            # that the user is also in (the only ones the bot could read anyway).
            mine = await self.client.get("/users/me/channels", {"include_deleted": False})
            live = [c for c in mine or [] if not c.get("delete_at")]
            members = await _gather_limited(
                [functools.partial(self._member, c["id"], user_id) for c in live]
            )
            data = [c for c, m in zip(live, members, strict=True) if m is not None]
        channels = [
            c for c in data or [] if not c.get("delete_at") and c.get("type") in READABLE_TYPES
        ]
        for c in channels:
            self._channel_team[c["id"]] = c.get("team_id", "")
        return channels

    async def channels_of_user(self, user_id: str) -> list[Channel]:
        """Channels the user is a member of now (not archived)."""
        return [channel_from_json(c) for c in await self._channels_json(user_id)]

    async def _members_by_channel(
        self, user_id: str, channels: list[dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """The user's ChannelMember per channel: one call per team when allowed, else one per
        channel."""
        members: dict[str, dict[str, Any]] = {}
        try:
            teams = await self.client.get(f"/users/{user_id}/teams")
        except AppError as err:
            if _status(err) != 403:
                raise
            teams = []
        for team in teams or []:
            try:
                path = f"/users/{user_id}/teams/{team['id']}/channels/members"
                rows = await self.client.get(path)
            except AppError as err:
                if _status(err) not in (403, 404):
                    raise
                continue
            for m in rows or []:
                members[m["channel_id"]] = m
        rest = [c for c in channels if c["id"] not in members]
        lookups = [functools.partial(self._member, c["id"], user_id) for c in rest]
        found = await _gather_limited(lookups)
        for c, m in zip(rest, found, strict=True):
            if m is not None:
                members[c["id"]] = m
        return members

    async def unread_channels(self, user_id: str) -> list[Channel]:
        """The user's channels with unread posts: channel total_msg_count minus the member's
        msg_count (what they had seen), as Mattermost computes ChannelUnread."""
        channels = await self._channels_json(user_id)
        members = await self._members_by_channel(user_id, channels)
        unread: list[Channel] = []
        for c in channels:
            m = members.get(c["id"])
            if m is None:
                continue
            if int(c.get("total_msg_count", 0)) - int(m.get("msg_count", 0)) > 0:
                unread.append(channel_from_json(c))
        return unread

    # -- posts ------------------------------------------------------------------------------------

    async def _walk(self, channel_id: str, per_page: int) -> AsyncIterator[dict[str, Any]]:
        """The channel's posts newest first, every one once.

        The first page is the newest; each later one is `before=<an old post of the page
        before>` at page 0 (keyset paging): the server's `before` pages by offset over the
        live posts, so offsets past a post deleted meanwhile would skip one, and posts arriving
        meanwhile are newer than every anchor. `before` is a strict CreateAt comparison, so the
        anchor is the oldest post of the page newer than the page's last millisecond (that
        millisecond comes again and repeats are dropped by id); only a page all in one
        millisecond moves on by `page` from the same anchor.
        """
        path = f"/channels/{channel_id}/posts"
        per_page = max(1, min(MAX_PER_PAGE, per_page))
        base = {"per_page": per_page, "skipFetchThreads": True, "collapsedThreads": False}
        seen: set[str] = set()
        params: dict[str, Any] = {**base, "page": 0}
        anchor, page = "", 0
        while True:
            data = await self.client.get(path, params)
            order: list[str] = data.get("order") or []
            posts: dict[str, dict[str, Any]] = data.get("posts") or {}
            new = 0
            for pid in order:
                if pid in posts and pid not in seen:
                    seen.add(pid)
                    new += 1
                    yield posts[pid]
            if len(order) < per_page or new == 0 or not data.get("prev_post_id"):
                return
            listed = [posts[pid] for pid in order if pid in posts]
            oldest = min(int(p.get("create_at", 0)) for p in listed)
            newer = [p["id"] for p in listed if int(p.get("create_at", 0)) > oldest]
            if newer:
                anchor, page = newer[-1], 0
            else:
                page += 1
            params = {**base, "page": page, **({"before": anchor} if anchor else {})}

    async def iter_posts(
        self, channel_id: str, since_ms: int, until_ms: int, page_size: int = 200
    ) -> AsyncIterator[Post]:
        """Conversation posts created in [since_ms, until_ms), oldest first.

        Paged backwards from the newest with `before` (never `since`, which returns
        posts *updated* after a time, at most 1,000): deleted and system posts are left out,
        edited posts carry their current text.
        """
        window: list[dict[str, Any]] = []
        async for p in self._walk(channel_id, page_size):
            created = int(p.get("create_at", 0))
            if created < since_ms:
                break
            if created < until_ms and _is_conversation(p):
                window.append(p)
        window.sort(key=lambda p: (int(p.get("create_at", 0)), p["id"]))
        for p in window:
            yield post_from_json(p)

    async def latest_posts(self, channel_id: str, limit: int) -> list[Post]:
        """The `limit` newest conversation posts of the channel, oldest first."""
        found: list[dict[str, Any]] = []
        if limit > 0:
            async for p in self._walk(channel_id, self._page_size):
                if _is_conversation(p):
                    found.append(p)
                    if len(found) >= limit:
                        break
        found.sort(key=lambda p: (int(p.get("create_at", 0)), p["id"]))
        return [post_from_json(p) for p in found]

    async def get_posts(self, post_ids: Sequence[str]) -> dict[str, Post]:
        """Live posts by id that the token can read (deleted ones are left out)."""
        ids = list(dict.fromkeys(post_ids))
        out: dict[str, Post] = {}
        for i in range(0, len(ids), IDS_PER_CALL):
            try:
                chunk = ids[i : i + IDS_PER_CALL]
                data = await self.client.post("/posts/ids", chunk, idempotent=True)
            except AppError as err:
                if _status(err) == 404:  # none of them found
                    continue
                raise
            for d in data or []:
                if not d.get("delete_at"):
                    out[d["id"]] = post_from_json(d)
        return out

    # -- links ------------------------------------------------------------------------------------

    async def permalink(self, post: Post) -> str:
        """`{site}/{team}/pl/{id}`; `{site}/_redirect/pl/{id}` for direct and group messages
        (and when the team cannot be read)."""
        return f"{await self.site_url()}/{await self._team_name_of(post.channel_id)}/pl/{post.id}"

    async def _team_name_of(self, channel_id: str) -> str:
        team_id = self._channel_team.get(channel_id)
        if team_id is None:
            try:
                team_id = (await self.get_channel(channel_id)).team_id
            except AppError as err:
                if _status(err) not in (403, 404):
                    raise
                return REDIRECT_TEAM
        if not team_id:
            return REDIRECT_TEAM
        try:
            return (await self.get_team(team_id)).name or REDIRECT_TEAM
        except AppError as err:
            if _status(err) not in (403, 404):
                raise
            return REDIRECT_TEAM

    async def aclose(self) -> None:
        """Close the HTTP client of the current event loop."""
        await self.client.aclose()


async def _gather_limited(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the calls with at most LOOKUP_CONCURRENCY in flight; results in order."""
    gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(c) for c in calls)))


def mattermost_source(settings: Settings, clock: Clock) -> MattermostChatSource:
    """The chat source for `chat = "mattermost"`: the configured server and token."""
    return MattermostChatSource(mattermost_client(settings, clock), clock)


def mattermost_client(settings: Settings, clock: Clock) -> MattermostClient:
    """A client for the configured server and token, with the configured timeout and retries."""
    options = ClientOptions(
        timeout_s=settings.mattermost_timeout_seconds,
        connect_timeout_s=min(10.0, settings.mattermost_timeout_seconds),
        max_retries=settings.mattermost_max_retries,
    )
    return MattermostClient(
        settings.mattermost_url, settings.mattermost_token, options=options, clock=clock
    )
