"""LeaderElector and StaticLeadership: leadership ends locally before the lease can expire."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

import pytest

from recapd.jobs.leader import LeaderElector, Leadership, StaticLeadership
from recapd.store.database import Database
from recapd.store.lease_store import LeaseStore
from recapd.store.store import Store


class FakeMonotonic:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _elector(leases: LeaseStore, node: str, clock: FakeMonotonic) -> LeaderElector:
    # ttl 30 s, renewals every 10 s: safety max(5, 3) = 5 s, so leadership lasts 25 s.
    return LeaderElector(leases, node, ttl_s=30, renew_interval_s=10, monotonic=clock)


def test_becomes_leader_and_stays_leader_through_renewals(store: Store) -> None:
    clock = FakeMonotonic()
    a = _elector(store.leases, "a", clock)
    assert not a.is_leader and a.term == 0 and a.lease_name == "leader"
    assert a.renew_once()
    assert a.is_leader and a.term == 1
    for _ in range(5):
        clock.now += 10
        assert a.renew_once()
        assert a.is_leader and a.term == 1
    b = _elector(store.leases, "b", clock)
    assert not b.renew_once()
    assert not b.is_leader and b.term == 0


def test_leadership_lapses_by_itself_when_renewals_stop(store: Store) -> None:
    clock = FakeMonotonic()
    a = _elector(store.leases, "a", clock)
    start = clock.now
    assert a.renew_once()
    clock.now = start + 24.999
    assert a.is_leader and a.term == 1
    clock.now = start + 25
    assert not a.is_leader and a.term == 0


def test_leadership_ends_before_the_ttl_when_the_database_is_unreachable(
    sqlite_template: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    shutil.copy(sqlite_template, folder / "recapd.db")
    db = Database(f"sqlite:///{folder / 'recapd.db'}")
    clock = FakeMonotonic()
    a = _elector(LeaseStore(db), "a", clock)
    events: list[tuple[bool, int]] = []
    a.on_change(lambda leading, term: events.append((leading, term)))
    assert a.renew_once()
    clock.now += 10
    last_renewal = clock.now
    assert a.renew_once()
    assert events == [(True, 1)]

    # The database goes away: its directory is deleted and no pooled connection survives.
    shutil.rmtree(folder)
    db.dispose()
    with caplog.at_level(logging.WARNING, logger="recapd.jobs.leader"):
        clock.now = last_renewal + 10
        assert a.renew_once()  # a failed renewal does not end a leadership still in time
        clock.now = last_renewal + 20
        assert a.renew_once()
    assert sum("renewal by a failed" in r.getMessage() for r in caplog.records) == 2
    clock.now = last_renewal + 24.9
    assert a.is_leader
    clock.now = last_renewal + 25
    assert not a.is_leader and a.term == 0
    assert events == [(True, 1), (False, 1)]
    # The lease may live in the database until last_renewal + ttl: we stopped 5 s before.
    assert last_renewal + a.ttl_s - clock.now >= 5
    assert not a.renew_once()
    assert events == [(True, 1), (False, 1)]
    a.resign()  # releasing fails too, quietly
    db.dispose()


def test_unreachable_postgres_never_leads_and_never_raises() -> None:
    db = Database("postgresql://postgres@127.0.0.1:1/recapd")  # nothing listens on port 1
    try:
        a = LeaderElector(LeaseStore(db), "a", ttl_s=3, renew_interval_s=1)
        assert not a.renew_once()
        assert not a.is_leader and a.term == 0
        a.resign()
    finally:
        db.dispose()


def test_on_change_reports_gain_loss_and_a_new_term(store: Store) -> None:
    clock = FakeMonotonic()
    a = _elector(store.leases, "a", clock)
    events: list[tuple[bool, int]] = []
    a.on_change(lambda leading, term: events.append((leading, term)))
    a.renew_once()
    a.renew_once()
    assert events == [(True, 1)]
    # The lease was released behind a's back (as if by an earlier incarnation of the node):
    # the next renewal is a new leadership under a new term, reported as loss then gain.
    store.leases.release("leader", "a")
    assert a.renew_once() and a.term == 2
    assert events == [(True, 1), (False, 1), (True, 2)]
    # Another holder's live lease ends a's leadership at once, long before a's deadline.
    store.leases.release("leader", "a")
    b = _elector(store.leases, "b", clock)
    assert b.renew_once() and b.term == 3
    assert not a.renew_once()
    assert not a.is_leader and a.term == 0
    assert events == [(True, 1), (False, 1), (True, 2), (False, 2)]
    b_events: list[tuple[bool, int]] = []
    b.on_change(lambda leading, term: b_events.append((leading, term)))
    b.resign()
    assert b_events == [(False, 3)]
    assert a.renew_once() and events[-1] == (True, 4)


def test_a_failing_callback_does_not_break_renewals(store: Store) -> None:
    clock = FakeMonotonic()
    a = _elector(store.leases, "a", clock)
    seen: list[tuple[bool, int, bool]] = []

    def broken(leading: bool, term: int) -> None:
        raise RuntimeError("boom")

    def reentrant(leading: bool, term: int) -> None:
        seen.append((leading, term, a.is_leader))

    a.on_change(broken)
    a.on_change(reentrant)
    assert a.renew_once()
    clock.now += 25
    assert not a.is_leader
    assert seen == [(True, 1, True), (False, 1, False)]


def test_two_electors_the_second_takes_over_after_the_first_stops(store: Store) -> None:
    # Real clocks: ttl 0.3 s, so a's leadership lasts 0.25 s and its lease 0.3 s.
    a = LeaderElector(store.leases, "a", ttl_s=0.3, renew_interval_s=0.1)
    b = LeaderElector(store.leases, "b", ttl_s=0.3, renew_interval_s=0.1)
    a_events: list[tuple[bool, int]] = []
    a.on_change(lambda leading, term: a_events.append((leading, term)))
    assert a.renew_once() and a.term == 1
    assert not b.renew_once()
    # a stops renewing (a crash, a pause); b keeps trying until the lease expires.
    deadline = time.monotonic() + 2
    while not b.renew_once():
        assert a.is_leader or b.term == 0
        assert time.monotonic() < deadline, "b never took over"
        time.sleep(0.02)
    # Never two leaders: a's leadership had ended before the database let b in.
    assert not a.is_leader
    assert b.is_leader and b.term == 2
    assert a_events == [(True, 1), (False, 1)]
    assert not a.renew_once()


def test_run_renews_until_stopped_then_releases(store: Store) -> None:
    a = LeaderElector(store.leases, "a", ttl_s=5, renew_interval_s=0.05)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(a.run(stop))
        for _ in range(500):
            if a.is_leader:
                break
            await asyncio.sleep(0.01)
        assert a.is_leader and a.term == 1
        first = store.leases.get("leader")
        await asyncio.sleep(0.2)
        later = store.leases.get("leader")
        assert first is not None and later is not None
        assert later.expires_at > first.expires_at  # renewed meanwhile
        assert a.is_leader and a.term == 1
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert not a.is_leader
    lease = store.leases.get("leader")
    assert lease is not None and not lease.live
    taken = store.leases.try_acquire("leader", "b", 1_000)
    assert taken is not None and taken.term == 2


def test_run_releases_when_cancelled(store: Store) -> None:
    a = LeaderElector(store.leases, "a", ttl_s=5, renew_interval_s=0.05)

    async def main() -> None:
        task = asyncio.create_task(a.run(asyncio.Event()))
        for _ in range(500):
            if a.is_leader:
                break
            await asyncio.sleep(0.01)
        assert a.is_leader
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert not a.is_leader
    lease = store.leases.get("leader")
    assert lease is not None and not lease.live


def test_elector_settings_are_checked() -> None:
    leases = LeaseStore(Database("sqlite://"))
    with pytest.raises(ValueError):
        LeaderElector(leases, "a", ttl_s=0, renew_interval_s=1)
    with pytest.raises(ValueError):
        LeaderElector(leases, "a", ttl_s=3, renew_interval_s=2)  # would lapse between renewals
    elector = LeaderElector(leases, "a", ttl_s=30, renew_interval_s=10, name="scheduler")
    assert elector.lease_name == "scheduler" and elector.safety_s == 5


def test_static_leadership() -> None:
    leadership: Leadership = StaticLeadership(7, lease_name="scheduler")
    assert leadership.is_leader and leadership.term == 7
    assert leadership.lease_name == "scheduler"
    assert StaticLeadership().term == 1
    with pytest.raises(ValueError):
        StaticLeadership(0)
