"""The `local` chat source: recapd's own workspace tables, filled by the importers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from recapd.model.app_error import AppError
from recapd.model.chat import Channel, Post, PostStamp, Team, User
from recapd.store.store import Store

# Mattermost's team-less permalink segment: the web app sends it on to a team of the reader.
REDIRECT_TEAM = "_redirect"


class LocalChatSource:
    """A ChatSource over the workspace tables; store calls run in worker threads."""

    def __init__(self, store: Store, site_url: str) -> None:
        self._ws = store.workspace
        # Settable: `recapd serve` sets the address it bound when no site_url is configured.
        self.site_url = site_url.rstrip("/")
        # channel id -> team name: a channel never changes team, and a recap links many posts.
        self._team_names: dict[str, str] = {}

    async def get_user(self, user_id: str) -> User:
        return await asyncio.to_thread(self._ws.get_user, user_id)

    async def get_users(self, user_ids: Sequence[str]) -> dict[str, User]:
        """The users among `user_ids` that exist (missing ones are left out)."""
        return await asyncio.to_thread(self._ws.get_users, list(user_ids))

    async def get_team(self, team_id: str) -> Team:
        return await asyncio.to_thread(self._ws.get_team, team_id)

    async def get_channel(self, channel_id: str) -> Channel:
        return await asyncio.to_thread(self._ws.get_channel, channel_id)

    async def channels_of_user(self, user_id: str) -> list[Channel]:
        """Channels the user is a member of now (not archived)."""
        return await asyncio.to_thread(self._ws.channels_of_user, user_id)

    async def unread_channels(self, user_id: str) -> list[Channel]:
        """The user's channels with a post (not their own, not system) after last_viewed_at."""
        return await asyncio.to_thread(self._ws.unread_channels, user_id)

    async def can_read(self, user_id: str, channel_id: str) -> bool:
        """A member of a channel that is not archived may read it."""
        return await asyncio.to_thread(self._ws.is_member, channel_id, user_id, live_channel=True)

    async def channel_for_reader(self, user_id: str, channel_id: str) -> tuple[Channel, bool, int]:
        """get_channel, can_read and last_viewed_at in one statement."""
        channel, member = await asyncio.to_thread(self._ws.reader_view, channel_id, user_id)
        readable = member is not None and not channel.delete_at
        return channel, readable, member.last_viewed_at if member else 0

    async def last_viewed_at(self, user_id: str, channel_id: str) -> int:
        """When the user last read the channel (ms; 0 if never or not a member)."""
        try:
            member = await asyncio.to_thread(self._ws.get_member, channel_id, user_id)
        except AppError as err:
            if err.status_code == 404:
                return 0
            raise
        return member.last_viewed_at

    async def iter_posts(
        self, channel_id: str, since_ms: int, until_ms: int, page_size: int = 200
    ) -> AsyncIterator[Post]:
        """Conversation posts created in [since_ms, until_ms), oldest first, a page at a time."""
        after: tuple[int, str] | None = None
        while True:
            page = await asyncio.to_thread(
                self._ws.posts_page, channel_id, since_ms, until_ms, after, page_size
            )
            for post in page:
                yield post
            if len(page) < page_size:
                return
            after = (page[-1].create_at, page[-1].id)

    async def post_stamps(self, channel_id: str, since_ms: int, until_ms: int) -> list[PostStamp]:
        """Stamps of the conversation posts in [since_ms, until_ms), oldest first (one query)."""
        return await asyncio.to_thread(self._ws.post_stamps, channel_id, since_ms, until_ms)

    async def post_stamps_by_id(self, post_ids: Sequence[str]) -> dict[str, PostStamp]:
        """Stamps of live posts by id (deleted ones left out, as get_posts does)."""
        return await asyncio.to_thread(self._ws.post_stamps_by_id, list(post_ids))

    async def latest_posts(self, channel_id: str, limit: int) -> list[Post]:
        """The `limit` newest conversation posts of the channel, oldest first."""
        return await asyncio.to_thread(self._ws.latest_posts, channel_id, limit)

    async def get_posts(self, post_ids: Sequence[str]) -> dict[str, Post]:
        """Live posts by id (deleted ones are left out, as if missing)."""
        return await asyncio.to_thread(self._ws.get_posts, list(post_ids))

    async def posts_and_authors(
        self, post_ids: Sequence[str]
    ) -> tuple[dict[str, Post], dict[str, User]]:
        """get_posts and get_users of their authors in one store call."""
        return await asyncio.to_thread(self._ws.posts_and_authors, list(post_ids))

    async def permalink(self, post: Post) -> str:
        """`{site_url}/{team}/pl/{post_id}`; `_redirect` for direct and group channels."""
        team = await self._team_name_of_channel(post.channel_id)
        return f"{self.site_url}/{team}/pl/{post.id}"

    async def _team_name_of_channel(self, channel_id: str) -> str:
        name = self._team_names.get(channel_id)
        if name is None:
            name = await self._lookup_team_name(channel_id)
            self._team_names[channel_id] = name
        return name

    async def _lookup_team_name(self, channel_id: str) -> str:
        channel = await self.get_channel(channel_id)
        if not channel.team_id:
            return REDIRECT_TEAM
        try:
            return (await self.get_team(channel.team_id)).name
        except AppError as err:
            if err.status_code != 404:
                raise
            # A channel whose team is gone still gets a link the web app can resolve.
            return REDIRECT_TEAM
