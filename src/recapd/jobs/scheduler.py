"""Schedulers: leader-only code that decides when work is due and enqueues it.

As in Mattermost, a scheduler has `enabled(settings)`, `next_schedule_time(now, ...)` and
`schedule_job(...)`; recapd adds `wake_at` so a scheduler can ask to run at an exact time.
"""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from recapd.clock import Clock
from recapd.config import Settings
from recapd.jobs.leader import Leadership
from recapd.model.job import Job

log = logging.getLogger(__name__)

NOT_LEADER_POLL_S = 0.5  # how often a follower looks whether it became the leader


class JobCreator(Protocol):
    """The part of the JobServer a scheduler uses."""

    def create_job(self, job_type: str, data: Mapping[str, Any], *, term: int = 0) -> Job: ...

    def create_job_once(
        self,
        job_type: str,
        data: Mapping[str, Any],
        dedupe_key: str,
        *,
        term: int | None = None,
    ) -> tuple[Job, bool]: ...


@dataclass
class SchedulerContext:
    """What one schedule_job call sees: the time, the leader's term, and the job server."""

    now_ms: int
    term: int
    jobs: JobCreator
    leadership: Leadership
    settings: Settings
    wake_at_ms: int | None = field(default=None)

    @property
    def still_leader(self) -> bool:
        """False once this node lost the lease with which this call started (long drains
        should check it between batches)."""
        return self.leadership.is_leader and self.leadership.term == self.term

    def wake_at(self, at_ms: int) -> None:
        """Ask to be run again no later than `at_ms`."""
        self.wake_at_ms = at_ms if self.wake_at_ms is None else min(self.wake_at_ms, at_ms)


class Scheduler(ABC):
    """Base of every scheduler; `name` identifies it (usually its job type)."""

    name: str

    def enabled(self, settings: Settings) -> bool:
        """Whether this scheduler runs under `settings` (default: when scheduling is on)."""
        return settings.jobs.run_scheduler

    @abstractmethod
    def next_schedule_time(self, settings: Settings, now_ms: int) -> int:
        """When to call schedule_job next, given that it just ran at `now_ms`."""

    @abstractmethod
    async def schedule_job(self, ctx: SchedulerContext) -> None:
        """Do the scheduling work: typically create jobs through ctx.jobs."""


class PeriodicScheduler(Scheduler):
    """Keeps one live job of `job_type` queued every `period_s` (+ up to `jitter_s`)."""

    def __init__(
        self,
        job_type: str,
        period_s: float,
        jitter_s: float = 0.0,
        data: Mapping[str, Any] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = job_type
        self.job_type = job_type
        self.period_s = period_s
        self.jitter_s = jitter_s
        self.data = dict(data or {})
        self._rng = rng or random.Random()

    def next_schedule_time(self, settings: Settings, now_ms: int) -> int:
        jitter = self._rng.uniform(0, self.jitter_s) if self.jitter_s else 0.0
        return now_ms + int((self.period_s + jitter) * 1000)

    async def schedule_job(self, ctx: SchedulerContext) -> None:
        # One live job per periodic type: a slow run is not stacked upon.
        await asyncio.to_thread(
            ctx.jobs.create_job_once,
            self.job_type,
            self.data,
            f"periodic:{self.job_type}",
            term=ctx.term,
        )


class SchedulerRunner:
    """Runs the enabled schedulers on the leader, each at its next time."""

    def __init__(
        self,
        schedulers: Sequence[Scheduler],
        jobs: JobCreator,
        leadership: Leadership,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self.schedulers = list(schedulers)
        self.jobs = jobs
        self.leadership = leadership
        self.settings = settings
        self.clock = clock
        self._next: dict[str, int] = {}
        self._term: int | None = None
        self._wake = asyncio.Event()

    def apply_settings(self, settings: Settings) -> None:
        """Re-evaluate which schedulers are enabled; newly enabled ones run at once."""
        self.settings = settings
        self._wake.set()

    def wake_at(self, name: str, at_ms: int) -> None:
        """Run scheduler `name` no later than `at_ms` (from the event loop's thread)."""
        if name in self._next:
            self._next[name] = min(self._next[name], at_ms)
            self._wake.set()

    def _enabled(self) -> list[Scheduler]:
        if not self.settings.jobs.run_scheduler:
            return []
        return [s for s in self.schedulers if s.enabled(self.settings)]

    async def tick(self) -> float:
        """Run the schedulers that are due; return seconds until the next one is."""
        if not self.leadership.is_leader:
            # Followers keep no timetable: a new leader starts from the database's state.
            self._next.clear()
            self._term = None
            return NOT_LEADER_POLL_S
        now = self.clock.now_ms()
        term = self.leadership.term
        if term != self._term:
            self._term = term
            self._next = {}
        enabled = self._enabled()
        names = {s.name for s in enabled}
        self._next = {n: at for n, at in self._next.items() if n in names}
        for s in enabled:
            self._next.setdefault(s.name, now)  # newly leading or newly enabled: run now
        for s in enabled:
            if self._next[s.name] > now:
                continue
            ctx = SchedulerContext(
                now_ms=now,
                term=term,
                jobs=self.jobs,
                leadership=self.leadership,
                settings=self.settings,
            )
            try:
                await s.schedule_job(ctx)
            except Exception:
                log.exception("scheduler %s failed; it runs again at its next time", s.name)
            nxt = s.next_schedule_time(self.settings, self.clock.now_ms())
            if ctx.wake_at_ms is not None:
                nxt = min(nxt, ctx.wake_at_ms)
            self._next[s.name] = nxt
        if not self._next:
            return NOT_LEADER_POLL_S
        return max(0.0, (min(self._next.values()) - self.clock.now_ms()) / 1000)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop`, sleeping until the next due time, a wake-up, or leadership."""
        while not stop.is_set():
            self._wake.clear()
            delay = await self.tick()
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(
                    waits,
                    timeout=min(delay, NOT_LEADER_POLL_S * 2),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for w in waits:
                    w.cancel()

    @property
    def next_times(self) -> dict[str, int]:
        """Next run time of each scheduler (ms), as this leader sees it."""
        return dict(self._next)
