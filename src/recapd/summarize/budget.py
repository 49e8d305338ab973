"""Post budgets shared by the channels of one recap."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping


def fair_shares(limit: int, wanted: Mapping[str, int]) -> dict[str, int]:
    """Split `limit` posts max-min fairly: a channel that wants less than an equal share gets
    all it wants, and what it leaves is shared by the others."""
    shares: dict[str, int] = {}
    left = limit
    order = sorted(wanted, key=lambda k: (wanted[k], k))
    for i, key in enumerate(order):
        share = min(wanted[key], left // (len(order) - i))
        shares[key] = share
        left -= share
    # What integer division left over goes to the channels that still want more, biggest first.
    for key in reversed(order):
        if left <= 0:
            break
        extra = min(left, wanted[key] - shares[key])
        shares[key] += extra
        left -= extra
    return shares


class PostBudget:
    """How many posts a recap may still read, split fairly between its channels.

    Each channel asks once with `take(channel, wanted)` after reading its window, or gives up
    its place with `withdraw(channel)`; the split is made when every channel has done one or
    the other, so a long channel read first cannot leave a short one with nothing.
    `limit` < 0 means unlimited.
    """

    def __init__(self, limit: int, channels: Iterable[str]) -> None:
        self._limit = limit
        self._waiting = set(channels)
        self._wanted: dict[str, int] = {}
        self._shares: dict[str, int] = {}
        self._split = asyncio.Event()
        self.used = 0
        if not self._waiting:
            self._split.set()

    @property
    def limit(self) -> int:
        """The posts the whole recap may read (-1: unlimited)."""
        return self._limit

    @property
    def unlimited(self) -> bool:
        return self._limit < 0

    async def take(self, channel: str, wanted: int) -> int:
        """Ask for `wanted` posts for `channel`; return how many it may read."""
        if self.unlimited:
            self.used += wanted
            return wanted
        self._wanted[channel] = wanted
        self._arrived(channel)
        await self._split.wait()
        granted = self._shares.get(channel, 0)
        self.used += granted
        return granted

    def withdraw(self, channel: str) -> None:
        """`channel` will not ask (it failed or cannot be read); a no-op once it has asked."""
        if channel not in self._wanted:
            self._wanted[channel] = 0
            self._arrived(channel)

    def _arrived(self, channel: str) -> None:
        self._waiting.discard(channel)
        if not self._waiting and not self._split.is_set():
            self._shares = fair_shares(self._limit, self._wanted)
            self._split.set()


def effective_post_limit(max_posts_per_recap: int, max_posts_per_day: int, used_today: int) -> int:
    """The posts one recap may read: the tighter of the per-recap and the per-day limits
    (each -1 = unlimited)."""
    limits = []
    if max_posts_per_recap >= 0:
        limits.append(max_posts_per_recap)
    if max_posts_per_day >= 0:
        limits.append(max(0, max_posts_per_day - used_today))
    return min(limits) if limits else -1
