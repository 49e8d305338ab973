"""Worker pools: claim jobs of one type, run them as asyncio tasks, heartbeat, finish them.

A job's outcome is one of: success (batched), retry (pending again after a backoff), error
(after its last attempt, with the message and a short traceback in its data), canceled, or
released (on shutdown, without counting the attempt). Nothing a job raises escapes the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from recapd.clock import Clock
from recapd.config import Settings
from recapd.jobs.retry import Backoff
from recapd.model.job import Job, JobStatus
from recapd.store.store import Store

log = logging.getLogger(__name__)
# One line per finished job (key=value), when INFO is enabled for it: `recapd serve` turns it on.
job_log = logging.getLogger("recapd.jobs")

TRACEBACK_LIMIT = 2000  # characters of traceback kept in a job's data


class JobCanceled(Exception):
    """Raised inside a job by JobContext.check_canceled() when a cancel was requested."""


class _Stop(Enum):
    CANCELED = "canceled"  # an operator asked: the job ends `canceled`
    LOST = "lost"  # the job was recovered or finished elsewhere: write nothing
    SHUTDOWN = "shutdown"  # this node is stopping: release the job to pending


# Progress below 100 % is written at most this often per job.
PROGRESS_INTERVAL_MS = 1_000


@dataclass
class JobContext:
    """What a running job may use: its row, the clock, progress, and cancellation."""

    job: Job
    clock: Clock
    _pool: WorkerPool
    _stop_reason: _Stop | None = None
    _task: asyncio.Task[None] | None = None
    _started: float = 0.0  # loop time at start, only taken when the job log is on
    _progress_at: int = -PROGRESS_INTERVAL_MS  # when progress was last written (clock ms)

    @property
    def cancel_requested(self) -> bool:
        """True once an operator asked to cancel this job."""
        return self._stop_reason is _Stop.CANCELED

    @property
    def last_attempt(self) -> bool:
        """True when a failure now would end the job in `error` (no retry follows)."""
        return self.job.attempt >= self._pool.max_attempts

    def check_canceled(self) -> None:
        """Raise JobCanceled if a cancel was requested (for jobs that poll instead of await)."""
        if self.cancel_requested:
            raise JobCanceled(self.job.id)

    async def set_progress(self, percent: int) -> None:
        """Record progress (0..100); counts as a heartbeat. At most one write a second
        below 100 % (a recap reports each of its channels: a write each was a tenth of a
        herd's store calls); 100 % is always written."""
        now = self.clock.now_ms()
        if percent < 100 and now - self._progress_at < PROGRESS_INTERVAL_MS:
            return
        self._progress_at = now
        await asyncio.to_thread(self._pool.store.jobs.set_progress, self.job.id, percent, now)


JobHandler = Callable[[JobContext], Awaitable[None]]


@dataclass(frozen=True)
class WorkerSpec:
    """How to run one job type: its handler, concurrency, attempts and timeout.

    None means "the JobSettings default" for concurrency and max_attempts; a timeout of None
    means none.
    """

    job_type: str
    handler: JobHandler
    concurrency: int | None = None
    max_attempts: int | None = None
    timeout_s: float | None = None
    enabled: Callable[[Settings], bool] = field(default=lambda settings: True)


class WorkerPool:
    """Runs the jobs of one type on this node with bounded concurrency."""

    def __init__(
        self,
        spec: WorkerSpec,
        store: Store,
        settings: Settings,
        clock: Clock,
        node_id: str,
        wake: asyncio.Event,
        rng: random.Random | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.clock = clock
        self.node_id = node_id
        self._wake = wake
        self._rng = rng or random.Random()
        self.apply_settings(settings)
        self._running: dict[str, JobContext] = {}
        self._slot_freed = asyncio.Event()
        self._done: list[tuple[str, int]] = []
        self._done_ready = asyncio.Event()
        self._flush_stop = asyncio.Event()
        self._claiming = True
        self._reserved = 0

    def apply_settings(self, settings: Settings) -> None:
        """Take new job settings (concurrency, attempts, intervals, backoff)."""
        js = settings.jobs
        self.settings = settings
        self.concurrency = self.spec.concurrency or js.worker_concurrency
        self.max_attempts = self.spec.max_attempts or js.max_attempts
        self.backoff = Backoff(js.retry_base_seconds, js.retry_max_seconds)
        self.poll_interval_s = js.poll_interval_seconds
        self.heartbeat_interval_s = js.heartbeat_interval_seconds

    @property
    def running_ids(self) -> list[str]:
        """Ids of the jobs running now."""
        return list(self._running)

    # -- claiming -----------------------------------------------------------------------------

    async def claim_once(self, max_batch: int | None = None) -> int:
        """Claim up to the free slots (at most `max_batch`) of ready jobs and start them."""
        free = self.concurrency - len(self._running) - self._reserved
        take = min(free, max_batch) if max_batch else free
        if take <= 0 or not self._claiming:
            return 0
        # Slots are reserved while the claim is in flight, so overlapping claims never start
        # more jobs than the concurrency allows.
        self._reserved += take
        try:
            jobs = await asyncio.to_thread(
                self.store.jobs.claim_batch,
                self.spec.job_type,
                take,
                self.clock.now_ms(),
                self.node_id,
            )
        finally:
            self._reserved -= take
        started = asyncio.get_running_loop().time() if job_log.isEnabledFor(logging.INFO) else 0.0
        running, run, clock = self._running, self._run, self.clock
        for job in jobs:
            ctx = JobContext(job, clock, self, None, None, started)
            # One task per job, so a job that awaits never holds up the others; its name is
            # left to asyncio (naming it would add half again to the cost of the task).
            ctx._task = asyncio.create_task(run(ctx))
            running[job.id] = ctx
        return len(jobs)

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run jobs until `stop`; then stop claiming (see shutdown())."""
        flusher = asyncio.create_task(self._flush_loop(stop))
        beater = asyncio.create_task(self._heartbeat_loop(stop))
        # A big pool claims with two overlapping loops: one waits on the database while the
        # other's batch starts, which keeps short jobs flowing.
        claimers = 2 if self.concurrency >= 8 else 1
        batch = max(1, self.concurrency // claimers)
        try:
            await asyncio.gather(*(self._claim_loop(stop, batch) for _ in range(claimers)))
        finally:
            self._claiming = False
            await _cancel(beater)
            # Not cancelled mid-write: a cancelled to_thread leaves its write running unseen.
            self._flush_stop.set()
            self._done_ready.set()
            await flusher

    async def _claim_loop(self, stop: asyncio.Event, batch: int) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                started = await self.claim_once(batch)
            except Exception:
                log.exception("claiming %s jobs failed; retrying", self.spec.job_type)
                started = 0
            full = len(self._running) + self._reserved >= self.concurrency
            if started and not full:
                continue  # there may be more ready jobs
            if full:
                self._slot_freed.clear()
                await _first([stop.wait(), self._slot_freed.wait()], self.poll_interval_s)
            else:
                await _first([stop.wait(), self._wake.wait()], self.poll_interval_s)

    # -- running one job ----------------------------------------------------------------------

    async def _run(self, ctx: JobContext) -> None:
        job = ctx.job
        outcome, error = "success", ""
        try:
            if self.spec.timeout_s is not None:
                # asyncio.timeout, not wait_for: wait_for runs the handler in a second task.
                async with asyncio.timeout(self.spec.timeout_s):
                    await self.spec.handler(ctx)
            else:
                await self.spec.handler(ctx)
        except asyncio.CancelledError:
            outcome = await self._end_stopped(ctx)
        except JobCanceled:
            outcome = JobStatus.CANCELED
            await self._finish(job, outcome)
        except TimeoutError:
            error = f"timed out after {self.spec.timeout_s} s"
            outcome = await self._fail(job, error, "")
        except (Exception, SystemExit) as exc:  # a job calling sys.exit() must not end the node
            tb = "".join(traceback.format_exception(exc))[-TRACEBACK_LIMIT:]
            error = f"{type(exc).__name__}: {exc}"
            outcome = await self._fail(job, error, tb)
        else:
            self._done.append((job.id, job.attempt))
            self._done_ready.set()
        finally:
            self._running.pop(job.id, None)
            self._slot_freed.set()
        if ctx._started:
            self._log_finished(ctx, outcome, error)

    def _log_finished(self, ctx: JobContext, outcome: str, error: str) -> None:
        job = ctx.job
        ms = (asyncio.get_running_loop().time() - ctx._started) * 1000
        fields = f"job_id={job.id} type={_kv(job.type)} status={outcome} attempt={job.attempt}"
        job_log.info("%s duration_ms=%.1f%s", fields, ms, f" error={_kv(error)}" if error else "")

    async def _end_stopped(self, ctx: JobContext) -> str:
        reason = ctx._stop_reason
        if reason is _Stop.CANCELED:
            await self._finish(ctx.job, JobStatus.CANCELED)
            return JobStatus.CANCELED
        if reason is _Stop.SHUTDOWN:
            # Released, not failed: the attempt does not count against the job.
            await self._finish(
                ctx.job, JobStatus.PENDING, run_at=self.clock.now_ms(), attempt=ctx.job.attempt - 1
            )
            return "released"
        return "lost"  # recovered or finished elsewhere: nothing written

    async def _fail(self, job: Job, message: str, tb: str) -> str:
        """Record a failed attempt; returns "retry" or "error"."""
        data = dict(job.data)
        log.warning("job %s (%s) attempt %d failed: %s", job.id, job.type, job.attempt, message)
        if job.attempt < self.max_attempts:
            delay_ms = int(self.backoff.delay_s(job.attempt, self._rng) * 1000)
            data["last_error"] = message
            data["last_traceback"] = tb
            job.data = data
            await self._finish(job, JobStatus.PENDING, run_at=self.clock.now_ms() + delay_ms)
            return "retry"
        data["error"] = message
        data["traceback"] = tb
        job.data = data
        await self._finish(job, JobStatus.ERROR, progress=-1)
        return JobStatus.ERROR

    async def _finish(
        self,
        job: Job,
        status: JobStatus,
        *,
        run_at: int | None = None,
        attempt: int | None = None,
        progress: int | None = None,
    ) -> None:
        try:
            await asyncio.to_thread(
                self.store.jobs.finish,
                job,
                self.node_id,
                status,
                self.clock.now_ms(),
                run_at=run_at,
                attempt=attempt,
                progress=progress,
            )
        except Exception:
            # The row keeps its heartbeat-less in_progress state; recovery will retry the job.
            log.exception("recording %s for job %s failed", status, job.id)

    # -- batched success and heartbeats ------------------------------------------------------

    async def flush(self) -> None:
        """Write the successes gathered so far in one statement."""
        done, self._done = self._done, []
        if not done:
            return
        try:
            await asyncio.to_thread(
                self.store.jobs.complete_many, done, self.node_id, self.clock.now_ms()
            )
        except Exception:
            log.exception("recording %d successes failed; retrying", len(done))
            self._done.extend(done)
            await asyncio.sleep(0.1)

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        while not self._flush_stop.is_set():
            await self._done_ready.wait()
            self._done_ready.clear()
            await self.flush()

    async def heartbeat_once(self) -> None:
        """Advance the heartbeat of running jobs; stop those canceled or recovered elsewhere."""
        running = [(jid, ctx.job.attempt) for jid, ctx in self._running.items()]
        if not running:
            return
        statuses = await asyncio.to_thread(
            self.store.jobs.heartbeat_status, running, self.node_id, self.clock.now_ms()
        )
        for jid, _ in running:
            ctx = self._running.get(jid)
            if ctx is None or ctx._task is None or ctx._task.done():
                continue
            status = statuses.get(jid)
            if status is None and (jid, ctx.job.attempt) not in self._done:
                ctx._stop_reason = _Stop.LOST
                ctx._task.cancel()
            elif status == JobStatus.CANCEL_REQUESTED.value:
                ctx._stop_reason = _Stop.CANCELED
                ctx._task.cancel()

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            try:
                await self.heartbeat_once()
            except Exception:
                log.exception("heartbeat of %s jobs failed", self.spec.job_type)

    async def shutdown(self, grace_s: float) -> None:
        """Stop claiming, let running jobs finish for `grace_s`, release the rest to pending."""
        self._claiming = False
        tasks = [ctx._task for ctx in self._running.values() if ctx._task]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        for ctx in list(self._running.values()):
            ctx._stop_reason = _Stop.SHUTDOWN
            if ctx._task:
                ctx._task.cancel()
        leftover = [ctx._task for ctx in self._running.values() if ctx._task]
        if leftover:
            await asyncio.wait(leftover, timeout=10)
        await self.flush()


def _kv(text: str) -> str:
    """A value for a key=value log line: JSON-quoted when it has spaces, quotes or `=`."""
    if text and text.isprintable() and not any(c in text for c in ' "=\\'):
        return text
    return json.dumps(text)


async def _first(aws: Sequence[Awaitable[object]], timeout: float) -> None:
    """Wait until the first of `aws` finishes or `timeout` passes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
