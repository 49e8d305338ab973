"""Scheduled recaps: the seed's scheduler and worker, one outcome per occurrence, time travel
across DST, misfires, failures, and the use cases."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import time
from typing import Any

import pytest
from prometheus_client import REGISTRY

from recapd.app.recovery import StuckRecapRecovery
from recapd.clock import FakeClock
from recapd.jobs.leader import StaticLeadership
from recapd.jobs.scheduled_recap.scheduler import (
    DrainReport,
    ScheduledRecapScheduler,
    plan_occurrences,
)
from recapd.jobs.scheduler import SchedulerContext
from recapd.jobs.worker import WorkerPool
from recapd.model.app_error import AppError
from recapd.model.ids import new_id
from recapd.model.job import ALL_JOB_TYPES, JobStatus, JobType
from recapd.model.recap import Recap, RecapStatus
from recapd.model.scheduled_recap import ScheduledRecap
from recapd.model.tz import load_zone
from recapd.runtime import Runtime
from recapd.store.due_drain import IdRange, lanes
from recapd.store.store import Store
from tests.fake_openai import FakeOpenAI, Reply
from tests.test_recaps_app import runtime_for, team_workspace
from tests.workspace import Workspace, add_posts

HOUR = 3_600_000
DAY = 24 * HOUR


def ms(zone: str, year: int, month: int, day: int, hour: int, minute: int) -> int:
    """Epoch ms of a wall time in `zone`."""
    local = dt.datetime(year, month, day, hour, minute, tzinfo=load_zone(zone))
    return int(local.timestamp() * 1000)


def scheduler_of(rt: Runtime) -> ScheduledRecapScheduler:
    found = [s for s in rt.jobs.schedulers if isinstance(s, ScheduledRecapScheduler)]
    assert len(found) == 1
    return found[0]


def pool_of(rt: Runtime) -> WorkerPool:
    spec = rt.jobs.workers[JobType.SCHEDULED_RECAP]
    return WorkerPool(spec, rt.store, rt.settings, rt.jobs.clock, rt.jobs.node_id, asyncio.Event())


async def run_jobs(pool: WorkerPool) -> None:
    """Run every ready scheduled_recap job to its end (retries included when ready)."""
    while await pool.claim_once():
        while pool.running_ids:
            await asyncio.sleep(0.001)
        await pool.flush()


def outcomes(store: Store, sr_id: str) -> list[Recap]:
    with store.db.engine.connect() as conn:
        ids = [
            r[0]
            for r in conn.exec_driver_sql(
                f"SELECT id FROM recaps WHERE scheduled_recap_id = '{sr_id}' ORDER BY scheduled_for"
            )
        ]
    return [store.recaps.get(i, include_deleted=True) for i in ids]


def create(rt: Runtime, ws: Workspace, user: str = "alice", **fields: Any) -> ScheduledRecap:
    body: dict[str, Any] = {
        "title": "Daily",
        "days_of_week": 127,
        "time_of_day": "09:00",
        "timezone": "America/New_York",
        "time_period": "last_24h",
        "channel_mode": "specific",
        "channel_ids": [ws.channels["dev"].id],
    } | fields
    return asyncio.run(rt.schedules.create(ws.users[user].id, body))


def test_the_seed_job_type_exists() -> None:
    assert JobType.SCHEDULED_RECAP in ALL_JOB_TYPES
    assert JobType.SCHEDULED_RECAP.value == "scheduled_recap"


def test_scheduler_enqueues_each_occurrence_once_and_advances(store: Store) -> None:
    ws = team_workspace(store)
    clock = FakeClock(ms("America/New_York", 2026, 9, 21, 8, 0))
    rt = runtime_for(store, clock)
    sr = create(rt, ws)
    assert sr.next_run_at == ms("America/New_York", 2026, 9, 21, 9, 0)
    sched = scheduler_of(rt)
    assert sched.drain(clock.now_ms(), None, rt.settings).enqueued == 0  # not due yet
    clock.set(sr.next_run_at + 500)
    report = sched.drain(clock.now_ms(), None, rt.settings)
    assert (report.enqueued, report.schedules) == (1, 1)
    assert sched.drain(clock.now_ms(), None, rt.settings).enqueued == 0  # nothing left
    jobs = store.jobs.list_page(type=JobType.SCHEDULED_RECAP)
    assert [j.dedupe_key for j in jobs] == [f"{sr.id}:{sr.next_run_at}"]
    assert jobs[0].data == {
        "scheduled_recap_id": sr.id,
        "user_id": ws.users["alice"].id,
        "channel_ids": ws.channels["dev"].id,
        "agent_id": "extractive",
        "scheduled_for": sr.next_run_at,
    }
    assert store.scheduled_recaps.get(sr.id).next_run_at == sr.next_run_at + DAY


def test_worker_makes_the_recap_marks_executed_and_disables_a_one_shot(store: Store) -> None:
    ws = team_workspace(store)
    add_posts(
        store,
        ws,
        "dev",
        [("bob", "Standup notes: the deploy is done.")],
        ms("America/New_York", 2026, 9, 21, 8, 30),
    )
    clock = FakeClock(ms("America/New_York", 2026, 9, 21, 8, 0))
    rt = runtime_for(store, clock)
    sr = create(rt, ws, is_recurring=False)
    clock.set(sr.next_run_at)
    scheduler_of(rt).drain(clock.now_ms(), None, rt.settings)
    asyncio.run(run_jobs(pool_of(rt)))
    (recap,) = outcomes(store, sr.id)
    assert recap.status == "completed" and recap.scheduled_for == sr.next_run_at
    assert recap.channels and recap.channels[0].highlights
    got = store.scheduled_recaps.get(sr.id)
    assert (got.run_count, got.last_run_at, got.enabled) == (1, clock.now_ms(), False)
    assert got.last_scheduled_for == sr.next_run_at
    assert store.jobs.list_page(type=JobType.SCHEDULED_RECAP)[0].status == "success"


@pytest.mark.parametrize(
    ("zone", "time_of_day"),
    [
        ("America/New_York", "02:30"),
        ("Europe/London", "01:30"),
        ("Australia/Sydney", "02:30"),
        ("Australia/Lord_Howe", "02:15"),
    ],
)
def test_time_travel_across_dst_one_outcome_per_expected_occurrence(
    store: Store, zone: str, time_of_day: str
) -> None:
    ws = team_workspace(store)
    # Three weeks around each zone's 2026 transitions (spring in the north, autumn south).
    start = ms(zone, 2026, 3, 20, 12, 0) if zone.startswith("Au") else ms(zone, 2026, 3, 1, 12, 0)
    if zone == "Europe/London":
        start = ms(zone, 2026, 3, 20, 12, 0)
    end = start + 21 * DAY
    clock = FakeClock(start)
    rt = runtime_for(store, clock, ai_recaps={"max_recaps_per_day": -1})
    sr = create(rt, ws, time_of_day=time_of_day, timezone=zone, days_of_week=127)
    expected = [t for t in sr.next_occurrences(start, 40) if t <= end]
    assert len(expected) == 21
    sched, pool = scheduler_of(rt), pool_of(rt)

    async def travel() -> None:
        while True:
            nxt = store.scheduled_recaps.earliest_next_run_at()
            assert nxt is not None
            if nxt > end:
                break
            clock.set(nxt)
            sched.drain(clock.now_ms(), None, rt.settings)
            await run_jobs(pool)

    asyncio.run(travel())
    got = [r.scheduled_for for r in outcomes(store, sr.id)]
    assert got == expected
    assert {r.status for r in outcomes(store, sr.id)} == {"completed"}
    assert store.scheduled_recaps.get(sr.id).run_count == 21


def test_after_an_outage_one_catch_up_and_one_missed_record(store: Store) -> None:
    ws = team_workspace(store)
    clock = FakeClock(ms("UTC", 2026, 9, 21, 8, 0))
    rt = runtime_for(store, clock, ai_recaps={"misfire_grace_seconds": 7200})
    sr = create(rt, ws, timezone="UTC")
    # Down for five days; back at 10:00, an hour after the latest missed 09:00.
    clock.set(ms("UTC", 2026, 9, 26, 10, 0))
    counted = ("recapd_scheduled_recap_outcomes_total", {"kind": "skipped_missed"})
    before = REGISTRY.get_sample_value(*counted) or 0.0
    report = scheduler_of(rt).drain(clock.now_ms(), None, rt.settings)
    assert (report.enqueued, report.missed_records) == (1, 1)
    assert REGISTRY.get_sample_value(*counted) == before + 1
    # A second leader draining the same moment later records nothing more.
    assert scheduler_of(rt).drain(clock.now_ms(), None, rt.settings).missed_records == 0
    asyncio.run(run_jobs(pool_of(rt)))
    missed, caught_up = outcomes(store, sr.id)
    assert (missed.status, missed.skip_reason) == ("skipped", "missed")
    assert missed.scheduled_for == ms("UTC", 2026, 9, 21, 9, 0)
    assert missed.error.startswith("5 occurrence(s) missed")
    assert caught_up.status == "completed"
    assert caught_up.scheduled_for == ms("UTC", 2026, 9, 26, 9, 0)
    assert store.scheduled_recaps.get(sr.id).next_run_at == ms("UTC", 2026, 9, 27, 9, 0)


def test_an_occurrence_past_the_grace_is_only_recorded_as_missed() -> None:
    sr = ScheduledRecap(
        days_of_week=127,
        time_of_day="09:00",
        timezone="UTC",
        next_run_at=ms("UTC", 2026, 9, 21, 9, 0),
    )
    plan = plan_occurrences(sr, ms("UTC", 2026, 9, 21, 12, 0), grace_ms=HOUR)
    assert (plan.run, plan.missed_count) == (None, 1)
    plan = plan_occurrences(sr, ms("UTC", 2026, 9, 21, 9, 30), grace_ms=HOUR)
    assert (plan.run, plan.missed) == (sr.next_run_at, [])
    years = plan_occurrences(sr, ms("UTC", 2029, 9, 21, 12, 0), grace_ms=HOUR)
    assert years.run is None and years.missed_count > 500
    assert years.next_run_at == ms("UTC", 2029, 9, 22, 9, 0)


def test_deleted_or_paused_while_queued_gives_a_skipped_outcome(store: Store) -> None:
    ws = team_workspace(store)
    clock = FakeClock(ms("UTC", 2026, 9, 21, 8, 0))
    rt = runtime_for(store, clock)
    alice = ws.users["alice"].id
    gone = create(rt, ws, timezone="UTC")
    paused = create(rt, ws, timezone="UTC", title="Paused")
    clock.set(ms("UTC", 2026, 9, 21, 9, 0))
    scheduler_of(rt).drain(clock.now_ms(), None, rt.settings)
    asyncio.run(rt.schedules.delete(alice, gone.id))
    asyncio.run(rt.schedules.pause(alice, paused.id))
    asyncio.run(run_jobs(pool_of(rt)))
    assert [(r.status, r.skip_reason) for r in outcomes(store, gone.id)] == [("skipped", "deleted")]
    assert [(r.status, r.skip_reason) for r in outcomes(store, paused.id)] == [
        ("skipped", "disabled")
    ]
    assert asyncio.run(rt.recaps.list_for_user(alice)) == []  # skipped records are hidden


def test_all_unreads_with_nothing_unread_is_skipped_not_an_error_loop(store: Store) -> None:
    ws = team_workspace(store)
    clock = FakeClock(ms("UTC", 2026, 9, 21, 8, 0))
    rt = runtime_for(store, clock)
    for ch in ("dev", "ops"):  # alice has read everything there is
        store.workspace.set_last_viewed_at(
            ws.channels[ch].id, ws.users["alice"].id, clock.now_ms() + 30 * DAY
        )
    sr = create(rt, ws, timezone="UTC", channel_mode="all_unreads", channel_ids=[])
    clock.set(ms("UTC", 2026, 9, 21, 9, 0))
    scheduler_of(rt).drain(clock.now_ms(), None, rt.settings)
    asyncio.run(run_jobs(pool_of(rt)))
    assert [(r.status, r.skip_reason) for r in outcomes(store, sr.id)] == [
        ("skipped", "no_channels")
    ]
    assert scheduler_of(rt).drain(clock.now_ms(), None, rt.settings).enqueued == 0
    assert store.jobs.list_page()[0].status == "success"


def test_daily_limit_is_counted_in_the_schedules_zone(store: Store) -> None:
    ws = team_workspace(store)
    # 23:30 UTC on the 21st is already the 22nd in Tokyo, where one recap was made today.
    clock = FakeClock(ms("Asia/Tokyo", 2026, 9, 22, 7, 0))
    rt = runtime_for(store, clock, ai_recaps={"max_recaps_per_day": 1})
    alice = ws.users["alice"].id
    asyncio.run(rt.recaps.create(alice, title="manual", channel_ids=[ws.channels["dev"].id]))
    sr = create(rt, ws, timezone="Asia/Tokyo", time_of_day="08:30")
    clock.set(sr.next_run_at)
    scheduler_of(rt).drain(clock.now_ms(), None, rt.settings)
    asyncio.run(run_jobs(pool_of(rt)))
    assert [(r.status, r.skip_reason) for r in outcomes(store, sr.id)] == [
        ("skipped", "daily_limit")
    ]


def test_agent_down_retries_fails_with_reason_then_pauses_after_five(store: Store) -> None:
    ws = team_workspace(store)
    with FakeOpenAI(default=lambda req: Reply.error(500, "model offline")) as server:
        clock = FakeClock(ms("UTC", 2026, 9, 22, 8, 0))  # the posts are a day old
        rt = runtime_for(
            store,
            clock,
            ai_recaps={"max_recaps_per_day": -1},
            jobs={"max_attempts": 2, "retry_base_seconds": 1, "retry_max_seconds": 1},
            agents={
                "llm": {
                    "type": "openai",
                    "model": "m",
                    "base_url": server.base_url,
                    "max_retries": 0,
                }
            },
        )
        sr = create(rt, ws, timezone="UTC", agent_id="llm", time_period="last_week")
        sched, pool = scheduler_of(rt), pool_of(rt)

        async def days(n: int) -> None:
            for _ in range(n):
                nxt = store.scheduled_recaps.get(sr.id).next_run_at
                clock.set(nxt)
                sched.drain(clock.now_ms(), None, rt.settings)
                await run_jobs(pool)  # first attempt fails, retry waits for its backoff
                clock.advance(2_000)
                await run_jobs(pool)

        asyncio.run(days(4))
        got = store.scheduled_recaps.get(sr.id)
        assert got.enabled and got.consecutive_failures == 4
        asyncio.run(days(1))
    results = outcomes(store, sr.id)
    assert [r.status for r in results] == ["failed"] * 5
    assert "AI agent" in results[0].error
    got = store.scheduled_recaps.get(sr.id)
    assert not got.enabled and "5 failed recaps in a row" in got.pause_reason
    jobs = store.jobs.list_page(type=JobType.SCHEDULED_RECAP, per_page=50)
    assert {j.status for j in jobs} == {"success"} and {j.attempt for j in jobs} == {1}


def test_a_job_that_keeps_failing_ends_in_a_failed_recap_with_a_reason(store: Store) -> None:
    ws = team_workspace(store)
    clock = FakeClock(ms("UTC", 2026, 9, 21, 8, 0))
    rt = runtime_for(
        store, clock, jobs={"max_attempts": 2, "retry_base_seconds": 1, "retry_max_seconds": 1}
    )
    sr = create(rt, ws, timezone="UTC")
    clock.set(sr.next_run_at)
    scheduler_of(rt).drain(clock.now_ms(), None, rt.settings)
    # The reader disappears from the workspace: making the recap raises, attempt after attempt.
    with store.db.transaction() as conn:
        conn.exec_driver_sql(f"DELETE FROM users WHERE id = '{ws.users['alice'].id}'")
    pool = pool_of(rt)

    async def main() -> None:
        await run_jobs(pool)
        clock.advance(2_000)
        await run_jobs(pool)

    asyncio.run(main())
    (recap,) = outcomes(store, sr.id)
    assert recap.status == "failed" and "could not be made" in recap.error
    job = store.jobs.list_page(type=JobType.SCHEDULED_RECAP)[0]
    assert job.status == "success" and job.attempt == 2


def test_two_schedulers_draining_at_once_enqueue_each_occurrence_once(store: Store) -> None:
    ws = team_workspace(store)
    clock = FakeClock(ms("UTC", 2026, 9, 21, 8, 0))
    rt = runtime_for(store, clock, ai_recaps={"max_scheduled_recaps": -1})
    made = [create(rt, ws, timezone="UTC", time_of_day=f"09:{i % 60:02d}") for i in range(120)]
    clock.set(ms("UTC", 2026, 9, 21, 10, 0))
    other = Store.open(store.db.url)
    try:
        rt2 = runtime_for(other, clock)
        a, b = scheduler_of(rt), scheduler_of(rt2)
        a.batch_size = b.batch_size = 7

        async def both() -> tuple[DrainReport, DrainReport]:
            return await asyncio.gather(
                asyncio.to_thread(a.drain, clock.now_ms(), None, rt.settings),
                asyncio.to_thread(b.drain, clock.now_ms(), None, rt2.settings),
            )

        reports = asyncio.run(both())
    finally:
        other.close()
    assert sum(r.enqueued for r in reports) == len(made)
    keys = [j.dedupe_key for j in store.jobs.list_page(per_page=500)]
    assert len(keys) == len(set(keys)) == len(made)


def test_drain_lanes_split_every_id_once() -> None:
    ids = [new_id() for _ in range(2_000)] + ["1" * 26, "z" * 26, "h" * 26]
    for count in (1, 2, 3, 4):
        ranges = lanes(count)

        def holders(i: str, ranges: list[IdRange] = ranges) -> int:
            return sum((lo is None or i >= lo) and (hi is None or i < hi) for lo, hi in ranges)

        assert all(holders(i) == 1 for i in ids)
    assert lanes(1) == [(None, None)]


def test_a_drain_in_lanes_and_small_batches_enqueues_each_occurrence_once(store: Store) -> None:
    ws = team_workspace(store)
    clock = FakeClock(ms("UTC", 2026, 9, 21, 8, 0))
    rt = runtime_for(store, clock, ai_recaps={"max_scheduled_recaps": -1})
    made = [create(rt, ws, timezone="UTC", time_of_day=f"09:0{i % 3}") for i in range(90)]
    clock.set(ms("UTC", 2026, 9, 21, 10, 0))
    sched = scheduler_of(rt)
    sched.group_batch_size, sched.drain_lanes = 8, 3
    report = sched.drain(clock.now_ms(), None, rt.settings)
    assert (report.schedules, report.enqueued) == (len(made), len(made))
    keys = [j.dedupe_key or "" for j in store.jobs.list_page(per_page=500)]
    assert sorted(keys) == sorted(f"{sr.id}:{sr.next_run_at}" for sr in made)
    assert all(
        store.scheduled_recaps.get(sr.id).next_run_at == ms("UTC", 2026, 9, 22, 9, i % 3)
        for i, sr in enumerate(made)
    )


def test_a_batch_of_equal_jobs_is_not_claimed_in_schedule_order(store: Store) -> None:
    # Workers claim equal jobs by id: a batch's ids must not line up with its schedules' ids,
    # or the same schedules would wait longest every day.
    ws = team_workspace(store)
    clock = FakeClock(ms("UTC", 2026, 9, 21, 8, 0))
    rt = runtime_for(store, clock, ai_recaps={"max_scheduled_recaps": -1})
    made = [create(rt, ws, timezone="UTC") for _ in range(30)]
    clock.set(ms("UTC", 2026, 9, 21, 9, 1))
    sched = scheduler_of(rt)
    sched.drain_lanes = 1
    assert sched.drain(clock.now_ms(), None, rt.settings).grouped == len(made)
    jobs = sorted(store.jobs.list_page(per_page=100), key=lambda j: j.id)
    order = [j.data["scheduled_recap_id"] for j in jobs]
    assert order not in (sorted(order), sorted(order, reverse=True))


def test_the_set_based_pass_walks_past_due_schedules_it_does_not_plan(store: Store) -> None:
    # Ten schedules down since Sep 18 sort first in the due index; the set-based pass plans only
    # the twenty of Sep 21 (no misses), so its first batches move nothing and it must go on.
    ws = team_workspace(store)
    clock = FakeClock(ms("UTC", 2026, 9, 18, 8, 0))
    rt = runtime_for(store, clock, ai_recaps={"max_scheduled_recaps": -1})
    behind = [create(rt, ws, timezone="UTC", time_of_day="09:30") for _ in range(10)]
    clock.set(ms("UTC", 2026, 9, 21, 8, 0))
    current = [create(rt, ws, timezone="UTC", time_of_day="09:00") for _ in range(20)]
    clock.set(ms("UTC", 2026, 9, 21, 10, 0))
    sched = scheduler_of(rt)
    sched.group_batch_size, sched.batch_size = 4, 3
    report = sched.drain(clock.now_ms(), None, rt.settings)
    assert (report.enqueued, report.missed_records, report.grouped) == (30, 10, 20)
    keys = sorted(j.dedupe_key or "" for j in store.jobs.list_page(per_page=500))
    want = [f"{sr.id}:{ms('UTC', 2026, 9, 21, 9, 30)}" for sr in behind]
    want += [f"{sr.id}:{ms('UTC', 2026, 9, 21, 9, 0)}" for sr in current]
    assert keys == sorted(want)
    assert sched.drain(clock.now_ms(), None, rt.settings).enqueued == 0


@pytest.mark.parametrize("days_behind", [0, 2], ids=["set-based", "row-by-row"])
def test_a_schedule_paused_while_the_drain_waits_for_its_row_is_not_moved(
    store: Store, days_behind: int
) -> None:
    # The drain reads with its snapshot, then waits for a row another transaction holds;
    # when that transaction pauses the schedule, the row stays put. Schedules days behind
    # (an outage) go through the row-by-row pass instead of the set-based one.
    if not store.db.is_postgres:
        pytest.skip("row locks and re-checks of a concurrent update: PostgreSQL only")
    ws = team_workspace(store)
    clock = FakeClock(ms("UTC", 2026, 9, 21 - days_behind, 8, 0))
    rt = runtime_for(store, clock, ai_recaps={"max_scheduled_recaps": -1})
    paused, other = (create(rt, ws, timezone="UTC") for _ in range(2))
    clock.set(ms("UTC", 2026, 9, 21, 9, 1))
    sched = scheduler_of(rt)
    sched.drain_lanes = 1
    # The holder closes (and lets go of the row) before the pool waits for the drain.
    with (
        concurrent.futures.ThreadPoolExecutor(1) as pool,
        store.db.engine.connect() as holder,
    ):
        holder_pid = holder.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        holder.exec_driver_sql(
            "SELECT 1 FROM scheduled_recaps WHERE id = %(id)s FOR UPDATE", {"id": paused.id}
        )
        drained = pool.submit(sched.drain, clock.now_ms(), None, rt.settings)
        with store.db.engine.connect() as watch:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                waiting = watch.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE %(pid)s = ANY(pg_blocking_pids(pid))",
                    {"pid": holder_pid},
                ).scalar_one()
                watch.rollback()  # pg_stat_activity is read once per transaction
                if waiting:
                    break
                time.sleep(0.02)
            assert waiting, "the drain never waited for the held row"
        holder.exec_driver_sql(
            "UPDATE scheduled_recaps SET enabled = false WHERE id = %(id)s", {"id": paused.id}
        )
        holder.commit()
        report = drained.result(timeout=30)
    assert (report.enqueued, report.missed_records) == (1, 1 if days_behind else 0)
    assert [j.dedupe_key for j in store.jobs.list_page(per_page=10)] == [
        f"{other.id}:{ms('UTC', 2026, 9, 21, 9, 0)}"
    ]
    assert store.scheduled_recaps.get(paused.id).next_run_at == paused.next_run_at
    assert outcomes(store, paused.id) == []


def test_use_cases_validation_ownership_limits_and_run_now(store: Store) -> None:
    ws = team_workspace(store)
    clock = FakeClock(ms("UTC", 2026, 9, 21, 8, 0))
    rt = runtime_for(store, clock, ai_recaps={"max_scheduled_recaps": 2})
    alice, bob = ws.users["alice"].id, ws.users["bob"].id

    def error(**fields: Any) -> AppError:
        with pytest.raises(AppError) as err:
            create(rt, ws, **fields)
        return err.value

    assert error(time_of_day="25:00").id == "model.scheduled_recap.is_valid.time_of_day.app_error"
    assert error(timezone="Local").id == "model.scheduled_recap.is_valid.timezone.app_error"
    assert error(days_of_week=0).id == "model.scheduled_recap.is_valid.days_of_week.app_error"
    assert error(channel_ids=[ws.channels["hr"].id]).status_code == 403
    assert error(agent_id="nope").id == "app.agent.unknown.app_error"
    assert error(enabled=False).id == "app.scheduled_recap.create.unknown_field.app_error"
    first = create(rt, ws, timezone="UTC")
    second = create(rt, ws, timezone="UTC")
    assert error(timezone="UTC").id == "app.scheduled_recap.limit_reached.app_error"
    # Someone else's schedule answers exactly like a missing one.
    with pytest.raises(AppError) as err:
        asyncio.run(rt.schedules.get(bob, first.id))
    assert (err.value.id, err.value.status_code) == (
        "store.sql_scheduled_recap.get.not_found.app_error",
        404,
    )
    # Update recomputes the next run; pause then resume re-checks the limit.
    updated = asyncio.run(rt.schedules.update(alice, first.id, {"time_of_day": "18:00"}))
    assert updated.next_run_at == ms("UTC", 2026, 9, 21, 18, 0)
    asyncio.run(rt.schedules.pause(alice, first.id))
    create(rt, ws, timezone="UTC", title="Third")
    with pytest.raises(AppError) as err:
        asyncio.run(rt.schedules.resume(alice, first.id))
    assert err.value.id == "app.scheduled_recap.limit_reached.app_error"
    # Run now: an extra occurrence, the timetable untouched.
    before = store.scheduled_recaps.get(second.id).next_run_at
    job = asyncio.run(rt.schedules.run_now(alice, second.id))
    assert job.data["run_now"] is True and job.data["scheduled_for"] == clock.now_ms()
    asyncio.run(run_jobs(pool_of(rt)))
    assert [r.status for r in outcomes(store, second.id)] == ["completed"]
    got = store.scheduled_recaps.get(second.id)
    assert (got.next_run_at, got.run_count, got.enabled) == (before, 1, True)


def test_last_runs_of_a_schedule_give_each_outcome_latest_first(store: Store) -> None:
    ws = team_workspace(store)
    with FakeOpenAI(default=lambda req: Reply.error(500, "model offline")) as server:
        clock = FakeClock(ms("UTC", 2026, 9, 22, 8, 0))  # the posts are a day old
        rt = runtime_for(
            store,
            clock,
            ai_recaps={"max_recaps_per_day": -1},
            jobs={"max_attempts": 1},
            agents={
                "llm": {
                    "type": "openai",
                    "model": "m",
                    "base_url": server.base_url,
                    "max_retries": 0,
                }
            },
        )
        alice, bob = ws.users["alice"].id, ws.users["bob"].id
        sr = create(rt, ws, timezone="UTC", agent_id="llm", time_period="last_week")
        other = create(rt, ws, timezone="UTC", title="Other")
        sched, pool = scheduler_of(rt), pool_of(rt)

        def day(d: int, before_jobs: Any = None) -> None:
            clock.set(ms("UTC", 2026, 9, d, 9, 0))
            sched.drain(clock.now_ms(), None, rt.settings)
            if before_jobs:
                before_jobs()
            asyncio.run(run_jobs(pool))

        day(22)  # the agent is down: failed with its reason
    asyncio.run(rt.schedules.update(alice, sr.id, {"agent_id": "extractive"}))
    day(23, lambda: asyncio.run(rt.schedules.pause(alice, sr.id)))  # paused while queued
    asyncio.run(rt.schedules.resume(alice, sr.id))
    day(24)
    day(25)
    deleted = outcomes(store, sr.id)[-1]
    asyncio.run(rt.recaps.delete(alice, deleted.id))

    runs = asyncio.run(rt.schedules.last_runs(alice, sr.id))
    assert [r.scheduled_for for r in runs] == [
        ms("UTC", 2026, 9, d, 9, 0) for d in (25, 24, 23, 22)
    ]
    assert [r.status for r in runs] == ["completed", "completed", "skipped", "failed"]
    assert [r.has_recap for r in runs] == [False, True, False, True]  # a failed one has a page
    assert runs[0].recap_id == deleted.id
    assert runs[1].outcome == "completed" and runs[1].reason == ""
    assert runs[1].finished_at == ms("UTC", 2026, 9, 24, 9, 0)
    assert (runs[2].skip_reason, runs[2].outcome) == (
        "disabled",
        "skipped: The schedule is paused.",
    )
    assert runs[3].outcome.startswith("failed: ") and "AI agent" in runs[3].reason
    assert [r.scheduled_for for r in asyncio.run(rt.schedules.last_runs(alice, sr.id, 2))] == [
        ms("UTC", 2026, 9, d, 9, 0) for d in (25, 24)
    ]
    assert len(asyncio.run(rt.schedules.last_runs(alice, other.id))) == 4  # its own runs only
    # Someone else's schedule: the same 404 as a missing one.
    with pytest.raises(AppError) as err:
        asyncio.run(rt.schedules.last_runs(bob, sr.id))
    assert err.value.status_code == 404


def test_a_run_finishing_after_the_next_occurrence_fell_due_does_not_swallow_it(
    store: Store,
) -> None:
    # Run now at 08:59; its job ends at 09:00:30, before the scheduler has drained 09:00.
    ws = team_workspace(store)
    clock = FakeClock(ms("UTC", 2026, 9, 21, 8, 59))
    rt = runtime_for(store, clock)
    alice = ws.users["alice"].id
    sr = create(rt, ws, timezone="UTC")
    asyncio.run(rt.schedules.run_now(alice, sr.id))
    clock.set(ms("UTC", 2026, 9, 21, 9, 0) + 30_000)
    asyncio.run(run_jobs(pool_of(rt)))
    assert store.scheduled_recaps.get(sr.id).next_run_at == sr.next_run_at
    report = scheduler_of(rt).drain(clock.now_ms(), None, rt.settings)
    assert report.enqueued == 1
    asyncio.run(run_jobs(pool_of(rt)))
    due = [r.scheduled_for for r in outcomes(store, sr.id)]
    assert due == [ms("UTC", 2026, 9, 21, 8, 59), ms("UTC", 2026, 9, 21, 9, 0)]
    assert store.scheduled_recaps.get(sr.id).next_run_at == ms("UTC", 2026, 9, 22, 9, 0)


def test_a_recap_left_processing_without_a_live_job_is_failed_with_a_reason(
    store: Store,
) -> None:
    ws = team_workspace(store)
    clock = FakeClock(ms("UTC", 2026, 9, 21, 8, 0))
    rt = runtime_for(store, clock)
    alice = ws.users["alice"].id
    stuck = asyncio.run(rt.recaps.create(alice, title="s", channel_ids=[ws.channels["dev"].id]))
    store.recaps.update_status(
        stuck.id, RecapStatus.PROCESSING, [RecapStatus.PENDING], clock.now_ms()
    )
    alive = asyncio.run(rt.recaps.create(alice, title="a", channel_ids=[ws.channels["ops"].id]))
    store.recaps.update_status(
        alive.id, RecapStatus.PROCESSING, [RecapStatus.PENDING], clock.now_ms()
    )
    # The first recap's job ended in error (its node died on the last attempt).
    job = next(j for j in store.jobs.list_page() if j.data["recap_id"] == stuck.id)
    store.jobs.update_status(job.id, JobStatus.ERROR, [JobStatus.PENDING], clock.now_ms())
    sweeper = StuckRecapRecovery(store, rt.jobs)
    assert sweeper.sweep(clock.now_ms() - 1, clock.now_ms()) == 0  # not old enough yet
    clock.advance(10 * 60_000)
    assert sweeper.sweep(clock.now_ms() - 60_000, clock.now_ms()) == 1
    got = store.recaps.get(stuck.id)
    assert got.status == "failed" and "interrupted" in got.error
    assert store.recaps.get(alive.id).status == "processing"  # its job is still live


def test_metrics_count_outcomes_backlog_and_start_delay(store: Store) -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    ws = team_workspace(store)
    clock = FakeClock(ms("UTC", 2026, 9, 21, 8, 0))
    rt = runtime_for(store, clock)
    before_done = value("recapd_scheduled_recap_outcomes_total", kind="completed")
    before_deleted = value("recapd_scheduled_recap_outcomes_total", kind="skipped_deleted")
    before_count = value("recapd_scheduled_recap_start_delay_seconds_count")
    create(rt, ws, timezone="UTC")
    gone = create(rt, ws, timezone="UTC", title="Gone")
    clock.set(ms("UTC", 2026, 9, 21, 9, 0) + 1500)
    sched = scheduler_of(rt)
    ctx_now = clock.now_ms()
    asyncio.run(sched.schedule_job(_ctx(rt, ctx_now)))
    assert value("recapd_scheduled_recaps_due_backlog") == 2.0
    asyncio.run(rt.schedules.delete(ws.users["alice"].id, gone.id))
    asyncio.run(run_jobs(pool_of(rt)))
    assert value("recapd_scheduled_recap_outcomes_total", kind="completed") == before_done + 1
    assert (
        value("recapd_scheduled_recap_outcomes_total", kind="skipped_deleted") == before_deleted + 1
    )
    assert value("recapd_scheduled_recap_start_delay_seconds_count") == before_count + 1


def _ctx(rt: Runtime, now_ms: int) -> SchedulerContext:
    return SchedulerContext(
        now_ms=now_ms, term=1, jobs=rt.jobs, leadership=StaticLeadership(), settings=rt.settings
    )
