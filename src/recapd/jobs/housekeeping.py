"""The job system's own chores, run by the leader: recover wedged jobs, delete old ones and
expired web sessions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from recapd.config import Settings
from recapd.jobs.scheduler import Scheduler, SchedulerContext
from recapd.store.store import Store

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


class WedgedJobRecovery(Scheduler):
    """Jobs whose heartbeat stopped (their node died or hung) go back to pending, or to error
    after their last attempt, whichever node ran them."""

    name = "wedged_job_recovery"

    def __init__(self, store: Store, max_attempts: Callable[[str], int]) -> None:
        self.store = store
        self.max_attempts = max_attempts

    def enabled(self, settings: Settings) -> bool:
        return True  # recovery is the job system's duty, whatever else is switched off

    def next_schedule_time(self, settings: Settings, now_ms: int) -> int:
        # Check a few times per timeout so a wedged job waits at most ~1.25 timeouts.
        return now_ms + int(settings.jobs.wedged_job_timeout_seconds * 1000 / 4)

    async def schedule_job(self, ctx: SchedulerContext) -> None:
        cutoff = ctx.now_ms - int(ctx.settings.jobs.wedged_job_timeout_seconds * 1000)
        while ctx.still_leader:
            requeued, ended = await asyncio.to_thread(
                self.store.jobs.recover_wedged, cutoff, ctx.now_ms, self.max_attempts
            )
            if requeued or ended:
                log.warning("recovered wedged jobs: %d requeued, %d ended", requeued, ended)
            if requeued + ended == 0:
                break


class JobCleanup(Scheduler):
    """Deletes finished jobs older than the cleanup threshold, in small batches."""

    name = "job_cleanup"

    def __init__(self, store: Store, period_s: float = 3600.0) -> None:
        self.store = store
        self.period_s = period_s

    def enabled(self, settings: Settings) -> bool:
        return settings.jobs.cleanup_jobs_threshold_days > 0

    def next_schedule_time(self, settings: Settings, now_ms: int) -> int:
        return now_ms + int(self.period_s * 1000)

    async def schedule_job(self, ctx: SchedulerContext) -> None:
        js = ctx.settings.jobs
        before = ctx.now_ms - js.cleanup_jobs_threshold_days * DAY_MS
        total = 0
        while ctx.still_leader:
            n = await asyncio.to_thread(
                self.store.jobs.delete_finished_before, before, js.cleanup_batch_size
            )
            total += n
            if n < js.cleanup_batch_size:
                break
        if total:
            log.info(
                "deleted %d finished jobs older than %d days", total, js.cleanup_jobs_threshold_days
            )


class _ExpiredRowsCleanup(Scheduler):
    """Deletes rows past their expiry, hourly, in small batches, while this node leads."""

    name = ""
    what = ""

    def __init__(self, store: Store, period_s: float = 3600.0) -> None:
        self.store = store
        self.period_s = period_s

    def delete_expired(self, now_ms: int, batch: int) -> int:
        """Delete up to `batch` expired rows; how many were deleted."""
        raise NotImplementedError

    def enabled(self, settings: Settings) -> bool:
        return True

    def next_schedule_time(self, settings: Settings, now_ms: int) -> int:
        return now_ms + int(self.period_s * 1000)

    async def schedule_job(self, ctx: SchedulerContext) -> None:
        batch = ctx.settings.jobs.cleanup_batch_size
        total = 0
        while ctx.still_leader:
            n = await asyncio.to_thread(self.delete_expired, ctx.now_ms, batch)
            total += n
            if n < batch:
                break
        if total:
            log.info("deleted %d expired %s", total, self.what)


class WebSessionCleanup(_ExpiredRowsCleanup):
    """Deletes expired web sessions (rows no sign-in can use any more)."""

    name = "web_session_cleanup"
    what = "web sessions"

    def delete_expired(self, now_ms: int, batch: int) -> int:
        return self.store.web_sessions.delete_expired(now_ms, batch)


class PartCacheCleanup(_ExpiredRowsCleanup):
    """Deletes expired part-cache entries (summarize/part_cache.py); with the cache off,
    entries left from before still expire."""

    name = "part_cache_cleanup"
    what = "part cache entries"

    def delete_expired(self, now_ms: int, batch: int) -> int:
        return self.store.part_cache.delete_expired(now_ms, batch)
