"""The part cache over the database: a stretch's summary computed once in the cluster.

Single flight without an in-process lock: the first run to insert the key's row
(`PartCacheStore.claim`, INSERT ... ON CONFLICT DO NOTHING on the primary key) computes the
summary and stores it; every other run, on any node, finds the row `computing` and waits until
it is `ready` (polling the row; runs in this process are woken at once when it is stored
here). A claim older than `part_cache_claim_seconds` is taken over by compare-and-set (its run
died), and a run whose computation fails deletes its claim so a waiter tries at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from recapd import metrics
from recapd.agents.base import AgentResult, TokenUsage
from recapd.clock import Clock
from recapd.config import Settings
from recapd.store.part_cache_store import READY, PartMeta
from recapd.store.store import Store
from recapd.summarize.part_cache import (
    CacheOutcome,
    PartKey,
    result_from_json,
    result_to_json,
)

HOUR_MS = 3_600_000


class DatabasePartCache:
    """PartCache (summarize/part_cache.py) kept in the `part_cache` table."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        *,
        poll_seconds: float = 0.2,
        memo_size: int = 20_000,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.poll_seconds = poll_seconds
        # Wakes this process's waiters when a part is stored here; other nodes poll.
        self._stored: dict[str, asyncio.Event] = {}
        # Ready rows this process has seen, by key: a ready row never changes (its key is its
        # content), so a memo of them saves a database round trip per hit. It is read exactly
        # where the table would be (after the pipeline's permission check), and honours the
        # row's expiry. Oldest first, bounded.
        self._memo: OrderedDict[str, tuple[int, AgentResult]] = OrderedDict()
        self.memo_size = memo_size

    @property
    def enabled(self) -> bool:
        """False when `ai_recaps.part_cache_hours` is 0."""
        return self.settings.ai_recaps.part_cache_hours > 0

    def _ttl_ms(self) -> int:
        return int(self.settings.ai_recaps.part_cache_hours * HOUR_MS)

    async def get_or_compute(
        self, key: PartKey, compute: Callable[[], Awaitable[AgentResult]]
    ) -> CacheOutcome:
        """The stored summary of `key`, else compute it once for the whole cluster."""
        if not self.enabled:
            return CacheOutcome(await compute(), reused=False)
        cache_key = key.cache_key
        parts = self.store.part_cache
        meta = PartMeta(key.channel_id, key.agent_id, key.start_ms, key.end_ms)
        token = secrets.token_hex(16)
        memo = self._memo_get(cache_key)
        if memo is not None:
            metrics.record_part_cache(hit=True, tokens_saved=memo.usage.total_tokens)
            return CacheOutcome(_copy(memo), reused=True)
        while True:
            now = self.clock.now_ms()
            row = await asyncio.to_thread(parts.get, cache_key)
            if row is not None and row.status == READY and row.expire_at > now and row.result:
                usage = TokenUsage(row.prompt_tokens, row.completion_tokens)
                if row.channel_id != key.channel_id:  # a key never spans channels
                    raise RuntimeError("part cache key collision across channels")
                metrics.record_part_cache(hit=True, tokens_saved=usage.total_tokens)
                self._stored.pop(cache_key, None)
                result = result_from_json(row.result, usage)
                self._memo_put(cache_key, row.expire_at, result)
                return CacheOutcome(_copy(result), reused=True)
            expire_at = now + self._ttl_ms()
            if row is None:
                claimed = await asyncio.to_thread(
                    parts.claim, cache_key, meta, token, now, expire_at
                )
            else:
                stale = now - int(self.settings.ai_recaps.part_cache_claim_seconds * 1000)
                claimed = await asyncio.to_thread(
                    parts.take_over, cache_key, token, now, expire_at, stale_before=stale
                )
            if claimed:
                return await self._compute(cache_key, token, key, compute)
            await self._wait(cache_key)

    async def _compute(
        self,
        cache_key: str,
        token: str,
        key: PartKey,
        compute: Callable[[], Awaitable[AgentResult]],
    ) -> CacheOutcome:
        parts = self.store.part_cache
        try:
            result = await compute()
        except BaseException:
            await asyncio.to_thread(parts.release, cache_key, token)
            raise
        now = self.clock.now_ms()
        usage = result.usage
        stored = result_to_json(result)
        expire_at = now + self._ttl_ms()
        if await asyncio.to_thread(
            parts.complete,
            cache_key,
            token,
            stored,
            (usage.prompt_tokens, usage.completion_tokens),
            now,
            expire_at,
        ):
            # What a later hit reads is the stored form (usage included).
            self._memo_put(cache_key, expire_at, result_from_json(stored, usage))
        metrics.record_part_cache(hit=False)
        event = self._stored.pop(cache_key, None)
        if event is not None:
            event.set()
        return CacheOutcome(result, reused=False)

    def _memo_get(self, cache_key: str) -> AgentResult | None:
        found = self._memo.get(cache_key)
        if found is None:
            return None
        expire_at, result = found
        if expire_at <= self.clock.now_ms():
            del self._memo[cache_key]
            return None
        return result

    def _memo_put(self, cache_key: str, expire_at: int, result: AgentResult) -> None:
        self._memo[cache_key] = (expire_at, result)
        self._memo.move_to_end(cache_key)
        while len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)

    async def _wait(self, cache_key: str) -> None:
        """Until the part is stored by this process, or one poll interval passed."""
        event = self._stored.setdefault(cache_key, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), self.poll_seconds)


def _copy(result: AgentResult) -> AgentResult:
    """A result the caller may change without changing the memo's."""
    return result_from_json(result_to_json(result), result.usage)
