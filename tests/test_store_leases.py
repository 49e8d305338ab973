"""LeaseStore on SQLite and PostgreSQL: terms, expiry by the database's clock, fencing."""

from __future__ import annotations

import threading
import time

import pytest

from recapd.store.lease_store import Lease
from recapd.store.store import Store
from tests.test_store_concurrency import race


def _acquire(store: Store, holder: str, ttl_ms: int = 30_000, name: str = "leader") -> Lease:
    lease = store.leases.try_acquire(name, holder, ttl_ms)
    assert lease is not None
    return lease


def _wait_until_expired(store: Store, name: str = "leader", within_s: float = 1.0) -> None:
    """Poll until the database's clock has passed the lease's expiry."""
    deadline = time.monotonic() + within_s
    while True:
        lease = store.leases.get(name)
        assert lease is not None
        if lease.db_now > lease.expires_at:
            assert not lease.live
            return
        assert time.monotonic() < deadline, "the database clock did not pass the expiry"
        time.sleep(0.005)


def test_first_acquire_gets_term_one(store: Store) -> None:
    assert store.leases.get("leader") is None
    lease = _acquire(store, "a", 30_000)
    assert (lease.name, lease.holder, lease.term) == ("leader", "a", 1)
    assert lease.acquired_at == lease.db_now
    assert lease.expires_at == lease.db_now + 30_000
    assert lease.live
    # The database's clock, in epoch ms: close to this machine's wall clock.
    assert abs(lease.db_now - time.time() * 1000) < 60_000
    stored = store.leases.get("leader")
    assert stored is not None
    assert (stored.holder, stored.term, stored.expires_at) == ("a", 1, lease.expires_at)
    assert stored.db_now >= lease.db_now


def test_renewal_keeps_the_term_and_extends_the_expiry(store: Store) -> None:
    first = _acquire(store, "a", 1_000)
    renewed = _acquire(store, "a", 60_000)
    assert renewed.term == first.term == 1
    assert renewed.acquired_at == first.acquired_at
    assert renewed.expires_at >= first.expires_at + 59_000


def test_another_holder_is_refused_while_the_lease_is_live(store: Store) -> None:
    _acquire(store, "a")
    assert store.leases.try_acquire("leader", "b", 30_000) is None
    stored = store.leases.get("leader")
    assert stored is not None and (stored.holder, stored.term) == ("a", 1)
    # Leases of other names are independent.
    assert _acquire(store, "b", name="other").term == 1


def test_after_expiry_another_holder_takes_over_with_the_next_term(store: Store) -> None:
    first = _acquire(store, "a", 50)
    _wait_until_expired(store)
    with store.transaction() as conn:
        assert not store.leases.check_term(conn, "leader", first.term)
    taken = _acquire(store, "b", 30_000)
    assert (taken.holder, taken.term) == ("b", 2)
    assert taken.acquired_at == taken.db_now
    assert store.leases.try_acquire("leader", "a", 30_000) is None


def test_release_lets_another_holder_take_over_at_once(store: Store) -> None:
    _acquire(store, "a")
    store.leases.release("leader", "b")  # not the holder: nothing happens
    assert store.leases.try_acquire("leader", "b", 30_000) is None
    store.leases.release("leader", "a")
    released = store.leases.get("leader")
    assert released is not None and not released.live and released.term == 1
    taken = _acquire(store, "b")
    assert (taken.holder, taken.term) == ("b", 2)
    store.leases.release("leader", "a")  # no longer the holder: b keeps it
    assert store.leases.try_acquire("leader", "a", 30_000) is None
    store.leases.release("never-taken", "a")
    assert store.leases.get("never-taken") is None


def test_coming_back_after_an_own_expired_lease_starts_a_new_term(store: Store) -> None:
    # Work begun under the old term must fail check_term even when the node id is reused.
    _acquire(store, "a")
    store.leases.release("leader", "a")
    again = _acquire(store, "a")
    assert again.term == 2
    assert _acquire(store, "a").term == 2


def test_check_term(store: Store) -> None:
    lease = _acquire(store, "a")
    with store.transaction() as conn:
        assert store.leases.check_term(conn, "leader", lease.term)
        assert not store.leases.check_term(conn, "leader", lease.term + 1)
        assert not store.leases.check_term(conn, "leader", 0)
        assert not store.leases.check_term(conn, "other", lease.term)
    store.leases.release("leader", "a")
    with store.transaction() as conn:
        assert not store.leases.check_term(conn, "leader", lease.term)
    taken = _acquire(store, "b")
    with store.transaction() as conn:
        assert store.leases.check_term(conn, "leader", taken.term)
        assert not store.leases.check_term(conn, "leader", lease.term)


def test_try_acquire_rejects_a_non_positive_ttl(store: Store) -> None:
    with pytest.raises(ValueError):
        store.leases.try_acquire("leader", "a", 0)


def test_ten_concurrent_acquirers_one_holder(store: Store) -> None:
    results = race(10, lambda i: store.leases.try_acquire("leader", f"node-{i}", 30_000))
    assert [r for r in results if isinstance(r, BaseException)] == []
    won = [r for r in results if isinstance(r, Lease)]
    assert len(won) == 1 and won[0].term == 1
    stored = store.leases.get("leader")
    assert stored is not None and stored.holder == won[0].holder and stored.term == 1


def _wait_for_a_lock_waiter(store: Store, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while True:
        with store.db.engine.connect() as conn:
            waiting = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).scalar_one()
        if waiting:
            return
        assert time.monotonic() < deadline, "the takeover never waited on the lease row"
        time.sleep(0.01)


@pytest.mark.postgres_only
def test_check_term_holds_a_takeover_off_until_the_fenced_transaction_ends(pg_url: str) -> None:
    store = Store.open(pg_url)
    try:
        first = _acquire(store, "a", 200)
        taken: list[Lease | BaseException | None] = []

        def take_over() -> None:
            try:
                taken.append(store.leases.try_acquire("leader", "b", 30_000))
            except BaseException as exc:
                taken.append(exc)

        with store.db.engine.connect() as conn:
            tx = conn.begin()
            assert store.leases.check_term(conn, "leader", first.term)
            # The lease expires while the fenced transaction is still open...
            _wait_until_expired(store)
            th = threading.Thread(target=take_over)
            th.start()
            # ...yet the takeover waits on the row lock instead of slipping in before commit.
            _wait_for_a_lock_waiter(store)
            assert th.is_alive() and taken == []
            tx.commit()
        th.join(10)
        assert not th.is_alive()
        assert len(taken) == 1 and isinstance(taken[0], Lease)
        assert (taken[0].holder, taken[0].term) == ("b", first.term + 1)
    finally:
        store.close()
