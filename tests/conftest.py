"""Shared fixtures: the same store tests run on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from recapd.store.database import Database, to_sqlalchemy_url
from recapd.store.migrate import upgrade
from recapd.store.store import Store
from recapd.store.tables import metadata

# scripts/test.sh exports RECAPD_TEST_POSTGRES_URL after finding or starting a server; this
# default is the server these machines run.
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _admin_pg_url() -> str:
    return os.environ.get("RECAPD_TEST_POSTGRES_URL", DEFAULT_PG_URL)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A throwaway database on the PostgreSQL server, migrated once for the session.

    No server: skipped on a developer's machine, a failure under CI=true.
    """
    admin_url = _admin_pg_url()
    try:
        import psycopg  # noqa: F401

        admin = sa.create_engine(to_sqlalchemy_url(admin_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:
        msg = f"PostgreSQL not reachable at {admin_url}: {exc}"
        if IN_CI:
            pytest.fail(msg + " (CI=true: PostgreSQL tests must run, not skip)", pytrace=False)
        pytest.skip(msg)
    name = f"recapd_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(to_sqlalchemy_url(admin_url)).set(database=name)
    url_str = url.render_as_string(hide_password=False)
    db = Database(url_str)
    upgrade(db)
    db.dispose()
    try:
        yield url_str
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (migrating once is faster)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()  # closing the last connection checkpoints the WAL into the file
    return path


def _truncate_all(url: str) -> None:
    engine = sa.create_engine(url)
    names = ", ".join(f'"{t.name}"' for t in reversed(metadata.sorted_tables))
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database URL: a SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "recapd.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_server_url")
    _truncate_all(url)
    return url


@pytest.fixture
def pg_url(pg_server_url: str) -> str:
    """The PostgreSQL database alone, emptied (for tests that need a real server)."""
    _truncate_all(pg_server_url)
    return pg_server_url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A Store on each engine in turn."""
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()
