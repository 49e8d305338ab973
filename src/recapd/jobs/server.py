"""JobServer: creates jobs, and on `run()` drives this node's worker pools, the leader election
and, while leading, the schedulers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from recapd.clock import Clock, SystemClock
from recapd.config import Settings
from recapd.jobs.housekeeping import (
    JobCleanup,
    PartCacheCleanup,
    WebSessionCleanup,
    WedgedJobRecovery,
)
from recapd.jobs.leader import Follower, LeaderElector, Leadership, StaticLeadership
from recapd.jobs.scheduler import Scheduler, SchedulerRunner
from recapd.jobs.wakeup import Wakeups
from recapd.jobs.worker import WorkerPool, WorkerSpec
from recapd.model.app_error import AppError
from recapd.model.ids import new_id
from recapd.model.job import ALL_JOB_TYPES, Job, JobStatus
from recapd.store.store import Store

log = logging.getLogger(__name__)


class JobServer:
    """The job system of one node: registration, job creation, and the running loops."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        clock: Clock | None = None,
        node_id: str | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock or SystemClock()
        self.node_id = node_id or settings.effective_node_id()
        self.wakeups = Wakeups()
        self.workers: dict[str, WorkerSpec] = {}
        self.schedulers: list[Scheduler] = []
        self._leadership = leadership
        self._pools: dict[str, WorkerPool] = {}
        self._pool_tasks: dict[str, asyncio.Task[None]] = {}
        self._pool_stops: dict[str, asyncio.Event] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self.runner: SchedulerRunner | None = None
        self._stop: asyncio.Event | None = None

    # -- registration -------------------------------------------------------------------------

    @property
    def job_types(self) -> set[str]:
        """Every job type this server accepts: the built-in list and registered extras."""
        return {str(t) for t in ALL_JOB_TYPES} | set(self.workers)

    def register_worker(self, spec: WorkerSpec) -> None:
        """Run jobs of `spec.job_type` on this node."""
        self.workers[spec.job_type] = spec

    def register_scheduler(self, scheduler: Scheduler) -> None:
        """Run `scheduler` while this node leads."""
        self.schedulers.append(scheduler)

    def max_attempts(self, job_type: str) -> int:
        """How many attempts a job of this type gets."""
        spec = self.workers.get(job_type)
        if spec is not None and spec.max_attempts:
            return spec.max_attempts
        return self.settings.jobs.max_attempts

    @property
    def leadership(self) -> Leadership:
        """The leadership in force: given, elected in the database, or static on SQLite; a
        PostgreSQL node started without schedulers never stands for election."""
        if self._leadership is None:
            if self.store.db.is_sqlite:
                # One node per SQLite file: it leads.
                self._leadership = StaticLeadership(term=1)
            elif not self.settings.jobs.run_scheduler:
                self._leadership = Follower()
            else:
                js = self.settings.jobs
                self._leadership = LeaderElector(
                    self.store.leases,
                    self.node_id,
                    ttl_s=js.lease_ttl_seconds,
                    renew_interval_s=js.lease_renew_interval_seconds,
                )
        return self._leadership

    def set_leadership(self, leadership: Leadership) -> None:
        """Use this leadership instead of the elected one (before run(); tests force two
        leaders at once with it)."""
        self._leadership = leadership

    # -- creating jobs ------------------------------------------------------------------------

    def _new_job(
        self, job_type: str, data: Mapping[str, Any], priority: int, run_at: int | None, term: int
    ) -> Job:
        if job_type not in self.job_types:
            raise AppError(
                "app.job.unknown_type.app_error",
                f"unknown job type {job_type!r}",
                detailed_error=f"known: {', '.join(sorted(self.job_types))}",
                status_code=400,
            )
        now = self.clock.now_ms()
        return Job(
            id=new_id(),
            type=job_type,
            priority=priority,
            create_at=now,
            status=JobStatus.PENDING,
            data=dict(data),
            run_at=now if run_at is None else run_at,
            term=term,
        )

    def create_job(
        self,
        job_type: str,
        data: Mapping[str, Any],
        *,
        priority: int = 0,
        run_at: int | None = None,
        term: int = 0,
        conn: Connection | None = None,
    ) -> Job:
        """Queue a job; it runs as soon as a worker of its type is free (or at `run_at`)."""
        job = self.store.jobs.save(self._new_job(job_type, data, priority, run_at, term), conn=conn)
        self.wakeups.notify(job_type)
        return job

    def create_job_once(
        self,
        job_type: str,
        data: Mapping[str, Any],
        dedupe_key: str,
        *,
        priority: int = 0,
        run_at: int | None = None,
        term: int | None = None,
        conn: Connection | None = None,
    ) -> tuple[Job, bool]:
        """Queue a job unless a live job holds `dedupe_key`; True when this call created it.

        With `term` (a scheduler passes its leader term), the job is created only while that
        term still holds the leader lease: a deposed leader's writes are refused.
        """
        job = self._new_job(job_type, data, priority, run_at, term or 0)
        job.dedupe_key = dedupe_key
        with self.store.db.transaction(conn) as c:
            self.check_fence(c, term)
            saved, created = self.store.jobs.save_once(job, conn=c)
        if created:
            self.wakeups.notify(job_type)
        return saved, created

    def create_jobs_once(
        self,
        job_type: str,
        items: Sequence[tuple[Mapping[str, Any], str]],
        *,
        term: int | None = None,
        conn: Connection | None = None,
    ) -> int:
        """Queue one job per (data, dedupe_key) whose key no live job holds, fenced on `term`
        like create_job_once; return how many were created."""
        new = []
        for data, key in items:
            job = self._new_job(job_type, data, 0, None, term or 0)
            job.dedupe_key = key
            new.append(job)
        with self.store.db.transaction(conn) as c:
            self.check_fence(c, term)
            created = self.store.jobs.save_many_once(new, conn=c)
        if created:
            self.wakeups.notify(job_type)
        return created

    def notify(self, job_type: str) -> None:
        """Wake this node's pool of `job_type` (jobs written outside create_job*)."""
        self.wakeups.notify(job_type)

    def check_fence(self, conn: Connection, term: int | None) -> None:
        """Refuse (AppError 409) unless `term` still holds the leader lease, inside `conn`'s
        transaction; no-op without a term or without an elected leadership."""
        leadership = self.leadership
        if term is None or not isinstance(leadership, LeaderElector):
            return
        if not self.store.leases.check_term(conn, leadership.lease_name, term):
            raise AppError(
                "app.job.not_leader.app_error",
                "this node no longer leads the cluster; the work was not queued",
                detailed_error=f"term={term}",
                status_code=409,
            )

    def cancel_job(self, job_id: str) -> Job:
        """Cancel a pending job at once, or ask a running one to stop."""
        return self.store.jobs.request_cancel(job_id, self.clock.now_ms())

    # -- running ------------------------------------------------------------------------------

    def _should_run(self, spec: WorkerSpec) -> bool:
        return self.settings.jobs.run_jobs and spec.enabled(self.settings)

    def _start_pool(self, spec: WorkerSpec) -> None:
        pool = WorkerPool(
            spec,
            self.store,
            self.settings,
            self.clock,
            self.node_id,
            self.wakeups.event(spec.job_type),
        )
        stop = asyncio.Event()
        self._pools[spec.job_type] = pool
        self._pool_stops[spec.job_type] = stop
        self._pool_tasks[spec.job_type] = asyncio.create_task(
            pool.run(stop), name=f"pool-{spec.job_type}"
        )

    def _stop_pool(self, job_type: str, grace_s: float) -> asyncio.Task[None]:
        # Detach the pool at once so a second settings change cannot stop it twice.
        self._pool_stops.pop(job_type).set()
        task = self._pool_tasks.pop(job_type)
        pool = self._pools.pop(job_type)

        async def drain() -> None:
            await task
            await pool.shutdown(grace_s)

        stopping = asyncio.create_task(drain(), name=f"stop-{job_type}")
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)
        return stopping

    def apply_settings(self, settings: Settings) -> None:
        """Take new settings: pools and schedulers start or stop as they are now enabled."""
        self.settings = settings
        for pool in self._pools.values():
            pool.apply_settings(settings)
        if self.runner is not None:
            self.runner.apply_settings(settings)
        if self._stop is None:
            return  # not running: run() reads the settings when it starts
        for job_type, spec in self.workers.items():
            running = job_type in self._pools
            if self._should_run(spec) and not running:
                self._start_pool(spec)
            elif not self._should_run(spec) and running:
                self._stop_pool(job_type, settings.jobs.shutdown_grace_seconds)

    def wake_scheduler(self, name: str, at_ms: int) -> None:
        """Ask scheduler `name` to run no later than `at_ms` (from any thread; a no-op when
        this node runs no schedulers). Other nodes' leaders pick it up at their next poll."""
        runner, loop = self.runner, self.wakeups.loop
        if runner is None or loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(runner.wake_at, name, at_ms)

    @property
    def running(self) -> bool:
        """True while run() runs in this process."""
        return self._stop is not None

    @property
    def running_types(self) -> list[str]:
        """The job types this node is working on now."""
        return sorted(self._pools)

    def pool(self, job_type: str) -> WorkerPool | None:
        """The running pool of a type, if any."""
        return self._pools.get(job_type)

    async def run(self, stop: asyncio.Event) -> None:
        """Run this node's part of the job system until `stop`, then shut down cleanly:
        stop claiming, let running jobs finish within the grace period, release the rest."""
        self._stop = stop
        self.wakeups.bind(asyncio.get_running_loop())
        background: list[asyncio.Task[None]] = []
        leadership = self.leadership
        if isinstance(leadership, LeaderElector):
            background.append(asyncio.create_task(leadership.run(stop), name="leader"))
        if self.store.db.is_postgres:
            background.append(
                asyncio.create_task(self.wakeups.listen_postgres(self.store.db.url, stop))
            )
        for spec in self.workers.values():
            if self._should_run(spec):
                self._start_pool(spec)
        builtin: list[Scheduler] = [
            WedgedJobRecovery(self.store, self.max_attempts),
            JobCleanup(self.store),
            WebSessionCleanup(self.store),
            PartCacheCleanup(self.store),
        ]
        self.runner = SchedulerRunner(
            builtin + self.schedulers, self, leadership, self.settings, self.clock
        )
        background.append(asyncio.create_task(self.runner.run(stop), name="schedulers"))
        try:
            await stop.wait()
        finally:
            grace = self.settings.jobs.shutdown_grace_seconds
            for job_type in list(self._pools):
                self._stop_pool(job_type, grace)
            await asyncio.gather(*self._stopping, return_exceptions=True)
            for task in background:
                with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                    await asyncio.wait_for(task, timeout=5)
            self._stop = None
