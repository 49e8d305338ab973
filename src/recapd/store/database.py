"""The connector boundary: one Database wraps a SQLAlchemy engine for SQLite or PostgreSQL and
hides their differences (transactions, locks, upserts) from the stores."""

from __future__ import annotations

import json
import re
import select
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_MS = 30_000

# COPY's text format: tab-separated columns, one row a line, NULL as \N, and backslash escapes
# for the characters that would end a value early.
COPY_NULL = "\\N"
COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_escape(value: str) -> str:
    """`value` as one field of COPY's text format."""
    return value.translate(_COPY_ESCAPES)


def to_sqlalchemy_url(url: str) -> str:
    """Map the URLs users write to the driver recapd uses (psycopg 3 for PostgreSQL)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for a `sqlite:///...` or `postgresql://...` URL, configured for recapd."""
    sa_url = sa.make_url(to_sqlalchemy_url(url))
    if sa_url.get_backend_name() == "sqlite":
        return _sqlite_engine(sa_url)
    if sa_url.get_backend_name() == "postgresql":
        engine = sa.create_engine(sa_url, pool_size=pool_size, max_overflow=pool_size)
        check_liveness_on_checkout(engine)
        return engine
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")


# A pooled PostgreSQL connection sitting idle longer than this is pinged before use (a
# network path that dropped it silently); sooner only when the server wrote to it meanwhile.
PING_AFTER_IDLE_SECONDS = 10.0
_CHECKED_IN_AT = "recapd_checked_in_at"


def check_liveness_on_checkout(
    engine: Engine, idle_seconds: float = PING_AFTER_IDLE_SECONDS
) -> None:
    """Ping a pooled connection on checkout only when it may be dead, instead of always.

    A restarted server or a terminated backend ends its connections with a message and a
    close, so the socket of an idle connection turns readable: that costs one poll() to see,
    not a round trip. Such a connection, or one idle longer than `idle_seconds`, is pinged; a
    failed ping invalidates the whole pool (a restart ended every connection) and the pool
    connects afresh. SQLAlchemy's pool_pre_ping pinged on every checkout: one round trip per
    store call, 15-19 % of a herd of recaps' time.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_CHECKED_IN_AT)
        idle_long = since is not None and time.monotonic() - since > idle_seconds
        if not idle_long and not _readable(dbapi_conn):
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as err:
            raise sa.exc.InvalidatePoolError(f"connection dead on checkout: {err}") from err


def _readable(dbapi_conn: Any) -> bool:
    """Whether the server wrote to an idle connection (or it cannot be polled)."""
    try:
        poller = select.poll()
        poller.register(dbapi_conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except Exception:
        return True


# The execution option that marks a connection of Database.read_transaction.
_READ_ONLY = "recapd_read_only"


def _sqlite_engine(sa_url: sa.URL) -> Engine:
    in_memory = sa_url.database in (None, "", ":memory:")
    engine = sa.create_engine(
        sa_url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        poolclass=StaticPool if in_memory else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN instead of pysqlite's implicit one.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not in_memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Take the write lock up front: a transaction that reads then writes cannot deadlock
        # on the lock upgrade, and read-check-write sequences (limits, claims) are serialized.
        # Database.read_transaction's only read: deferred, they take no write lock (WAL).
        if conn.get_execution_options().get(_READ_ONLY):
            conn.exec_driver_sql("BEGIN DEFERRED")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """An engine plus the few operations whose SQL differs between SQLite and PostgreSQL."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine if engine is not None else create_engine(url)
        # fetch_tuples' statements compiled for the driver, by id (with the statement itself).
        self._compiled: dict[int, tuple[sa.Select[Any], str, dict[str, Any]]] = {}

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self, conn: Connection | None = None) -> Iterator[Connection]:
        """A new transaction, or the caller's when `conn` is given (so stores compose)."""
        if conn is not None:
            yield conn
            return
        with self.engine.begin() as new_conn:
            yield new_conn

    @contextmanager
    def read_transaction(self) -> Iterator[Connection]:
        """A transaction that only reads (e.g. a poll every second): on SQLite deferred, so it
        neither takes nor waits for the write lock; on PostgreSQL READ ONLY."""
        with self.engine.connect() as conn:
            conn.execution_options(**{_READ_ONLY: True})
            with conn.begin():
                if self.is_postgres:
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                yield conn

    @contextmanager
    def one_statement(self, conn: Connection | None = None) -> Iterator[Connection]:
        """A connection for exactly one statement that writes, or the caller's `conn`.

        PostgreSQL: autocommit, so the statement is its own transaction without the BEGIN and
        COMMIT round trips (one statement is atomic either way). SQLite: a transaction as
        `transaction` gives (BEGIN IMMEDIATE).
        """
        if conn is not None or not self.is_postgres:
            with self.transaction(conn) as c:
                yield c
            return
        with self.engine.connect() as new_conn:
            new_conn.execution_options(isolation_level="AUTOCOMMIT")
            yield new_conn

    @contextmanager
    def read(self, conn: Connection | None = None) -> Iterator[Connection]:
        """A connection for statements that only read, or the caller's when `conn` is given.

        PostgreSQL: autocommit, so a read is one round trip instead of BEGIN, the statement
        and COMMIT; under READ COMMITTED every statement takes its own snapshot anyway, so
        the reads see what they would have seen in a transaction. SQLite: a deferred
        transaction (read_transaction), which neither takes nor waits for the write lock.
        """
        if conn is not None:
            yield conn
            return
        if not self.is_postgres:
            with self.read_transaction() as new_conn:
                yield new_conn
            return
        with self.engine.connect() as new_conn:
            new_conn.execution_options(isolation_level="AUTOCOMMIT")
            yield new_conn

    def fetch_tuples(
        self, conn: Connection, stmt: sa.Select[Any], params: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        """The rows of a SELECT as plain tuples. PostgreSQL: straight from the driver, the
        statement compiled once per Database (`stmt` must live as long, e.g. a module
        constant), skipping SQLAlchemy's row objects: for reads of many small rows, where
        those cost more than the query. SQLite: through SQLAlchemy."""
        if not self.is_postgres:
            return [tuple(r) for r in conn.execute(stmt, params)]
        compiled = self._compiled.get(id(stmt))
        if compiled is None or compiled[0] is not stmt:
            done = stmt.compile(dialect=self.engine.dialect)
            compiled = (stmt, str(done), dict(done.params))
            self._compiled[id(stmt)] = compiled
        _, sql, defaults = compiled
        raw = conn.connection.driver_connection
        if raw is None:
            raise RuntimeError("no driver connection")
        with raw.cursor() as cur:
            cur.execute(sql, {**defaults, **params})
            return list(cur.fetchall())

    def lock(self, conn: Connection, key: str) -> None:
        """Serialize transactions on `key` until this transaction ends.

        PostgreSQL: a transaction-scoped advisory lock. SQLite: every transaction already holds
        the database's write lock (BEGIN IMMEDIATE), so there is nothing more to take.
        """
        if self.is_postgres:
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
            )

    def insert(self, table: sa.Table) -> Any:
        """A dialect insert, which offers `on_conflict_do_nothing` on both engines."""
        if self.is_postgres:
            return postgresql.insert(table)
        return sqlite.insert(table)

    def copy_rows(
        self,
        conn: Connection,
        table: sa.Table,
        rows: Sequence[dict[str, Any]],
        *,
        into: str | None = None,
    ) -> None:
        """Bulk-load rows of `table` with PostgreSQL's COPY inside the caller's transaction
        (into the table named `into` instead, e.g. a staging copy, when given).

        JSON columns are sent as JSON text; None becomes NULL.
        """
        if not self.is_postgres:
            raise RuntimeError("COPY is PostgreSQL-only")
        if not rows:
            return
        cols = list(rows[0])
        json_cols = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
        raw = conn.connection.driver_connection
        if raw is None:
            raise RuntimeError("no driver connection")
        names = ", ".join(f'"{c}"' for c in cols)
        target = into or table.name
        with raw.cursor() as cur, cur.copy(f'COPY "{target}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([json.dumps(row[c]) if c in json_cols else row[c] for c in cols])

    def copy_text(self, conn: Connection, target: str, columns: Sequence[str], data: str) -> None:
        """Bulk-load `data`, lines already in COPY's text format (see copy_escape), into the
        table `target` inside the caller's transaction: one write instead of one per row."""
        if not self.is_postgres:
            raise RuntimeError("COPY is PostgreSQL-only")
        raw = conn.connection.driver_connection
        if raw is None:
            raise RuntimeError("no driver connection")
        names = ", ".join(f'"{c}"' for c in columns)
        with raw.cursor() as cur, cur.copy(f'COPY "{target}" ({names}) FROM STDIN') as copy:
            copy.write(data)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
