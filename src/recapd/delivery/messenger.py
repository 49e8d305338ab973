"""The DirectMessenger protocol: how a recap reaches the user as a chat direct message.

Backends: `local_dm.LocalDirectMessenger` (recapd's own workspace) and, for a Mattermost
server, `mattermost_dm`. A delivery job may run more than once (retries, recovery), so a
backend must post a message at most once per `key`. A message that can never be sent (the
chat server refused the request itself) is a DirectMessageRefused; anything else raised is
worth retrying.
"""

from __future__ import annotations

from typing import Protocol


class DirectMessageRefused(Exception):
    """The chat server refused the direct message in a way a retry cannot change (the user
    is unknown there, the bot may not message them, the request is invalid)."""


class DirectMessenger(Protocol):
    """Sends a user a direct message from the recap bot."""

    async def send_direct(self, user_id: str, message: str, key: str) -> None:
        """Post `message` (Markdown) to the user's direct channel with the bot, once per `key`
        (a second call with the same key posts nothing). DirectMessageRefused when it can never
        succeed; any other exception is a failure worth retrying."""
        ...
