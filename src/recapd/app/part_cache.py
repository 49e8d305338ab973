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
from collections.abc import Awaitable, Callable, Collection

from recapd import metrics
from recapd.agents.base import AgentResult, TokenUsage
from recapd.clock import Clock
from recapd.config import Settings
from recapd.store.part_cache_store import READY, FingerprintedPart, PartMeta
from recapd.store.store import Store
from recapd.summarize.part_cache import (
    CacheOutcome,
    PartKey,
    StretchLookup,
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
        # Stretches found whole by their fingerprint: fingerprint -> (earliest expiry of its
        # rows, its parts in order). Same rules as the memo above.
        self._stretches: OrderedDict[str, tuple[int, list[AgentResult]]] = OrderedDict()
        self.memo_size = memo_size
        # Stretches a run of this process is making (its lookup missed them), by fingerprint:
        # other runs wait for it instead of reading and preparing the same posts.
        self._leading: dict[str, asyncio.Event] = {}
        # Fingerprint -> {part: cache key} of the ready parts seen so far (see _assemble).
        self._assembling: OrderedDict[str, dict[int, str]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """False when `ai_recaps.part_cache_hours` is 0."""
        return self.settings.ai_recaps.part_cache_hours > 0

    def _ttl_ms(self) -> int:
        return int(self.settings.ai_recaps.part_cache_hours * HOUR_MS)

    async def lookup_stretches(
        self, channel_id: str, fingerprints: Collection[str]
    ) -> StretchLookup:
        """The parts of the stretches stored whole under these fingerprints: one query for
        the channel's window (none for stretches this process found before). A stretch that
        another run of this process is making is waited for, so a herd of recaps reads and
        prepares a new stretch once per process, not once per recap; the stretches missing
        after that are the caller's to make (and to hand back with release_stretches)."""
        wanted = list(dict.fromkeys(fingerprints)) if self.enabled else []
        # Stretches being made here are not asked of the table before they are made.
        found = await self._find(channel_id, [fp for fp in wanted if fp not in self._leading])
        # (Another run may have begun to make one while the table answered.)
        busy = [fp for fp in wanted if fp not in found and fp in self._leading]
        found.update(self._from_memo(busy))
        events = [self._leading[fp] for fp in busy if fp not in found and fp in self._leading]
        if events:
            # The caller leads nothing while it waits, so two runs never wait on each other.
            await asyncio.gather(*(event.wait() for event in events))
            found.update(await self._find(channel_id, [fp for fp in wanted if fp not in found]))
        leading = [fp for fp in wanted if fp not in found and fp not in self._leading]
        for fp in leading:
            self._leading[fp] = asyncio.Event()
        for results in found.values():
            for r in results:
                metrics.record_part_cache(hit=True, tokens_saved=r.usage.total_tokens)
        return StretchLookup({fp: [r.copy() for r in rs] for fp, rs in found.items()}, leading)

    def release_stretches(self, fingerprints: Collection[str]) -> None:
        """The caller is done with the stretches it was making: wake the runs waiting."""
        for fp in fingerprints:
            event = self._leading.pop(fp, None)
            if event is not None:
                event.set()

    async def _find(self, channel_id: str, fingerprints: list[str]) -> dict[str, list[AgentResult]]:
        """The stretches stored whole, from the memo, else from the table."""
        found = self._from_memo(fingerprints)
        todo = [fp for fp in fingerprints if fp not in found]
        if not todo:
            return found
        now = self.clock.now_ms()
        rows = await asyncio.to_thread(self.store.part_cache.by_fingerprints, channel_id, todo, now)
        by_fp: dict[str, list[FingerprintedPart]] = {}
        for row in rows:
            by_fp.setdefault(row.fingerprint, []).append(row)
        for fp, group in by_fp.items():
            group.sort(key=lambda r: r.part)
            # Whole: parts 1..n, each once, all saying n (else the stretch is made again).
            if [r.part for r in group] != list(range(1, group[0].parts + 1)) or any(
                r.parts != group[0].parts for r in group
            ):
                continue
            results = [
                result_from_json(r.result, TokenUsage(r.prompt_tokens, r.completion_tokens))
                for r in group
            ]
            found[fp] = results
            self._stretches[fp] = (min(r.expire_at for r in group), results)
            self._stretches.move_to_end(fp)
        while len(self._stretches) > self.memo_size:
            self._stretches.popitem(last=False)
        return found

    async def get_or_compute(
        self,
        key: PartKey,
        compute: Callable[[], Awaitable[AgentResult]],
        *,
        fingerprint: str = "",
    ) -> CacheOutcome:
        """The stored summary of `key`, else compute it once for the whole cluster."""
        if not self.enabled:
            return CacheOutcome(await compute(), reused=False)
        cache_key = key.cache_key
        parts = self.store.part_cache
        meta = PartMeta(
            key.channel_id,
            key.agent_id,
            key.start_ms,
            key.end_ms,
            fingerprint=fingerprint,
            part=key.part,
            parts=key.parts,
        )
        token = secrets.token_hex(16)
        memo = self._memo_get(cache_key)
        if memo is not None:
            metrics.record_part_cache(hit=True, tokens_saved=memo.usage.total_tokens)
            self._assemble(fingerprint, key, cache_key)
            return CacheOutcome(memo.copy(), reused=True)
        while True:
            now = self.clock.now_ms()
            row = await asyncio.to_thread(parts.get, cache_key)
            if row is not None and row.status == READY and row.expire_at > now and row.result:
                usage = TokenUsage(row.prompt_tokens, row.completion_tokens)
                if row.channel_id != key.channel_id:  # a key never spans channels
                    raise RuntimeError("part cache key collision across channels")
                metrics.record_part_cache(hit=True, tokens_saved=usage.total_tokens)
                self._stored.pop(cache_key, None)
                if fingerprint and row.fingerprint != fingerprint:
                    # The same content under another fingerprint (e.g. a post updated
                    # without a change the agent sees): found by the newer one from now on.
                    await asyncio.to_thread(parts.set_fingerprint, cache_key, fingerprint)
                result = result_from_json(row.result, usage)
                self._memo_put(cache_key, row.expire_at, result)
                self._assemble(fingerprint, key, cache_key)
                return CacheOutcome(result.copy(), reused=True)
            expire_at = now + self._ttl_ms()
            if row is None:
                claimed = await asyncio.to_thread(
                    parts.claim, cache_key, meta, token, now, expire_at
                )
            else:
                stale = now - int(self.settings.ai_recaps.part_cache_claim_seconds * 1000)
                claimed = await asyncio.to_thread(
                    parts.take_over,
                    cache_key,
                    token,
                    now,
                    expire_at,
                    stale_before=stale,
                    fingerprint=fingerprint,
                )
            if claimed:
                return await self._compute(cache_key, token, key, compute, fingerprint)
            await self._wait(cache_key)

    async def _compute(
        self,
        cache_key: str,
        token: str,
        key: PartKey,
        compute: Callable[[], Awaitable[AgentResult]],
        fingerprint: str,
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
            self._assemble(fingerprint, key, cache_key)
        metrics.record_part_cache(hit=False)
        event = self._stored.pop(cache_key, None)
        if event is not None:
            event.set()
        return CacheOutcome(result, reused=False)

    def _from_memo(self, fingerprints: Collection[str]) -> dict[str, list[AgentResult]]:
        now = self.clock.now_ms()
        found: dict[str, list[AgentResult]] = {}
        for fp in fingerprints:
            memo = self._stretches.get(fp)
            if memo is not None and memo[0] > now:
                found[fp] = memo[1]
        return found

    def _assemble(self, fingerprint: str, key: PartKey, cache_key: str) -> None:
        """Note a ready part of a fingerprinted stretch; once every part of it is in the memo,
        the stretch is, so the runs waiting for it find it without asking the table."""
        if not fingerprint:
            return
        got = self._assembling.setdefault(fingerprint, {})
        self._assembling.move_to_end(fingerprint)
        got[key.part] = cache_key
        while len(self._assembling) > self.memo_size:
            self._assembling.popitem(last=False)
        if len(got) < key.parts:
            return
        del self._assembling[fingerprint]
        entries = [self._memo.get(got.get(part, "")) for part in range(1, key.parts + 1)]
        if len(got) != key.parts or any(e is None for e in entries):
            return
        ready = [e for e in entries if e is not None]
        self._stretches[fingerprint] = (min(e[0] for e in ready), [e[1] for e in ready])
        self._stretches.move_to_end(fingerprint)
        while len(self._stretches) > self.memo_size:
            self._stretches.popitem(last=False)

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
