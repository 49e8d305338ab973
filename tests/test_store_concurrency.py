"""Races the store must win: many threads, each with its own connection, start together."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest

from recapd.model.app_error import AppError
from recapd.model.ids import new_id
from recapd.model.job import JobStatus
from recapd.store.store import Store
from tests.factories import NOW, job, recap, scheduled_recap

T = TypeVar("T")


def race(n: int, fn: Callable[[int], T]) -> list[T | BaseException]:
    """Run fn(0..n-1) in n threads released at the same instant; results or exceptions."""
    barrier = threading.Barrier(n)
    results: list[T | BaseException] = [RuntimeError("not run")] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    return results


def _unexpected(results: Sequence[object]) -> list[object]:
    return [r for r in results if isinstance(r, BaseException) and not isinstance(r, AppError)]


def test_twenty_creators_against_a_limit_of_five(store: Store) -> None:
    user = new_id()
    results = race(
        20, lambda i: store.scheduled_recaps.save_if_under_limit(scheduled_recap(user_id=user), 5)
    )
    assert _unexpected(results) == []
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 5
    assert len(store.scheduled_recaps.list_for_user(user, per_page=100)) == 5


def test_concurrent_resumes_hold_the_limit(store: Store) -> None:
    user = new_id()
    paused = [
        store.scheduled_recaps.save(scheduled_recap(user_id=user, enabled=False)) for _ in range(10)
    ]
    results = race(
        10, lambda i: store.scheduled_recaps.enable_if_under_limit(paused[i].id, 3, NOW + 1, NOW)
    )
    assert _unexpected(results) == []
    enabled = [s for s in store.scheduled_recaps.list_for_user(user, per_page=100) if s.enabled]
    assert len(enabled) == 3


def test_ten_claimers_of_one_job_one_winner(store: Store) -> None:
    j = store.jobs.save(job())
    results = race(10, lambda i: store.jobs.claim(j.id, NOW, f"node-{i}"))
    assert results.count(True) == 1 and results.count(False) == 9
    assert store.jobs.get(j.id).attempt == 1


def test_batch_claimers_never_share_a_job(store: Store) -> None:
    made = {store.jobs.save(job()).id for _ in range(200)}
    results = race(
        8,
        lambda i: [
            jj.id for _ in range(10) for jj in store.jobs.claim_batch("recap", 5, NOW, f"n{i}")
        ],
    )
    assert _unexpected(results) == []
    claimed = [jid for r in results if isinstance(r, list) for jid in r]
    assert len(claimed) == len(set(claimed)) == len(made)


def test_save_once_under_concurrency_one_live_job_per_key(store: Store) -> None:
    keys = [f"sr{k}:{NOW}" for k in range(5)]
    results = race(20, lambda i: store.jobs.save_once(job(dedupe_key=keys[i % 5]))[1])
    assert _unexpected(results) == []
    assert results.count(True) == 5
    live = store.jobs.list_page(statuses=[JobStatus.PENDING], per_page=100)
    assert sorted(j.dedupe_key or "" for j in live) == sorted(keys)


def test_daily_limit_under_concurrency(store: Store) -> None:
    user = new_id()
    results = race(
        12,
        lambda i: store.recaps.save_if_under_daily_limit(
            recap(user_id=user), 4, NOW - 1000, NOW + 1000
        ),
    )
    assert _unexpected(results) == []
    assert store.recaps.count_for_day(user, NOW - 1000, NOW + 1000) == 4


def test_one_recap_per_occurrence_under_concurrency(store: Store) -> None:
    sr_id = new_id()
    results = race(
        10, lambda i: store.recaps.save(recap(scheduled_recap_id=sr_id, scheduled_for=NOW)).id
    )
    assert _unexpected(results) == []
    assert sum(1 for r in results if isinstance(r, str)) == 1


@pytest.mark.postgres_only
def test_pg_runs_with_real_server(pg_url: str) -> None:
    # Guard: the concurrency tests above must run on PostgreSQL, not only on SQLite.
    s = Store.open(pg_url)
    try:
        assert s.db.is_postgres
        with s.db.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW server_version_num").scalar_one() >= "140000"
    finally:
        s.close()
