"""The ChatSource protocol: everything a recap needs to read from a chat system."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from recapd.model.chat import Channel, Post, PostStamp, Team, User


class ChatSource(Protocol):
    """Read access to a chat workspace, always on behalf of one reader.

    Lookups of something missing raise AppError with status 404.
    """

    async def get_user(self, user_id: str) -> User: ...

    async def get_users(self, user_ids: Sequence[str]) -> dict[str, User]:
        """The users among `user_ids` that exist (missing ones are left out)."""
        ...

    async def get_team(self, team_id: str) -> Team: ...

    async def get_channel(self, channel_id: str) -> Channel: ...

    async def channels_of_user(self, user_id: str) -> list[Channel]:
        """Channels the user is a member of now (not deleted)."""
        ...

    async def unread_channels(self, user_id: str) -> list[Channel]:
        """The user's channels with a post (not their own, not system) after last_viewed_at."""
        ...

    async def can_read(self, user_id: str, channel_id: str) -> bool:
        """Whether the user may read the channel now (membership checked at call time)."""
        ...

    async def last_viewed_at(self, user_id: str, channel_id: str) -> int:
        """When the user last read the channel (ms; 0 if never or not a member)."""
        ...

    def iter_posts(
        self, channel_id: str, since_ms: int, until_ms: int, page_size: int = 200
    ) -> AsyncIterator[Post]:
        """Posts created in [since_ms, until_ms), oldest first, fetched a page at a time.

        System posts and deleted posts are left out; edited posts carry their current text.
        """
        ...

    async def latest_posts(self, channel_id: str, limit: int) -> list[Post]:
        """The `limit` newest conversation posts of the channel, oldest first."""
        ...

    async def get_posts(self, post_ids: Sequence[str]) -> dict[str, Post]:
        """Posts by id (to fetch the roots of threads whose replies are in a window)."""
        ...

    async def permalink(self, post: Post) -> str:
        """The link that opens the post in the chat system."""
        ...


@runtime_checkable
class StampSource(Protocol):
    """A chat source that can tell posts' state without their text (model/chat.PostStamp):
    the local workspace, whose every change of a post moves its update_at. A source without
    it (Mattermost over REST) has every window read in full. It also answers what a recap
    asks first of a channel in one read."""

    async def channel_for_reader(self, user_id: str, channel_id: str) -> tuple[Channel, bool, int]:
        """(get_channel, can_read, last_viewed_at) of the reader and channel, read at once."""
        ...

    async def post_stamps(self, channel_id: str, since_ms: int, until_ms: int) -> list[PostStamp]:
        """Stamps of the posts iter_posts would give, in the same order."""
        ...

    async def post_stamps_by_id(self, post_ids: Sequence[str]) -> dict[str, PostStamp]:
        """Stamps of the posts get_posts would give."""
        ...

    async def posts_and_authors(
        self, post_ids: Sequence[str]
    ) -> tuple[dict[str, Post], dict[str, User]]:
        """get_posts, and get_users of those posts' authors, read at once."""
        ...
