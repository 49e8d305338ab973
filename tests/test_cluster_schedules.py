"""Exactly one outcome per scheduled occurrence, under faults: real `recapd worker` processes on
one PostgreSQL, killed with SIGKILL while 500 schedules fall due and a slow LLM answers."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recapd.model.recap import RecapStatus
from recapd.model.scheduled_recap import ScheduledRecap
from recapd.store.store import Store
from tests.fake_openai import FakeOpenAI, delayed_echo
from tests.processes import WorkerProcess
from tests.workspace import add_posts, make_workspace

pytestmark = [pytest.mark.cluster, pytest.mark.postgres_only]

N_SCHEDULES = 500


def worker(url: str, llm_url: str, node_id: str, log_dir: Path, *ext: str) -> WorkerProcess:
    """A worker with the slow LLM agent and no per-day limits."""
    env = {
        "RECAPD_JOBS__SCHEDULER_POLL_INTERVAL_SECONDS": "2",
        "RECAPD_JOBS__RETRY_BASE_SECONDS": "0.2",
        "RECAPD_JOBS__RETRY_MAX_SECONDS": "1",
        "RECAPD_JOBS__WORKER_CONCURRENCY": "8",
        "RECAPD_AI_RECAPS__MAX_RECAPS_PER_DAY": "-1",
        "RECAPD_AI_RECAPS__MAX_POSTS_PER_DAY": "-1",
        "RECAPD_AGENTS__SLOW__TYPE": "openai",
        "RECAPD_AGENTS__SLOW__MODEL": "m",
        "RECAPD_AGENTS__SLOW__BASE_URL": llm_url,
    }
    return WorkerProcess(url, node_id, log_dir, env=env, extensions=ext)


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    store = Store.open(pg_url)
    try:
        yield store
    finally:
        store.close()


def _schedules_falling_due(store: Store, start_ms: int, spread_ms: int) -> list[str]:
    """500 schedules whose first occurrence falls due within `spread_ms` of `start_ms`."""
    ws = make_workspace(store, ["reader", "writer"], {"general": ["reader", "writer"]})
    add_posts(
        store,
        ws,
        "general",
        [("writer", f"update {i}: the build is green") for i in range(5)],
        start_ms - 3_600_000,
    )
    rng = random.Random(11)
    ids = []
    for i in range(N_SCHEDULES):
        sr = ScheduledRecap(
            user_id=ws.users["reader"].id,
            title=f"s{i}",
            days_of_week=127,
            time_of_day="03:00",
            timezone="UTC",
            time_period="last_24h",
            channel_mode="specific",
            channel_ids=[ws.channels["general"].id],
            agent_id="slow",
        )
        sr.pre_save(start_ms)
        sr.next_run_at = start_ms + rng.randrange(spread_ms)
        store.scheduled_recaps.save(sr)
        ids.append(sr.id)
    return ids


def _settled(store: Store) -> bool:
    with store.db.engine.connect() as conn:
        busy = conn.exec_driver_sql(
            "SELECT (SELECT count(*) FROM jobs WHERE status IN "
            "('pending', 'in_progress', 'cancel_requested')) + "
            "(SELECT count(*) FROM recaps WHERE status IN ('pending', 'processing'))"
        ).scalar_one()
        outcomes = conn.exec_driver_sql(
            "SELECT count(DISTINCT scheduled_recap_id) FROM recaps"
        ).scalar_one()
    return bool(busy == 0 and outcomes == N_SCHEDULES)


def _check_one_outcome_each(store: Store, ids: list[str]) -> dict[str, int]:
    with store.db.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT scheduled_recap_id, scheduled_for, status FROM recaps"
        ).all()
        jobs = conn.exec_driver_sql(
            "SELECT dedupe_key, count(*) FROM jobs GROUP BY dedupe_key HAVING count(*) > 1"
        ).all()
    per_schedule: dict[str, list[tuple[int, str]]] = {}
    for sr_id, scheduled_for, status in rows:
        per_schedule.setdefault(sr_id, []).append((scheduled_for, status))
    assert sorted(per_schedule) == sorted(ids), "a schedule has no outcome"
    for sr_id in ids:
        outs = per_schedule[sr_id]
        assert len(outs) == 1, f"{sr_id}: {outs}"  # exactly one outcome for its occurrence
        assert outs[0][1] not in (RecapStatus.PENDING, RecapStatus.PROCESSING)
    assert jobs == [], "an occurrence was enqueued twice"
    kinds: dict[str, int] = {}
    for _, _, status in rows:
        kinds[status] = kinds.get(status, 0) + 1
    return kinds


def _run(store: Store, tmp_path: Path, *, kills: int, forced_leaders: bool) -> dict[str, int]:
    with FakeOpenAI(default=delayed_echo(0.2)) as llm:
        start = int(time.time() * 1000) + 4_000
        ids = _schedules_falling_due(store, start, 12_000)
        ext = ("tests.cluster_ext:force_leader",) if forced_leaders else ()
        n_nodes = 2 if forced_leaders else 3
        nodes = {
            f"w{i}": worker(store.db.url, llm.base_url, f"w{i}", tmp_path, *ext)
            for i in range(n_nodes)
        }
        rng = random.Random(5)
        deadline = time.monotonic() + 110
        try:
            time.sleep(5)
            for k in range(kills):
                victim = rng.choice(sorted(nodes))
                nodes.pop(victim).kill()
                name = f"r{k}"
                nodes[name] = worker(store.db.url, llm.base_url, name, tmp_path, *ext)
                time.sleep(rng.uniform(1.5, 3.0))
            while time.monotonic() < deadline and not _settled(store):
                time.sleep(0.5)
        finally:
            for node in nodes.values():
                node.stop()
        return _check_one_outcome_each(store, ids)


def test_every_occurrence_gets_exactly_one_outcome_while_nodes_die(
    pg_store: Store, tmp_path: Path
) -> None:
    kinds = _run(pg_store, tmp_path, kills=4, forced_leaders=False)
    print("outcomes:", kinds)
    assert kinds.get("completed", 0) == N_SCHEDULES


def test_two_nodes_forced_to_lead_still_record_one_outcome_each(
    pg_store: Store, tmp_path: Path
) -> None:
    kinds = _run(pg_store, tmp_path, kills=1, forced_leaders=True)
    print("outcomes:", kinds)
    assert kinds.get("completed", 0) == N_SCHEDULES
