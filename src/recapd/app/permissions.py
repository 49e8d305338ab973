"""Permission checks shared by the use cases."""

from __future__ import annotations

from collections.abc import Sequence

from recapd.chat.source import ChatSource
from recapd.model.app_error import AppError


async def ensure_can_read(
    chat: ChatSource, user_id: str, channel_ids: Sequence[str], error_id: str
) -> None:
    """AppError 403 `error_id` unless the user may read every channel now."""
    for channel_id in channel_ids:
        if not await chat.can_read(user_id, channel_id):
            raise AppError(
                error_id,
                "you cannot read one of the chosen channels",
                detailed_error=f"channel_id={channel_id}",
                status_code=403,
            )
