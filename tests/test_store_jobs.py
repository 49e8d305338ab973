"""JobStore on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from recapd.model.app_error import AppError
from recapd.model.ids import new_id
from recapd.model.job import JobStatus, JobType
from recapd.store.store import Store
from tests.factories import NOW, job


def test_save_and_get(store: Store) -> None:
    j = store.jobs.save(job(data={"scheduled_recap_id": "x", "n": 3}))
    assert store.jobs.get(j.id) == j
    with pytest.raises(AppError) as err:
        store.jobs.get(new_id())
    assert err.value.status_code == 404


def test_save_once_one_live_job_per_key(store: Store) -> None:
    first, created = store.jobs.save_once(job(dedupe_key="sr1:100"))
    assert created
    again, created = store.jobs.save_once(job(dedupe_key="sr1:100"))
    assert not created and again.id == first.id
    other, created = store.jobs.save_once(job(dedupe_key="sr1:200"))
    assert created and other.id != first.id
    # Once the holder finished, the key is free for a new live job.
    assert store.jobs.claim(first.id, NOW)
    assert store.jobs.update_status(first.id, JobStatus.SUCCESS, [JobStatus.IN_PROGRESS], NOW)
    new, created = store.jobs.save_once(job(dedupe_key="sr1:100"))
    assert created and new.id != first.id
    with pytest.raises(ValueError):
        store.jobs.save_once(job())


def test_claim_one_winner_and_attempt_counted(store: Store) -> None:
    j = store.jobs.save(job())
    assert store.jobs.claim(j.id, NOW + 1, "node-a")
    assert not store.jobs.claim(j.id, NOW + 2, "node-b")
    got = store.jobs.get(j.id)
    assert (got.status, got.node_id, got.attempt, got.start_at, got.last_activity_at) == (
        "in_progress",
        "node-a",
        1,
        NOW + 1,
        NOW + 1,
    )


def test_claim_batch_respects_type_run_at_priority_and_limit(store: Store) -> None:
    low = store.jobs.save(job(priority=0, run_at=NOW - 10))
    high = store.jobs.save(job(priority=5, run_at=NOW - 1))
    later = store.jobs.save(job(run_at=NOW + 60_000))  # retry backoff not over
    store.jobs.save(job(type=JobType.SCHEDULED_RECAP))
    early = store.jobs.save(job(priority=0, run_at=NOW - 20))
    got = store.jobs.claim_batch(JobType.RECAP, 2, NOW, "n1")
    assert [j.id for j in got] == [high.id, early.id]
    assert all(j.status == "in_progress" and j.attempt == 1 for j in got)
    got = store.jobs.claim_batch(JobType.RECAP, 10, NOW, "n1")
    assert [j.id for j in got] == [low.id]
    assert store.jobs.claim_batch(JobType.RECAP, 10, NOW, "n1") == []
    assert [j.id for j in store.jobs.claim_batch(JobType.RECAP, 10, NOW + 60_000)] == [later.id]


def test_progress_and_heartbeat(store: Store) -> None:
    a = store.jobs.save(job())
    b = store.jobs.save(job())
    store.jobs.claim(a.id, NOW)
    assert store.jobs.set_progress(a.id, 150, NOW + 5)
    got = store.jobs.get(a.id)
    assert (got.progress, got.last_activity_at) == (100, NOW + 5)
    assert not store.jobs.set_progress(b.id, 10, NOW + 5)  # not running
    store.jobs.claim(b.id, NOW, "other-node")
    beat = store.jobs.heartbeat_status([(a.id, 1), (b.id, 1)], "", NOW + 9)
    assert beat == {a.id: "in_progress"}  # b runs on another node
    assert store.jobs.get(a.id).last_activity_at == NOW + 9
    assert store.jobs.get(b.id).last_activity_at == NOW
    assert store.jobs.heartbeat_status([(a.id, 2)], "", NOW + 10) == {}  # not this attempt
    store.jobs.request_cancel(a.id, NOW + 11)
    assert store.jobs.heartbeat_status([(a.id, 1)], "", NOW + 12) == {a.id: "cancel_requested"}
    assert store.jobs.heartbeat_status([], "", NOW) == {}


def test_update_status_compare_and_set_with_data(store: Store) -> None:
    j = store.jobs.save(job())
    assert not store.jobs.update_status(j.id, JobStatus.SUCCESS, [JobStatus.IN_PROGRESS], NOW)
    store.jobs.claim(j.id, NOW)
    assert store.jobs.update_status(
        j.id,
        JobStatus.ERROR,
        [JobStatus.IN_PROGRESS],
        NOW + 3,
        progress=-1,
        data={"error": "boom"},
    )
    got = store.jobs.get(j.id)
    assert (got.status, got.progress, got.data, got.last_activity_at) == (
        "error",
        -1,
        {"error": "boom"},
        NOW + 3,
    )


def test_request_cancel(store: Store) -> None:
    waiting = store.jobs.save(job())
    running = store.jobs.save(job())
    done = store.jobs.save(job())
    store.jobs.claim(running.id, NOW)
    store.jobs.claim(done.id, NOW)
    store.jobs.update_status(done.id, JobStatus.SUCCESS, [JobStatus.IN_PROGRESS], NOW)
    assert store.jobs.request_cancel(waiting.id, NOW + 1).status == "canceled"
    assert store.jobs.request_cancel(running.id, NOW + 1).status == "cancel_requested"
    assert store.jobs.request_cancel(done.id, NOW + 1).status == "success"


def test_list_filters_and_paging(store: Store) -> None:
    made = [store.jobs.save(job(create_at=NOW + i)) for i in range(5)]
    store.jobs.save(job(type=JobType.SCHEDULED_RECAP))
    store.jobs.claim(made[0].id, NOW)
    assert [j.id for j in store.jobs.list_page(type=JobType.RECAP, per_page=2)] == [
        made[4].id,
        made[3].id,
    ]
    assert [j.id for j in store.jobs.list_page(statuses=[JobStatus.IN_PROGRESS])] == [made[0].id]
    assert len(store.jobs.list_page(type=JobType.RECAP, page=2, per_page=2)) == 1
    counts = store.jobs.count_by_type_and_status()
    assert counts[("recap", "pending")] == 4
    assert counts[("scheduled_recap", "pending")] == 1


def test_wedged_and_cleanup(store: Store) -> None:
    stale = store.jobs.save(job())
    fresh = store.jobs.save(job())
    store.jobs.claim(stale.id, NOW)
    store.jobs.claim(fresh.id, NOW + 50_000)
    assert [j.id for j in store.jobs.get_wedged(NOW + 10_000)] == [stale.id]
    old = [store.jobs.save(job()) for _ in range(5)]
    for j in old:
        store.jobs.claim(j.id, NOW)
        store.jobs.update_status(j.id, JobStatus.SUCCESS, [JobStatus.IN_PROGRESS], NOW)
    assert store.jobs.delete_finished_before(NOW + 1, 3) == 3
    assert store.jobs.delete_finished_before(NOW + 1, 3) == 2
    assert store.jobs.delete_finished_before(NOW + 1, 3) == 0
    assert store.jobs.get(stale.id).status == "in_progress"


def test_complete_many_and_finish_touch_only_this_nodes_current_attempt(store: Store) -> None:
    mine = store.jobs.save(job())
    stale = store.jobs.save(job())
    theirs = store.jobs.save(job())
    for j, node in ((mine, "a"), (stale, "a"), (theirs, "b")):
        store.jobs.claim(j.id, NOW, node)
    done = [(mine.id, 1), (stale.id, 2), (theirs.id, 1)]
    assert store.jobs.complete_many(done, "a", NOW + 1) == 1
    assert [store.jobs.get(j.id).status for j in (mine, stale, theirs)] == [
        "success",
        "in_progress",
        "in_progress",
    ]
    running = store.jobs.get(theirs.id)
    running.data = {"error": "x"}
    assert not store.jobs.finish(running, "a", JobStatus.ERROR, NOW + 2)
    assert store.jobs.finish(running, "b", JobStatus.PENDING, NOW + 2, run_at=NOW + 99)
    got = store.jobs.get(theirs.id)
    assert (got.status, got.run_at, got.node_id, got.data) == (
        "pending",
        NOW + 99,
        "",
        {"error": "x"},
    )


def test_save_many_round_trips_every_field(store: Store) -> None:
    made = [
        job(data={"n": i, "nested": {"k": [1, "two"]}, "s": "quote ' and \\ tab\t"}, priority=i)
        for i in range(50)
    ]
    made[3].dedupe_key = "k3"
    store.jobs.save_many(made)
    for j in made:
        assert store.jobs.get(j.id) == j


def test_save_many_keeps_text_that_copy_would_misread(store: Store) -> None:
    # PostgreSQL loads save_many by COPY text format: tabs, newlines, CRs and backslashes in any
    # text column must arrive as written, and a missing dedupe key must stay NULL.
    odd = "a\tb\nc\rd\\e \\N"
    made = [job(data={"s": odd, odd: [odd]}), job(data={"s": odd}), job()]
    made[0].dedupe_key = odd
    made[0].node_id = odd
    made[1].type = "t\\ype"
    store.jobs.save_many(made)
    for j in made:
        assert store.jobs.get(j.id) == j
    assert store.jobs.get(made[1].id).dedupe_key is None
