"""The DirectMessenger protocol: how a recap reaches the user as a chat direct message.

Backends: `local_dm.LocalDirectMessenger` (recapd's own workspace) and, for a Mattermost
server, `mattermost_dm`. A delivery job may run more than once (retries, recovery), so a
backend must post a message at most once per `key`.
"""

from __future__ import annotations

from typing import Protocol


class DirectMessenger(Protocol):
    """Sends a user a direct message from the recap bot."""

    async def send_direct(self, user_id: str, message: str, key: str) -> None:
        """Post `message` (Markdown) to the user's direct channel with the bot, once per `key`
        (a second call with the same key posts nothing). Raises on a failure worth retrying."""
        ...
