"""The recap delivery worker: announces one finished recap (direct message, webhook).

Retries are the job server's: a webhook that is down fails the attempt, and the job runs again
after the type's exponential backoff with jitter, up to `delivery.max_attempts`; after the last
attempt the job ends in `error` with the reason. The recap itself is finished before this job
exists, so nothing here can hold it up. A job that hangs (a receiver that never answers, a chat
server that stalls) ends at the type's timeout and is retried like any failure.
"""

from __future__ import annotations

from typing import Protocol

from recapd.config import Settings
from recapd.jobs.worker import JobContext, WorkerSpec
from recapd.model.job import JobType


class DeliveryApp(Protocol):
    """What the delivery worker needs from the app layer."""

    async def deliver(
        self, recap_id: str, status: str, finish_at: int, key: str, *, last_attempt: bool
    ) -> None:
        """Announce the recap's outcome (`status` at `finish_at`), each part at most once per
        `key`; nothing when the recap finished again since."""
        ...


def job_timeout_s(settings: Settings) -> float:
    """How long one delivery attempt may take: three webhook timeouts (a host with several
    addresses is tried in turn) and the chat server's share (permalinks, the direct message:
    a handful of calls, each with its own timeout)."""
    return 3 * settings.delivery.webhook_timeout_seconds + 5 * settings.mattermost_timeout_seconds


def make_worker(app: DeliveryApp, settings: Settings) -> WorkerSpec:
    """The WorkerSpec of JobType.RECAP_DELIVERY."""

    async def execute(ctx: JobContext) -> None:
        data = ctx.job.data
        try:
            finish_at = int(data.get("finish_at", 0))
        except (TypeError, ValueError):
            finish_at = 0
        await app.deliver(
            str(data.get("recap_id", "")),
            str(data.get("status", "")),
            finish_at,
            ctx.job.dedupe_key or ctx.job.id,
            last_attempt=ctx.last_attempt,
        )

    def enabled(settings: Settings) -> bool:
        return settings.enable_ai_recaps and settings.ai_recaps.enable

    return WorkerSpec(
        JobType.RECAP_DELIVERY,
        execute,
        max_attempts=settings.delivery.max_attempts,
        timeout_s=job_timeout_s(settings),
        enabled=enabled,
    )
