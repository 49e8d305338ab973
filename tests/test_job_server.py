"""The job server on SQLite and PostgreSQL: claim, run, retry, cancel, timeout, heartbeat,
recovery, cleanup, shutdown and wake-ups."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time

import pytest

from recapd.clock import FakeClock
from recapd.jobs.housekeeping import DAY_MS, JobCleanup, WedgedJobRecovery
from recapd.jobs.leader import LeaderElector, StaticLeadership
from recapd.jobs.scheduler import PeriodicScheduler, SchedulerRunner
from recapd.jobs.server import JobServer
from recapd.jobs.worker import JobContext, WorkerPool, WorkerSpec
from recapd.model.app_error import AppError
from recapd.model.job import JobStatus, JobType
from recapd.store.store import Store
from tests.factories import NOW
from tests.jobhelpers import job_settings, wait_until

TEST_TYPE = "test_job"


def make_server(store: Store, clock: FakeClock | None = None, **jobs: object) -> JobServer:
    settings = job_settings(store.db.url, **jobs)
    return JobServer(store, settings, clock=clock, node_id="node-a", leadership=StaticLeadership())


def make_pool(server: JobServer, spec: WorkerSpec) -> WorkerPool:
    server.register_worker(spec)
    return WorkerPool(
        spec,
        server.store,
        server.settings,
        server.clock,
        server.node_id,
        asyncio.Event(),
        rng=random.Random(1),
    )


async def run_claimed(pool: WorkerPool) -> int:
    """Claim ready jobs, wait for them to end, write their outcomes."""
    started = await pool.claim_once()
    while pool.running_ids:
        await asyncio.sleep(0.001)
    await pool.flush()
    return started


def test_unknown_job_type_is_refused(store: Store) -> None:
    server = make_server(store)
    with pytest.raises(AppError) as err:
        server.create_job("no_such_type", {})
    assert err.value.id == "app.job.unknown_type.app_error"
    assert store.jobs.list_page() == []
    job = server.create_job(JobType.RECAP, {"recap_id": "x"})
    assert store.jobs.get(job.id).status == "pending"


def test_create_job_once_tells_whether_it_created(store: Store) -> None:
    server = make_server(store)
    first, created = server.create_job_once(JobType.RECAP, {}, "key-1")
    assert created
    again, created = server.create_job_once(JobType.RECAP, {}, "key-1")
    assert not created and again.id == first.id


def test_jobs_run_to_success_in_batches(store: Store) -> None:
    clock = FakeClock(NOW)
    server = make_server(store, clock)
    seen: list[str] = []

    async def handler(ctx: JobContext) -> None:
        seen.append(ctx.job.data["n"])

    pool = make_pool(server, WorkerSpec(TEST_TYPE, handler, concurrency=10))
    for n in range(25):
        server.create_job(TEST_TYPE, {"n": str(n)})

    async def main() -> None:
        while await run_claimed(pool):
            pass

    asyncio.run(main())
    assert sorted(seen, key=int) == [str(n) for n in range(25)]
    jobs = store.jobs.list_page(type=TEST_TYPE, per_page=100)
    assert {j.status for j in jobs} == {"success"} and {j.progress for j in jobs} == {100}


def test_failure_retries_with_backoff_then_errors_with_traceback(store: Store) -> None:
    clock = FakeClock(NOW)
    server = make_server(store, clock, retry_base_seconds=10, retry_max_seconds=40)
    calls = 0

    async def handler(ctx: JobContext) -> None:
        nonlocal calls
        calls += 1
        raise ValueError(f"bad input {calls}")

    pool = make_pool(server, WorkerSpec(TEST_TYPE, handler, max_attempts=3))
    job = server.create_job(TEST_TYPE, {"keep": "me"})

    async def main() -> None:
        assert await run_claimed(pool) == 1
        got = store.jobs.get(job.id)
        assert got.status == "pending" and got.attempt == 1
        assert got.data["last_error"] == "ValueError: bad input 1"
        assert "Traceback" in got.data["last_traceback"]
        # Backoff: base 10 s with equal jitter puts the retry 5..10 s out, not now.
        assert NOW + 5_000 <= got.run_at <= NOW + 10_000
        assert await run_claimed(pool) == 0
        clock.set(got.run_at)
        assert await run_claimed(pool) == 1
        got = store.jobs.get(job.id)
        assert (
            got.attempt == 2 and NOW + 10_000 <= got.run_at - clock.now_ms() + NOW <= NOW + 20_000
        )
        clock.set(got.run_at)
        assert await run_claimed(pool) == 1

    asyncio.run(main())
    got = store.jobs.get(job.id)
    assert (got.status, got.attempt, got.progress, calls) == ("error", 3, -1, 3)
    assert got.data["error"] == "ValueError: bad input 3"
    assert "raise ValueError" in got.data["traceback"]
    assert got.data["keep"] == "me"


def test_each_finished_job_logs_one_line(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(NOW)
    server = make_server(store, clock)

    async def handler(ctx: JobContext) -> None:
        if ctx.job.data["fail"]:
            raise ValueError("bad = input")

    pool = make_pool(server, WorkerSpec(TEST_TYPE, handler, max_attempts=2))
    ok = server.create_job(TEST_TYPE, {"fail": False})
    bad = server.create_job(TEST_TYPE, {"fail": True})
    caplog.set_level(logging.INFO, logger="recapd.jobs")
    asyncio.run(run_claimed(pool))
    lines = sorted(r.getMessage() for r in caplog.records if r.name == "recapd.jobs")
    assert len(lines) == 2
    by_id = {line.split()[0]: line for line in lines}
    assert by_id[f"job_id={ok.id}"].startswith(
        f"job_id={ok.id} type={TEST_TYPE} status=success attempt=1 duration_ms="
    )
    assert "error=" not in by_id[f"job_id={ok.id}"]
    assert by_id[f"job_id={bad.id}"].startswith(f"job_id={bad.id} type={TEST_TYPE} status=retry ")
    assert by_id[f"job_id={bad.id}"].endswith(' error="ValueError: bad = input"')
    # With the job log off (the default), the last attempt ends `error` and logs nothing.
    caplog.clear()
    caplog.set_level(logging.WARNING, logger="recapd.jobs")
    clock.advance(60_000)
    asyncio.run(run_claimed(pool))
    assert store.jobs.get(bad.id).status == "error"
    assert [r for r in caplog.records if r.name == "recapd.jobs"] == []


def test_a_job_calling_exit_does_not_end_the_process(store: Store) -> None:
    server = make_server(store, FakeClock(NOW))

    async def handler(ctx: JobContext) -> None:
        raise SystemExit(3)

    pool = make_pool(server, WorkerSpec(TEST_TYPE, handler, max_attempts=1))
    job = server.create_job(TEST_TYPE, {})
    asyncio.run(run_claimed(pool))
    assert store.jobs.get(job.id).status == "error"


def test_timeout_counts_as_a_failed_attempt(store: Store) -> None:
    server = make_server(store, FakeClock(NOW))

    async def handler(ctx: JobContext) -> None:
        await asyncio.sleep(30)

    pool = make_pool(server, WorkerSpec(TEST_TYPE, handler, max_attempts=1, timeout_s=0.05))
    job = server.create_job(TEST_TYPE, {})
    asyncio.run(run_claimed(pool))
    got = store.jobs.get(job.id)
    assert got.status == "error" and "timed out" in got.data["error"]


def test_cancel_pending_and_running(store: Store) -> None:
    clock = FakeClock(NOW)
    server = make_server(store, clock)

    async def handler(ctx: JobContext) -> None:
        await asyncio.sleep(30)

    pool = make_pool(server, WorkerSpec(TEST_TYPE, handler, concurrency=1))
    waiting = server.create_job(TEST_TYPE, {}, run_at=NOW + 60_000)
    running = server.create_job(TEST_TYPE, {})

    async def main() -> None:
        assert await pool.claim_once() == 1
        assert server.cancel_job(waiting.id).status == "canceled"
        assert server.cancel_job(running.id).status == "cancel_requested"
        clock.advance(1000)
        await pool.heartbeat_once()
        await wait_until(lambda: not pool.running_ids, timeout=5)

    asyncio.run(main())
    assert store.jobs.get(running.id).status == "canceled"
    assert store.jobs.get(waiting.id).status == "canceled"


def test_cooperative_cancel_check(store: Store) -> None:
    clock = FakeClock(NOW)
    server = make_server(store, clock)

    async def handler(ctx: JobContext) -> None:
        for _ in range(10_000):
            ctx.check_canceled()
            await asyncio.sleep(0.001)

    pool = make_pool(server, WorkerSpec(TEST_TYPE, handler))
    job = server.create_job(TEST_TYPE, {})

    async def main() -> None:
        await pool.claim_once()
        server.cancel_job(job.id)
        await pool.heartbeat_once()
        await wait_until(lambda: not pool.running_ids, timeout=5)

    asyncio.run(main())
    assert store.jobs.get(job.id).status == "canceled"


def test_progress_is_written_at_most_once_a_second_but_always_at_100(store: Store) -> None:
    clock = FakeClock(NOW)
    server = make_server(store, clock)
    release = asyncio.Event()
    seen: list[int] = []

    async def handler(ctx: JobContext) -> None:
        for percent in (10, 20, 30):
            await ctx.set_progress(percent)
            seen.append(store.jobs.get(ctx.job.id).progress)
        clock.advance(1_000)
        await ctx.set_progress(40)
        seen.append(store.jobs.get(ctx.job.id).progress)
        await ctx.set_progress(100)
        seen.append(store.jobs.get(ctx.job.id).progress)
        await release.wait()

    pool = make_pool(server, WorkerSpec(TEST_TYPE, handler))
    server.create_job(TEST_TYPE, {})

    async def main() -> None:
        await pool.claim_once()
        await wait_until(lambda: len(seen) == 5)
        release.set()
        await wait_until(lambda: not pool.running_ids)
        await pool.flush()

    asyncio.run(main())
    assert seen == [10, 10, 10, 40, 100]


def test_heartbeat_and_progress_advance_last_activity(store: Store) -> None:
    clock = FakeClock(NOW)
    server = make_server(store, clock)
    release = asyncio.Event()

    async def handler(ctx: JobContext) -> None:
        await ctx.set_progress(40)
        await release.wait()

    pool = make_pool(server, WorkerSpec(TEST_TYPE, handler))
    job = server.create_job(TEST_TYPE, {})

    async def main() -> None:
        await pool.claim_once()
        await wait_until(lambda: store.jobs.get(job.id).progress == 40)
        clock.advance(5_000)
        await pool.heartbeat_once()
        assert store.jobs.get(job.id).last_activity_at == NOW + 5_000
        release.set()
        await wait_until(lambda: not pool.running_ids)
        await pool.flush()

    asyncio.run(main())
    assert store.jobs.get(job.id).status == "success"


def test_a_job_recovered_elsewhere_is_stopped_and_not_overwritten(store: Store) -> None:
    clock = FakeClock(NOW)
    server = make_server(store, clock)

    async def handler(ctx: JobContext) -> None:
        await asyncio.sleep(30)

    pool = make_pool(server, WorkerSpec(TEST_TYPE, handler))
    job = server.create_job(TEST_TYPE, {})

    async def main() -> None:
        await pool.claim_once()
        # Another node's recovery decided this run was dead and re-queued the job.
        clock.advance(10_000)
        assert store.jobs.recover_wedged(NOW + 1, clock.now_ms(), lambda t: 5) == (1, 0)
        await pool.heartbeat_once()
        await wait_until(lambda: not pool.running_ids)

    asyncio.run(main())
    got = store.jobs.get(job.id)
    assert got.status == "pending" and got.attempt == 1


def test_wedged_jobs_requeued_then_errored_after_last_attempt(store: Store) -> None:
    clock = FakeClock(NOW)
    server = make_server(store, clock, wedged_job_timeout_seconds=60, max_attempts=2)
    job = server.create_job(JobType.RECAP, {})
    canceling = server.create_job(JobType.RECAP, {})
    store.jobs.claim(job.id, NOW, "dead-node")
    store.jobs.claim(canceling.id, NOW, "dead-node")
    server.cancel_job(canceling.id)
    runner = SchedulerRunner(
        [WedgedJobRecovery(store, server.max_attempts)],
        server,
        StaticLeadership(),
        server.settings,
        clock,
    )

    async def main() -> None:
        clock.advance(30_000)
        await runner.tick()
        assert store.jobs.get(job.id).status == "in_progress"  # not wedged yet
        clock.advance(31_000)
        runner.wake_at("wedged_job_recovery", clock.now_ms())
        await runner.tick()
        got = store.jobs.get(job.id)
        assert (got.status, got.attempt, got.node_id) == ("pending", 1, "")
        assert "wedged" in got.data["last_error"]
        assert store.jobs.get(canceling.id).status == "canceled"
        # Second attempt also dies: no attempts left, so it ends in error.
        store.jobs.claim(job.id, clock.now_ms(), "dead-again")
        clock.advance(61_000)
        runner.wake_at("wedged_job_recovery", clock.now_ms())
        await runner.tick()

    asyncio.run(main())
    got = store.jobs.get(job.id)
    assert got.status == "error" and "wedged after 2 attempts" in got.data["error"]


def test_cleanup_deletes_old_finished_jobs_in_batches(store: Store) -> None:
    clock = FakeClock(NOW)
    server = make_server(store, clock, cleanup_jobs_threshold_days=1, cleanup_batch_size=2)
    old = [server.create_job(JobType.RECAP, {}) for _ in range(5)]
    for j in old:
        store.jobs.claim(j.id, NOW)
        store.jobs.update_status(j.id, JobStatus.SUCCESS, [JobStatus.IN_PROGRESS], NOW)
    live = server.create_job(JobType.RECAP, {})
    clock.advance(DAY_MS + 1)
    recent = server.create_job(JobType.RECAP, {})
    store.jobs.claim(recent.id, clock.now_ms())
    store.jobs.update_status(recent.id, JobStatus.SUCCESS, [JobStatus.IN_PROGRESS], clock.now_ms())
    runner = SchedulerRunner(
        [JobCleanup(store)], server, StaticLeadership(), server.settings, clock
    )
    asyncio.run(runner.tick())
    left = {j.id for j in store.jobs.list_page(per_page=100)}
    assert left == {live.id, recent.id}


def test_cleanup_disabled_by_default(store: Store) -> None:
    server = make_server(store)
    assert not JobCleanup(store).enabled(server.settings)


def test_periodic_scheduler_keeps_one_live_job_and_only_on_the_leader(store: Store) -> None:
    clock = FakeClock(NOW)
    server = make_server(store, clock)

    class Follower:
        lease_name = "leader"
        is_leader = False
        term = 0

    periodic = PeriodicScheduler(JobType.RECAP, period_s=60)
    follower = SchedulerRunner([periodic], server, Follower(), server.settings, clock)
    leader = SchedulerRunner([periodic], server, StaticLeadership(), server.settings, clock)

    async def main() -> None:
        await follower.tick()
        assert store.jobs.list_page() == []
        delay = await leader.tick()
        assert delay == 60.0
        clock.advance(60_000)
        await leader.tick()  # the first job is still pending: no second one

    asyncio.run(main())
    assert len(store.jobs.list_page()) == 1


def test_scheduler_settings_change_and_wake_at(store: Store) -> None:
    clock = FakeClock(NOW)
    server = make_server(store, clock)
    periodic = PeriodicScheduler(JobType.RECAP, period_s=3600)
    runner = SchedulerRunner([periodic], server, StaticLeadership(), server.settings, clock)

    async def main() -> None:
        await runner.tick()
        assert runner.next_times[JobType.RECAP] == NOW + 3_600_000
        runner.wake_at(JobType.RECAP, NOW + 5)
        assert runner.next_times[JobType.RECAP] == NOW + 5
        runner.apply_settings(job_settings(store.db.url, run_scheduler=False))
        clock.advance(10)
        assert await runner.tick() > 0
        assert runner.next_times == {}

    asyncio.run(main())
    assert len(store.jobs.list_page()) == 1


def test_deposed_leader_cannot_enqueue(store: Store) -> None:
    settings = job_settings(store.db.url)
    elector = LeaderElector(store.leases, "node-a", ttl_s=30, renew_interval_s=5)
    server = JobServer(store, settings, node_id="node-a", leadership=elector)
    assert elector.renew_once() and elector.term >= 1
    term = elector.term
    _, created = server.create_job_once(JobType.RECAP, {}, "k1", term=term)
    assert created
    with pytest.raises(AppError) as err:
        server.create_job_once(JobType.RECAP, {}, "k2", term=term + 1)
    assert err.value.id == "app.job.not_leader.app_error"
    assert [j.dedupe_key for j in store.jobs.list_page()] == ["k1"]
    assert store.jobs.list_page()[0].term == term


def test_server_runs_end_to_end_and_shuts_down_releasing_jobs(store: Store) -> None:
    server = make_server(store, shutdown_grace_seconds=0.2)
    done: list[str] = []

    async def quick(ctx: JobContext) -> None:
        done.append(ctx.job.id)

    async def slow(ctx: JobContext) -> None:
        await asyncio.sleep(30)

    server.register_worker(WorkerSpec(TEST_TYPE, quick, concurrency=4))
    server.register_worker(WorkerSpec("slow_job", slow, concurrency=1))
    quick_jobs = [server.create_job(TEST_TYPE, {}) for _ in range(10)]

    async def main() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(server.run(stop))
        slow_job = server.create_job("slow_job", {})
        await wait_until(lambda: len(done) == 10)
        await wait_until(lambda: store.jobs.get(slow_job.id).status == "in_progress")
        stop.set()
        await asyncio.wait_for(runner, 10)
        got = store.jobs.get(slow_job.id)
        # Released on shutdown: pending again, the interrupted attempt not counted.
        assert (got.status, got.attempt, got.node_id) == ("pending", 0, "")

    asyncio.run(main())
    assert {store.jobs.get(j.id).status for j in quick_jobs} == {"success"}


def test_settings_change_stops_and_starts_pools(store: Store) -> None:
    server = make_server(store)
    ran: list[str] = []

    async def handler(ctx: JobContext) -> None:
        ran.append(ctx.job.id)

    server.register_worker(WorkerSpec(TEST_TYPE, handler))

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(server.run(stop))
        await wait_until(lambda: server.pool(TEST_TYPE) is not None)
        server.apply_settings(job_settings(store.db.url, run_jobs=False))
        assert server.pool(TEST_TYPE) is None
        job = server.create_job(TEST_TYPE, {})
        await asyncio.sleep(0.5)
        assert ran == []
        server.apply_settings(job_settings(store.db.url, run_jobs=True))
        await wait_until(lambda: ran == [job.id])
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())


def test_a_job_created_elsewhere_starts_well_before_the_poll_interval(db_url: str) -> None:
    # Poll every 5 s: only a wake-up (LISTEN/NOTIFY on PostgreSQL, the in-process event on
    # SQLite) can start the job within a second.
    store = Store.open(db_url)
    other = Store.open(db_url) if store.db.is_postgres else store
    settings = job_settings(db_url, poll_interval_seconds=5.0)
    server = JobServer(store, settings, node_id="n1", leadership=StaticLeadership())
    creator = JobServer(other, settings, node_id="n2") if other is not store else server
    started: dict[str, float] = {}

    async def handler(ctx: JobContext) -> None:
        started[ctx.job.id] = time.monotonic()

    server.register_worker(WorkerSpec(TEST_TYPE, handler))
    creator.register_worker(WorkerSpec(TEST_TYPE, handler))

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(server.run(stop))
        await asyncio.sleep(0.5)  # let the first poll and LISTEN happen
        delays = []
        for _ in range(3):
            t0 = time.monotonic()
            job = await asyncio.to_thread(creator.create_job, TEST_TYPE, {})
            await wait_until(functools.partial(started.__contains__, job.id), timeout=4)
            delays.append(started[job.id] - t0)
        stop.set()
        await asyncio.wait_for(task, 10)
        assert max(delays) < 1.0, delays

    try:
        asyncio.run(main())
    finally:
        store.close()
        if other is not store:
            other.close()
