"""The scheduled-recap worker: turns one occurrence into its one outcome.

As in the seed, the worker declares the app function it needs (the seed's AppIface); the
wiring hands the app in. Everything that decides the outcome lives in
`app.run_scheduled_occurrence`: load the schedule (deleted or disabled -> skipped),
create_recap_from_schedule (idempotent per occurrence), make the recap, then mark_executed and
disable a one-shot schedule in one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from recapd.config import Settings
from recapd.jobs.worker import JobContext, WorkerSpec
from recapd.model.job import JobType

ProgressFn = Callable[[int], Awaitable[None]]


class ScheduledRecapApp(Protocol):
    """What the scheduled-recap worker needs from the app layer."""

    async def run_scheduled_occurrence(
        self,
        scheduled_recap_id: str,
        scheduled_for: int,
        *,
        run_now: bool,
        last_attempt: bool,
        progress: ProgressFn,
    ) -> None:
        """Record this occurrence's one outcome (idempotent: a retried job finds it)."""
        ...


def make_worker(app: ScheduledRecapApp) -> WorkerSpec:
    """The WorkerSpec of JobType.SCHEDULED_RECAP."""

    async def execute(ctx: JobContext) -> None:
        data = ctx.job.data
        await app.run_scheduled_occurrence(
            str(data["scheduled_recap_id"]),
            int(data["scheduled_for"]),
            run_now=bool(data.get("run_now", False)),
            last_attempt=ctx.last_attempt,
            progress=ctx.set_progress,
        )

    def enabled(settings: Settings) -> bool:
        return settings.enable_ai_recaps and settings.ai_recaps.enable

    return WorkerSpec(JobType.SCHEDULED_RECAP, execute, enabled=enabled)
