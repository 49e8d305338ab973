"""Running the Alembic migrations from code (`recapd migrate`, and on start).

Alembic takes about half a second to import, so it is imported only when there is work:
`upgrade_if_needed` first compares the database's revision with the newest one shipped, both
read without Alembic.
"""

from __future__ import annotations

import ast
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from recapd.store.database import Database

if TYPE_CHECKING:
    from alembic.config import Config

_VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"


def alembic_config(db: Database) -> Config:
    """An Alembic Config that finds recapd's migrations inside the installed package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "recapd.store:migrations")
    cfg.attributes["database"] = db
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema up to `revision` (default: the newest)."""
    with _sqlite_file_lock(db):
        _upgrade(db, revision)


@contextmanager
def _sqlite_file_lock(db: Database) -> Iterator[None]:
    """Two processes starting at once on one SQLite file take turns through the migrations
    (the second then finds nothing to do): an exclusive lock on a file beside the database.
    PostgreSQL takes an advisory lock instead (in `_upgrade`)."""
    database = sa.make_url(db.url).database if db.is_sqlite else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _upgrade(db: Database, revision: str) -> None:
    from alembic import command

    cfg = alembic_config(db)
    with db.engine.connect() as conn:
        if db.is_postgres:
            # Two nodes starting at once must not race each other through the migrations.
            conn.exec_driver_sql("SELECT pg_advisory_lock(7427827501)")
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()
        finally:
            if db.is_postgres:
                conn.exec_driver_sql("SELECT pg_advisory_unlock(7427827501)")
                conn.commit()


def upgrade_if_needed(db: Database) -> bool:
    """Upgrade to the newest revision unless the database is already there; True if it
    ran the migrations (a quick look at alembic_version otherwise)."""
    if stamped_revisions(db) == shipped_heads():
        return False
    upgrade(db)
    return True


def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: Database) -> str | None:
    """The newest revision recapd ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(db)).get_current_head()


def stamped_revisions(db: Database) -> frozenset[str]:
    """The revisions recorded in the database's alembic_version (none for an empty one)."""
    with db.engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return frozenset()
        return frozenset(
            r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")
        )


@cache
def shipped_heads() -> frozenset[str]:
    """The newest revisions among the migration files (those no other one revises), read
    from the files' `revision` and `down_revision` assignments."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in _VERSIONS.glob("*.py"):
        values = _assignments(path, ("revision", "down_revision"))
        revision = values.get("revision")
        if not isinstance(revision, str):
            continue
        revisions.add(revision)
        down = values.get("down_revision")
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):
            parents.update(str(d) for d in down)
    return frozenset(revisions - parents)


def _assignments(path: Path, names: tuple[str, ...]) -> dict[str, object]:
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in names:
            found[target.id] = ast.literal_eval(value)
    return found
