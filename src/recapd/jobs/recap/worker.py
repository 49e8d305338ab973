"""The recap worker: runs `process_recap` for the recap named in the job's data.

As in the seed's AppIface, the worker declares the small protocol of app functions it needs;
the wiring (`recapd serve` / `recapd worker`) hands the app in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from recapd.config import Settings
from recapd.jobs.worker import JobContext, WorkerSpec
from recapd.model.job import JobType

ProgressFn = Callable[[int], Awaitable[None]]


class RecapApp(Protocol):
    """What the recap worker needs from the app layer."""

    async def process_recap(self, recap_id: str, progress: ProgressFn) -> None:
        """Make the recap (idempotent: a retry continues where the last attempt stopped)."""
        ...

    async def fail_recap(self, recap_id: str, reason: str) -> None:
        """Record that the recap could not be made, with a reason the user can read."""
        ...


def make_worker(app: RecapApp) -> WorkerSpec:
    """The WorkerSpec of JobType.RECAP."""

    async def execute(ctx: JobContext) -> None:
        recap_id = str(ctx.job.data.get("recap_id", ""))
        try:
            await app.process_recap(recap_id, ctx.set_progress)
        except Exception as exc:
            if ctx.last_attempt:
                await app.fail_recap(recap_id, f"The recap could not be made: {exc}")
            raise

    def enabled(settings: Settings) -> bool:
        return settings.enable_ai_recaps and settings.ai_recaps.enable

    return WorkerSpec(JobType.RECAP, execute, enabled=enabled)
