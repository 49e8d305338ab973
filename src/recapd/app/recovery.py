"""Recovery of recaps left unfinished: a recap still pending or processing whose job is no
longer live (its last attempt died with its node) is failed with a reason, so no recap shows
"processing" forever (the original's gap 1)."""

from __future__ import annotations

import asyncio
import logging

from recapd.app.delivery import enqueue_delivery
from recapd.app.recaps import recap_job_key
from recapd.config import Settings
from recapd.jobs.scheduled_recap.scheduler import occurrence_key
from recapd.jobs.scheduler import Scheduler, SchedulerContext
from recapd.jobs.server import JobServer
from recapd.model.recap import Recap, RecapStatus
from recapd.store.store import Store

log = logging.getLogger(__name__)

BATCH = 200


def job_key_of(recap: Recap) -> str:
    """The dedupe key of the job that makes this recap."""
    if recap.scheduled_recap_id:
        return occurrence_key(recap.scheduled_recap_id, recap.scheduled_for)
    return recap_job_key(recap.id)


class StuckRecapRecovery(Scheduler):
    """Leader chore: fail recaps left unfinished with no live job to finish them."""

    name = "stuck_recap_recovery"

    def __init__(self, store: Store, jobs: JobServer) -> None:
        self.store = store
        self.jobs = jobs

    def enabled(self, settings: Settings) -> bool:
        return True

    def next_schedule_time(self, settings: Settings, now_ms: int) -> int:
        return now_ms + int(settings.jobs.wedged_job_timeout_seconds * 1000 / 2)

    async def schedule_job(self, ctx: SchedulerContext) -> None:
        # Older than two wedged-job timeouts: a live job would have been recovered by now.
        cutoff = ctx.now_ms - int(ctx.settings.jobs.wedged_job_timeout_seconds * 2000)
        failed = await asyncio.to_thread(self.sweep, cutoff, ctx.now_ms)
        if failed:
            log.warning("failed %d recaps left unfinished without a live job", failed)

    def sweep(self, older_than_ms: int, now_ms: int) -> int:
        """Fail the stuck recaps; return how many."""
        recaps = self.store.recaps
        stuck = [
            r
            for status in (RecapStatus.PENDING, RecapStatus.PROCESSING)
            for r in recaps.list_by_status(status, BATCH, updated_before=older_than_ms)
        ]
        live = self.store.jobs.live_keys([job_key_of(r) for r in stuck])
        failed = 0
        for recap in stuck:
            if job_key_of(recap) in live:
                continue
            with self.store.transaction() as conn:
                if recaps.update_status(
                    recap.id,
                    RecapStatus.FAILED,
                    [RecapStatus(recap.status)],
                    now_ms,
                    error="The recap was interrupted and could not be finished; try again.",
                    conn=conn,
                ):
                    # Told like any failed recap, queued with the failure itself.
                    enqueue_delivery(self.jobs, recap.id, RecapStatus.FAILED, now_ms, conn)
                    failed += 1
        return failed
