"""The recap delivery worker: announces one finished recap (direct message, webhook).

Retries are the job server's: a webhook that is down fails the attempt, and the job runs again
after the type's exponential backoff with jitter, up to `delivery.max_attempts`; after the last
attempt the job ends in `error` with the reason. The recap itself is finished before this job
exists, so nothing here can hold it up.
"""

from __future__ import annotations

from typing import Protocol

from recapd.config import Settings
from recapd.jobs.worker import JobContext, WorkerSpec
from recapd.model.job import JobType


class DeliveryApp(Protocol):
    """What the delivery worker needs from the app layer."""

    async def deliver(self, recap_id: str, status: str, key: str, *, last_attempt: bool) -> None:
        """Announce the recap's outcome, each part at most once per `key`."""
        ...


def make_worker(app: DeliveryApp, settings: Settings) -> WorkerSpec:
    """The WorkerSpec of JobType.RECAP_DELIVERY."""

    async def execute(ctx: JobContext) -> None:
        data = ctx.job.data
        await app.deliver(
            str(data.get("recap_id", "")),
            str(data.get("status", "")),
            ctx.job.dedupe_key or ctx.job.id,
            last_attempt=ctx.last_attempt,
        )

    def enabled(settings: Settings) -> bool:
        return settings.enable_ai_recaps and settings.ai_recaps.enable

    return WorkerSpec(
        JobType.RECAP_DELIVERY,
        execute,
        max_attempts=settings.delivery.max_attempts,
        enabled=enabled,
    )
