"""Post budgets shared by the channels of one recap."""

from __future__ import annotations

import asyncio


class PostBudget:
    """How many posts a recap may still read; channels running at once draw from it atomically.

    `limit` < 0 means unlimited.
    """

    def __init__(self, limit: int) -> None:
        self._left = limit
        self._lock = asyncio.Lock()
        self.used = 0

    @property
    def unlimited(self) -> bool:
        return self._left < 0

    async def take(self, wanted: int) -> int:
        """Reserve up to `wanted` posts; return how many were granted."""
        async with self._lock:
            granted = wanted if self._left < 0 else max(0, min(wanted, self._left))
            if self._left >= 0:
                self._left -= granted
            self.used += granted
            return granted


def effective_post_limit(max_posts_per_recap: int, max_posts_per_day: int, used_today: int) -> int:
    """The posts one recap may read: the tighter of the per-recap and the per-day limits
    (each -1 = unlimited)."""
    limits = []
    if max_posts_per_recap >= 0:
        limits.append(max_posts_per_recap)
    if max_posts_per_day >= 0:
        limits.append(max(0, max_posts_per_day - used_today))
    return min(limits) if limits else -1
