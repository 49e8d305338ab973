"""Direct messages in recapd's own workspace: a bot user, its direct channel with the user
(Mattermost's naming), and the message as one or more posts."""

from __future__ import annotations

import asyncio
import logging

from recapd.clock import Clock
from recapd.delivery.markdown import split_message
from recapd.model.app_error import AppError
from recapd.model.chat import Channel, ChannelMember, ChannelType, Post, User
from recapd.model.ids import is_valid_id, stable_id
from recapd.store.store import Store
from recapd.store.workspace_store import POST_MESSAGE_MAX_RUNES

log = logging.getLogger(__name__)


def direct_channel_name(user_a: str, user_b: str) -> str:
    """Mattermost's direct-channel name: the two user ids sorted, joined by "__"."""
    first, second = sorted((user_a, user_b))
    return f"{first}__{second}"


class LocalDirectMessenger:
    """A DirectMessenger over the workspace tables."""

    def __init__(self, store: Store, clock: Clock, bot_username: str = "recap-bot") -> None:
        self.store = store
        self.clock = clock
        self.bot_username = bot_username

    async def send_direct(self, user_id: str, message: str, key: str) -> None:
        """Post the message from the bot to the user's direct channel, once per `key`."""
        await asyncio.to_thread(self._send, user_id, message, key)

    def ensure_bot(self) -> User:
        """The bot user, created the first time (idempotent, also across nodes)."""
        ws = self.store.workspace
        try:
            return ws.get_user_by_username(self.bot_username)
        except AppError as exc:
            if exc.status_code != 404:
                raise
        bot = User(
            id=stable_id("bot", self.bot_username),
            username=self.bot_username,
            display_name="Recap Bot",
            is_bot=True,
            timezone="UTC",
            create_at=self.clock.now_ms(),
        )
        ws.upsert_users([bot])
        return ws.get_user_by_username(self.bot_username)

    def ensure_direct_channel(self, bot: User, user_id: str) -> Channel:
        """The direct channel between the bot and the user, with both as members."""
        ws = self.store.workspace
        name = direct_channel_name(bot.id, user_id)
        now = self.clock.now_ms()
        try:
            channel = ws.get_channel_by_name("", name)
        except AppError as exc:
            if exc.status_code != 404:
                raise
            channel = Channel(
                id=stable_id("direct", name),
                team_id="",
                name=name,
                type=ChannelType.DIRECT,
                create_at=now,
            )
            ws.upsert_channels([channel])
        # The user's membership starts unread; an existing one never moves backwards.
        ws.upsert_members(
            [
                ChannelMember(channel.id, bot.id, last_viewed_at=now, create_at=now),
                ChannelMember(channel.id, user_id, create_at=now),
            ]
        )
        return channel

    def _send(self, user_id: str, message: str, key: str) -> None:
        if not is_valid_id(user_id):
            raise ValueError(f"not a user id: {user_id!r}")
        ws = self.store.workspace
        try:
            ws.get_user(user_id)
        except AppError as exc:
            if exc.status_code != 404:
                raise
            # Not a workspace user (e.g. signed in from another chat system): no one to tell
            # here, and a retry would not change that.
            log.info("user %s is not in the workspace; no direct message", user_id)
            return
        bot = self.ensure_bot()
        channel = self.ensure_direct_channel(bot, user_id)
        parts = split_message(message, POST_MESSAGE_MAX_RUNES)
        ids = [stable_id("dm", key, str(i)) for i in range(len(parts))]
        now = self.clock.now_ms()
        with self.store.transaction() as conn:
            if ws.get_posts(ids[:1], include_deleted=True, conn=conn):
                log.info("direct message %s was already posted", key)
                return
            for i, (post_id, text) in enumerate(zip(ids, parts, strict=True)):
                ws.add_post(
                    Post(
                        id=post_id,
                        channel_id=channel.id,
                        user_id=bot.id,
                        message=text,
                        # Parts of one message keep their order within the same millisecond.
                        create_at=now + i,
                        update_at=now + i,
                        props={"from_bot": "true", "recapd_delivery": key},
                    ),
                    conn=conn,
                )
