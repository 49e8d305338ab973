"""SQL for named leases: leader election where the database's clock decides expiry and the
database issues the terms (fencing tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recapd.store.database import Database
from recapd.store.tables import cluster_leases

t = cluster_leases

_PG_NOW_MS = "(extract(epoch from statement_timestamp()) * 1000)::bigint"
_SQLITE_NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"


def db_now_ms(is_postgres: bool) -> sa.ColumnElement[int]:
    """The database server's current time in epoch ms, as a SQL expression."""
    # statement_timestamp(), not now(): now() is frozen at the start of the transaction, and a
    # lease checked inside a long transaction must see the real time; unlike clock_timestamp()
    # it reads the same in every place of one statement (acquired_at and expires_at agree).
    return sa.literal_column(_PG_NOW_MS if is_postgres else _SQLITE_NOW_MS, sa.BigInteger)


@dataclass(frozen=True)
class Lease:
    """A lease row as the database saw it at `db_now` (epoch ms on the database's clock)."""

    name: str
    holder: str
    term: int
    acquired_at: int
    expires_at: int
    db_now: int

    @property
    def live(self) -> bool:
        """Not expired at `db_now`."""
        return self.expires_at >= self.db_now


class LeaseStore:
    """Named leases in the database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _now(self) -> sa.ColumnElement[int]:
        return db_now_ms(self._db.is_postgres)

    def try_acquire(
        self, name: str, holder: str, ttl_ms: int, *, conn: Connection | None = None
    ) -> Lease | None:
        """Take or renew lease `name` for `ttl_ms` of the database's clock, in one statement.

        Returns the lease `holder` now holds, or None while another holder's lease is live.
        """
        # Succeeds when the row is absent, expired, or live and already `holder`'s. Only that
        # last case (a renewal) keeps the term; every other success starts a new one (1 for a
        # new row, else term + 1): the term changes whenever the holder does, and also when a
        # holder comes back after its own lease expired, so its work under the old term (say,
        # a paused process whose node id was reused) is fenced off too.
        if ttl_ms <= 0:
            raise ValueError("ttl_ms must be positive")
        now = self._now()
        ins = self._db.insert(t).values(
            name=name, holder=holder, term=1, acquired_at=now, expires_at=now + ttl_ms
        )
        # `excluded.acquired_at` is the statement's one reading of the clock: comparing against
        # it (not a fresh clock read) keeps the expiry test and the new expiry consistent.
        stmt_now = ins.excluded.acquired_at
        renewing = sa.and_(t.c.holder == ins.excluded.holder, t.c.expires_at >= stmt_now)
        stmt = ins.on_conflict_do_update(
            index_elements=[t.c.name],
            set_={
                "holder": ins.excluded.holder,
                "term": sa.case((renewing, t.c.term), else_=t.c.term + 1),
                "acquired_at": sa.case((renewing, t.c.acquired_at), else_=stmt_now),
                "expires_at": ins.excluded.expires_at,
            },
            where=sa.or_(t.c.holder == ins.excluded.holder, t.c.expires_at < stmt_now),
        ).returning(t.c.name, t.c.holder, t.c.term, t.c.acquired_at, t.c.expires_at)
        with self._db.transaction(conn) as c:
            row = c.execute(stmt).first()
        if row is None:
            return None
        m = row._mapping
        # Both the insert and the update set expires_at = now + ttl, so now is recoverable.
        return Lease(
            name=m["name"],
            holder=m["holder"],
            term=int(m["term"]),
            acquired_at=int(m["acquired_at"]),
            expires_at=int(m["expires_at"]),
            db_now=int(m["expires_at"]) - ttl_ms,
        )

    def release(self, name: str, holder: str, *, conn: Connection | None = None) -> None:
        """Expire the lease now if `holder` holds it, so another node can take it at once.

        The term stays, so the next acquirer gets term + 1.
        """
        now = self._now()
        q = (
            t.update()
            .where(t.c.name == name, t.c.holder == holder, t.c.expires_at >= now)
            .values(expires_at=now - 1)
        )
        with self._db.transaction(conn) as c:
            c.execute(q)

    def get(self, name: str, *, conn: Connection | None = None) -> Lease | None:
        """The lease row (live or expired), or None if it was never taken."""
        q = sa.select(t, self._now().label("db_now")).where(t.c.name == name)
        with self._db.transaction(conn) as c:
            row = c.execute(q).first()
        return None if row is None else _row_to_lease(row)

    def check_term(self, conn: Connection, name: str, term: int) -> bool:
        """True while lease `name` is live with `term`: fencing inside `conn`'s transaction."""
        # PostgreSQL: FOR SHARE makes a takeover (an update of the row) wait until the caller's
        # transaction ends, so it cannot interleave with the fenced writes. SQLite: the caller's
        # transaction already holds the database's write lock (BEGIN IMMEDIATE).
        q = sa.select(t.c.term).where(
            t.c.name == name, t.c.term == term, t.c.expires_at >= self._now()
        )
        if self._db.is_postgres:
            q = q.with_for_update(read=True)
        return conn.execute(q).first() is not None


def _row_to_lease(row: sa.Row[Any]) -> Lease:
    m = row._mapping
    return Lease(
        name=m["name"],
        holder=m["holder"],
        term=int(m["term"]),
        acquired_at=int(m["acquired_at"]),
        expires_at=int(m["expires_at"]),
        db_now=int(m["db_now"]),
    )
