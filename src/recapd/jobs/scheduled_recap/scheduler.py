"""The scheduled-recap scheduler: finds due schedules and enqueues one job per occurrence.

Runs on the leader only. It drains ALL due schedules in keyset batches (the original takes 100 a
minute); per batch, in one transaction, it advances each schedule's next_run_at by
compare-and-set and enqueues one job per occurrence under the dedupe key
`scheduled_recap_id:scheduled_for`, fenced on the leader's term. A crash loses nothing (the
transaction rolls back whole); a second leader finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from recapd.config import Settings
from recapd.jobs.scheduler import Scheduler, SchedulerContext
from recapd.metrics import SCHEDULE_DUE_BACKLOG, SCHEDULE_OUTCOMES
from recapd.model.job import JobType
from recapd.model.recap import Recap, RecapStatus, SkipReason, outcome_kind, skipped_outcome
from recapd.model.scheduled_recap import ScheduledRecap
from recapd.store.due_drain import (
    DrainKey,
    GroupPlan,
    IdRange,
    advance_and_enqueue,
    due_groups,
    lanes,
)
from recapd.store.store import Store

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
# Rows per set-based statement: the database does the work, so batches can be large.
GROUP_BATCH_SIZE = 25_000
# PostgreSQL drains disjoint id ranges on this many connections at once: one backend runs one
# statement on one core, and the writes of different lanes touch different rows.
DRAIN_LANES = 2
# The outcomes metric's label for a missed record.
MISSED_OUTCOME = outcome_kind(RecapStatus.SKIPPED, SkipReason.MISSED)
# A schedule down for longer than this many occurrences is summed up, not walked through.
MAX_MISSED_WALK = 500


class JobEnqueuer(Protocol):
    """The JobServer methods the scheduler uses."""

    def check_fence(self, conn: Connection, term: int | None) -> None: ...

    def create_jobs_once(
        self,
        job_type: str,
        items: Sequence[tuple[Mapping[str, Any], str]],
        *,
        term: int | None = None,
        conn: Connection | None = None,
    ) -> int: ...

    def notify(self, job_type: str) -> None: ...


def occurrence_key(scheduled_recap_id: str, scheduled_for: int) -> str:
    """The dedupe key of one occurrence (also the recap's unique key)."""
    return f"{scheduled_recap_id}:{scheduled_for}"


@dataclass(frozen=True)
class Plan:
    """What to do with one due schedule: run one occurrence, record the missed ones, and the
    next time it falls due."""

    run: int | None
    missed: list[int]
    missed_count: int
    next_run_at: int


def plan_occurrences(sr: ScheduledRecap, now_ms: int, grace_ms: int) -> Plan:
    """The due occurrences of `sr` at `now_ms`: the latest runs if it is within the misfire
    grace; every other one (the rest of an outage) is missed."""
    due: list[int] = []
    t = sr.next_run_at
    while t <= now_ms and len(due) < MAX_MISSED_WALK:
        due.append(t)
        t = sr.compute_next_run_at(t)
    count = len(due)
    if t <= now_ms:  # a very long outage: count the rest without listing them
        t = sr.compute_next_run_at(now_ms)
        count = MAX_MISSED_WALK + 1
    latest = due[-1]
    if now_ms - latest <= grace_ms:
        return Plan(run=latest, missed=due[:-1], missed_count=count - 1, next_run_at=t)
    return Plan(run=None, missed=due, missed_count=count, next_run_at=t)


@dataclass
class DrainReport:
    """What one drain did."""

    schedules: int = 0
    grouped: int = 0  # of `schedules`, those the set-based pass moved
    enqueued: int = 0
    missed_records: int = 0
    batches: int = 0
    skipped_by_cas: int = 0


class ScheduledRecapScheduler(Scheduler):
    """Polls every `scheduler_poll_interval` (1 min) and also wakes at the earliest
    next_run_at, so a recap starts within a second of its time."""

    name = JobType.SCHEDULED_RECAP

    def __init__(
        self,
        store: Store,
        jobs: JobEnqueuer,
        *,
        batch_size: int = BATCH_SIZE,
        group_batch_size: int = GROUP_BATCH_SIZE,
        drain_lanes: int = DRAIN_LANES,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.batch_size = batch_size
        self.group_batch_size = group_batch_size
        # SQLite has one writer at a time: lanes would only queue behind each other.
        self.drain_lanes = drain_lanes if store.db.is_postgres else 1

    def enabled(self, settings: Settings) -> bool:
        return (
            settings.jobs.run_scheduler and settings.enable_ai_recaps and settings.ai_recaps.enable
        )

    def next_schedule_time(self, settings: Settings, now_ms: int) -> int:
        return now_ms + int(settings.jobs.scheduler_poll_interval_seconds * 1000)

    async def schedule_job(self, ctx: SchedulerContext) -> None:
        backlog = await asyncio.to_thread(self.store.scheduled_recaps.count_due, ctx.now_ms)
        SCHEDULE_DUE_BACKLOG.set(backlog)
        report = await asyncio.to_thread(
            self.drain, ctx.now_ms, ctx.term, ctx.settings, lambda: ctx.still_leader
        )
        if report.enqueued or report.missed_records:
            log.info(
                "scheduled recaps: %d occurrences enqueued, %d missed records, %d batches",
                report.enqueued,
                report.missed_records,
                report.batches,
            )
        earliest = await asyncio.to_thread(self.store.scheduled_recaps.earliest_next_run_at)
        if earliest is not None:
            ctx.wake_at(earliest)

    def drain(
        self,
        now_ms: int,
        term: int | None,
        settings: Settings,
        still_leader: Callable[[], bool] = lambda: True,
    ) -> DrainReport:
        """Enqueue every occurrence due at `now_ms`, batch by batch, while still leading."""
        grace_ms = settings.ai_recaps.misfire_grace_seconds * 1000
        report = DrainReport()
        self._drain_groups(now_ms, term, grace_ms, still_leader, report)
        # What is left: schedules with missed occurrences (an outage), and any whose
        # next_run_at changed under the set-based pass. They go row by row.
        cursor: tuple[int, str] | None = None
        while still_leader():
            recorded = report.missed_records
            with self.store.transaction() as conn:
                due = self.store.scheduled_recaps.get_due_before(
                    now_ms, self.batch_size, cursor, conn=conn
                )
                if not due:
                    break
                cursor = (due[-1].next_run_at, due[-1].id)
                self._enqueue_batch(due, now_ms, grace_ms, term, conn, report)
            # Counted once committed; the other outcomes are counted where they are made.
            SCHEDULE_OUTCOMES.labels(MISSED_OUTCOME).inc(report.missed_records - recorded)
            report.batches += 1
            if len(due) < self.batch_size:
                break
        return report

    def _drain_groups(
        self,
        now_ms: int,
        term: int | None,
        grace_ms: int,
        still_leader: Callable[[], bool],
        report: DrainReport,
    ) -> None:
        """The common case set-based: plan once per group of identical schedules, then let the
        database advance and enqueue the rows, a batch per transaction."""
        with self.store.transaction() as conn:
            groups = due_groups(self.store.db, now_ms, conn=conn)
        plans = []
        for (days, time_of_day, zone, next_run_at), _count in groups:
            probe = ScheduledRecap(
                days_of_week=days, time_of_day=time_of_day, timezone=zone, next_run_at=next_run_at
            )
            plan = plan_occurrences(probe, now_ms, grace_ms)
            if plan.run is not None and not plan.missed:
                plans.append(
                    GroupPlan(days, time_of_day, zone, next_run_at, plan.next_run_at, plan.run)
                )
        if not plans:
            return
        ranges = lanes(self.drain_lanes)
        if len(ranges) == 1:
            self._drain_lane(plans, ranges[0], now_ms, term, still_leader, report)
            return
        reports = [DrainReport() for _ in ranges]
        with ThreadPoolExecutor(len(ranges), thread_name_prefix="drain-lane") as pool:
            futures = [
                pool.submit(self._drain_lane, plans, lane, now_ms, term, still_leader, r)
                for lane, r in zip(ranges, reports, strict=True)
            ]
            for f in futures:
                f.result()  # a lane's error (lost leadership) is the drain's error
        for r in reports:
            report.batches += r.batches
            report.schedules += r.schedules
            report.grouped += r.grouped
            report.enqueued += r.enqueued

    def _drain_lane(
        self,
        plans: Sequence[GroupPlan],
        lane: IdRange,
        now_ms: int,
        term: int | None,
        still_leader: Callable[[], bool],
        report: DrainReport,
    ) -> None:
        """Advance and enqueue the planned groups' schedules whose ids fall in `lane`, one
        fenced transaction per batch."""
        after: DrainKey | None = None
        while still_leader():
            with self.store.transaction() as conn:
                self.jobs.check_fence(conn, term)
                done = advance_and_enqueue(
                    self.store.db,
                    plans,
                    JobType.SCHEDULED_RECAP,
                    now_ms,
                    term or 0,
                    self.group_batch_size,
                    conn=conn,
                    lane=lane,
                    after=after,
                )
            report.batches += 1
            report.schedules += done.moved
            report.grouped += done.moved
            report.enqueued += done.created
            if done.created:
                self.jobs.notify(JobType.SCHEDULED_RECAP)
            if done.picked < self.group_batch_size:
                break
            after = done.last

    def _enqueue_batch(
        self,
        due: list[ScheduledRecap],
        now_ms: int,
        grace_ms: int,
        term: int | None,
        conn: Connection,
        report: DrainReport,
    ) -> None:
        plans = {sr.id: plan_occurrences(sr, now_ms, grace_ms) for sr in due}
        moved = self.store.scheduled_recaps.advance(
            [(sr.id, sr.next_run_at, plans[sr.id].next_run_at) for sr in due], conn=conn
        )
        report.skipped_by_cas += len(due) - len(moved)
        items: list[tuple[Mapping[str, Any], str]] = []
        missed: list[Recap] = []
        for sr in due:
            if sr.id not in moved:
                continue  # someone else advanced it: that scheduler enqueued this occurrence
            plan = plans[sr.id]
            report.schedules += 1
            if plan.run is not None:
                items.append((_job_data(sr, plan.run), occurrence_key(sr.id, plan.run)))
            if plan.missed:
                missed.append(_missed_record(sr, plan, now_ms))
        report.missed_records += self.store.recaps.save_outcomes_once(missed, conn=conn)
        report.enqueued += self.jobs.create_jobs_once(
            JobType.SCHEDULED_RECAP, items, term=term, conn=conn
        )


def _job_data(sr: ScheduledRecap, scheduled_for: int) -> dict[str, Any]:
    return {
        "scheduled_recap_id": sr.id,
        "user_id": sr.user_id,
        "channel_ids": ",".join(sr.channel_ids),
        "agent_id": sr.agent_id,
        "scheduled_for": scheduled_for,
    }


def _missed_record(sr: ScheduledRecap, plan: Plan, now_ms: int) -> Recap:
    """One skipped record for all the occurrences an outage swallowed."""
    first = plan.missed[0]
    why = (
        f"{plan.missed_count} occurrence(s) missed while recapd was not running, "
        f"from {first} to {plan.missed[-1]} (epoch ms)"
    )
    return skipped_outcome(sr, first, SkipReason.MISSED, why, now_ms)
