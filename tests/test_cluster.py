"""Cluster tests on PostgreSQL: real `recapd worker` processes, killed with SIGKILL."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from recapd.config import Settings
from recapd.jobs.leader import StaticLeadership
from recapd.jobs.scheduler import Scheduler, SchedulerContext, SchedulerRunner
from recapd.jobs.server import JobServer
from recapd.model.ids import new_id
from recapd.model.job import Job, JobStatus
from recapd.store.store import Store
from tests.cluster_ext import CLUSTER_JOB, EFFECTS_DDL
from tests.jobhelpers import job_settings
from tests.processes import WorkerProcess

pytestmark = [pytest.mark.cluster, pytest.mark.postgres_only]

LEASE_TTL_S = 2.0  # as tests.processes.FAST_JOBS sets them
RENEW_S = 0.4
EXT = ("tests.cluster_ext:register",)


@pytest.fixture
def cluster_db(pg_url: str) -> Iterator[Store]:
    store = Store.open(pg_url)
    with store.db.transaction() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS cluster_effects")
        conn.exec_driver_sql(EFFECTS_DDL)
    try:
        yield store
    finally:
        with store.db.transaction() as conn:  # leave the session database as migrations made it
            conn.exec_driver_sql("DROP TABLE IF EXISTS cluster_effects")
        store.close()


@dataclass(frozen=True)
class LeaseRow:
    holder: str
    term: int
    acquired_at: int
    expires_at: int
    db_now: int


def _lease(store: Store) -> LeaseRow:
    """The leader lease as the database sees it, with the database's clock."""
    with store.db.engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT holder, term, acquired_at, expires_at, "
                "(extract(epoch from clock_timestamp()) * 1000)::bigint "
                "FROM cluster_leases WHERE name = 'leader'"
            )
        ).first()
    if row is None:
        return LeaseRow("", 0, 0, 0, 0)
    return LeaseRow(row[0], int(row[1]), int(row[2]), int(row[3]), int(row[4]))


def test_three_workers_survive_sigkill_and_every_job_succeeds_once(
    cluster_db: Store, tmp_path: Path
) -> None:
    store = cluster_db
    url = store.db.url
    n_jobs = 2000
    now = int(time.time() * 1000)
    store.jobs.save_many(
        [
            Job(
                id=new_id(),
                type=CLUSTER_JOB,
                create_at=now,
                run_at=now,
                status=JobStatus.PENDING,
                data={"key": f"k{i}"},
            )
            for i in range(n_jobs)
        ]
    )
    rng = random.Random(7)
    nodes = {f"n{i}": WorkerProcess(url, f"n{i}", tmp_path, extensions=EXT) for i in range(3)}
    restarts = 0
    failovers: list[tuple[float, float]] = []
    kills = 0
    deadline = time.monotonic() + 90
    try:
        # Let them start (a Python process takes a second or two here) and elect a leader.
        while _lease(store).holder not in nodes and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        while kills < 5 and time.monotonic() < deadline:
            before = _lease(store)
            leader_alive = before.holder in nodes and before.expires_at > before.db_now
            victim = (
                before.holder if (kills % 2 == 0 and leader_alive) else rng.choice(sorted(nodes))
            )
            nodes.pop(victim).kill()
            killed = _lease(store)  # the dead holder renews no more: its expiry is final
            kills += 1
            t_kill = time.monotonic()
            restarts += 1
            new_id_ = f"r{restarts}"
            nodes[new_id_] = WorkerProcess(url, new_id_, tmp_path, extensions=EXT)
            if victim == killed.holder:
                while time.monotonic() - t_kill < LEASE_TTL_S + 5:
                    current = _lease(store)
                    if current.holder in nodes and current.term > killed.term:
                        # Database times: from the kill, and from the dead lease's expiry.
                        failovers.append(
                            (
                                (current.acquired_at - killed.db_now) / 1000,
                                (current.acquired_at - killed.expires_at) / 1000,
                            )
                        )
                        break
                    time.sleep(0.05)
                else:
                    pytest.fail(f"no new leader within {LEASE_TTL_S + 5} s of killing {victim}")
            time.sleep(rng.uniform(0.8, 1.6))
        while time.monotonic() < deadline:
            counts = store.jobs.count_by_type_and_status()
            if counts.get((CLUSTER_JOB, "success"), 0) == n_jobs:
                break
            time.sleep(0.3)
    finally:
        codes = [n.stop() for n in nodes.values()]
    counts = store.jobs.count_by_type_and_status()
    with store.db.engine.connect() as conn:
        reruns = conn.exec_driver_sql("SELECT count(*) FROM cluster_effects WHERE runs > 1")
        print(
            f"kills={kills} failovers (s after kill, s after lease expiry)={failovers} "
            f"jobs re-run after a kill={reruns.scalar_one()}"
        )
    assert counts == {(CLUSTER_JOB, "success"): n_jobs}, counts
    with store.db.engine.connect() as conn:
        effects = conn.exec_driver_sql("SELECT count(*) FROM cluster_effects").scalar_one()
    assert effects == n_jobs
    assert kills == 5
    assert failovers, "the leader was never killed"
    # The dead leader's lease lapses within its TTL; a live node takes it over at its next
    # renewal attempt (every RENEW_S), with slack for a loaded 2-core machine.
    assert max(after_kill for after_kill, _ in failovers) <= LEASE_TTL_S + RENEW_S + 1.5
    assert max(after_expiry for _, after_expiry in failovers) <= RENEW_S + 1.5
    assert codes == [0] * len(codes), codes  # SIGTERM: clean shutdown


def test_two_nodes_forced_to_lead_cannot_enqueue_the_same_work_twice(pg_url: str) -> None:
    """Split brain: both nodes believe they lead (no lease at all) and schedule the same
    deduplicated occurrences at the same moments; the database keeps one job each."""
    keys = [f"sr{i}:1790000000000" for i in range(300)]

    class Occurrences(Scheduler):
        name = "occurrences"

        def next_schedule_time(self, settings: Settings, now_ms: int) -> int:
            return now_ms + 1000

        async def schedule_job(self, ctx: SchedulerContext) -> None:
            for key in keys:
                await asyncio.to_thread(
                    ctx.jobs.create_job_once, "recap", {"k": key}, key, term=ctx.term
                )

    stores = [Store.open(pg_url), Store.open(pg_url)]
    try:
        servers = [
            JobServer(
                s, job_settings(pg_url), node_id=f"split-{i}", leadership=StaticLeadership(term=7)
            )
            for i, s in enumerate(stores)
        ]
        runners = [
            SchedulerRunner([Occurrences()], srv, srv.leadership, srv.settings, srv.clock)
            for srv in servers
        ]

        async def main() -> None:
            await asyncio.gather(*(r.tick() for r in runners))
            await asyncio.gather(*(r.tick() for r in runners))

        asyncio.run(main())
        jobs = stores[0].jobs.list_page(per_page=1000)
        assert sorted(j.dedupe_key or "" for j in jobs) == sorted(keys)
    finally:
        for s in stores:
            s.close()
