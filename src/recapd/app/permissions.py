"""Permission checks shared by the use cases."""

from __future__ import annotations

from collections.abc import Sequence

from recapd.chat.source import ChatSource
from recapd.model.app_error import AppError
from recapd.model.chat import ChannelType


async def ensure_can_read(
    chat: ChatSource, user_id: str, channel_ids: Sequence[str], error_id: str
) -> None:
    """AppError 403 `error_id` unless the user may read every channel now.

    The message names a public channel (its name is no secret); a private or missing one is
    "the chosen channel", so the error tells nothing about channels the user cannot see.
    """
    for channel_id in channel_ids:
        if not await chat.can_read(user_id, channel_id):
            raise AppError(
                error_id,
                await _cannot_read(chat, channel_id, len(channel_ids)),
                detailed_error=f"channel_id={channel_id}",
                status_code=403,
                params={"channel_id": channel_id},
            )


async def _cannot_read(chat: ChatSource, channel_id: str, chosen: int) -> str:
    try:
        channel = await chat.get_channel(channel_id)
    except AppError:
        channel = None
    if channel is not None and channel.type == ChannelType.OPEN and channel.name:
        return f"you cannot read channel {channel.name}"
    return (
        "you cannot read the chosen channel"
        if chosen == 1
        else ("you cannot read one of the chosen channels")
    )
