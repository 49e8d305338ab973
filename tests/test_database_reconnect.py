"""PostgreSQL connections ended by the server (a restart, a terminated backend) are replaced
on checkout, without a ping per checkout while they are alive."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from recapd.store.database import Database, check_liveness_on_checkout, to_sqlalchemy_url


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    d = Database(pg_url)
    try:
        yield d
    finally:
        d.dispose()


def backend_pids(db: Database, n: int) -> list[int]:
    """The server pids of `n` pooled connections, all checked in again."""
    conns = [db.engine.connect() for _ in range(n)]
    try:
        return [int(c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()) for c in conns]
    finally:
        for c in conns:
            c.close()


def terminate(url: str, pids: list[int]) -> None:
    """End these backends as a restart would, and wait until they are gone."""
    admin = sa.create_engine(to_sqlalchemy_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for pid in pids:
                conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            # Bounded wait for the backends to exit (no fixed sleep).
            for _ in range(10_000):
                alive = conn.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:p)"),
                    {"p": pids},
                ).scalar_one()
                if not alive:
                    return
            raise AssertionError("backends still alive")
    finally:
        admin.dispose()


def count_pings(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    real = db.engine.dialect.do_ping

    def ping(dbapi_conn: Any) -> bool:
        pings.append(1)
        return bool(real(dbapi_conn))

    monkeypatch.setattr(db.engine.dialect, "do_ping", ping)
    return pings


def test_a_live_connection_is_not_pinged(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    backend_pids(db, 2)
    pings = count_pings(db, monkeypatch)
    for _ in range(5):
        with db.read() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
        with db.transaction() as conn:
            assert conn.exec_driver_sql("SELECT 2").scalar_one() == 2
    assert pings == []


def test_connections_ended_by_the_server_are_replaced(
    db: Database, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = backend_pids(db, 3)
    pings = count_pings(db, monkeypatch)
    terminate(pg_url, pids)
    # Every store call after the "restart" works: the dead connection is seen on checkout,
    # pinged, and the pool connects afresh.
    for _ in range(4):
        with db.read() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
        with db.transaction() as conn:
            assert conn.exec_driver_sql("SELECT 2").scalar_one() == 2
    assert pings  # the dead connections were found by a ping, not by a failed statement
    assert not set(backend_pids(db, 3)) & set(pids)


def test_a_connection_idle_too_long_is_pinged(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = sa.create_engine(to_sqlalchemy_url(pg_url))
    check_liveness_on_checkout(engine, idle_seconds=-1.0)  # every checked-in one is "old"
    db = Database(pg_url, engine=engine)
    try:
        backend_pids(db, 1)
        pings = count_pings(db, monkeypatch)
        with db.read() as conn:
            conn.exec_driver_sql("SELECT 1")
        assert pings == [1]
    finally:
        db.dispose()
