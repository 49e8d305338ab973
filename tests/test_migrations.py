"""The migrations build exactly the schema tables.py declares, on both engines."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from recapd.store import migrate
from recapd.store.database import Database
from recapd.store.tables import metadata


def _index_names(db: Database) -> set[str]:
    insp = sa.inspect(db.engine)
    return {
        ix["name"] for t in metadata.sorted_tables for ix in insp.get_indexes(t.name) if ix["name"]
    }


def test_migrated_schema_matches_tables(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
        declared = {ix.name for t in metadata.sorted_tables for ix in t.indexes}
        assert declared <= _index_names(db)
        assert migrate.current_revision(db) == migrate.head_revision(db)
    finally:
        db.dispose()


def test_upgrade_is_idempotent_and_downgrade_works(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        assert migrate.current_revision(db) is None
        migrate.upgrade(db)
        migrate.upgrade(db)
        assert migrate.current_revision(db) == migrate.head_revision(db)
        with db.engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()
        assert mode == "wal"
        cfg = migrate.alembic_config(db)
        with db.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
            conn.commit()
        assert migrate.current_revision(db) is None
        assert set(sa.inspect(db.engine).get_table_names()) == {"alembic_version"}
        migrate.upgrade(db)
        assert migrate.current_revision(db) == migrate.head_revision(db)
    finally:
        db.dispose()


def test_upgrade_if_needed_runs_the_migrations_only_when_behind(
    db_url: str, tmp_path: Path
) -> None:
    migrated = Database(db_url)
    fresh = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        # The files read without Alembic name the head Alembic finds.
        assert migrate.shipped_heads() == {migrate.head_revision(migrated)}
        assert migrate.stamped_revisions(migrated) == migrate.shipped_heads()
        assert migrate.upgrade_if_needed(migrated) is False
        assert migrate.stamped_revisions(fresh) == frozenset()
        assert migrate.upgrade_if_needed(fresh) is True
        assert migrate.current_revision(fresh) == migrate.head_revision(fresh)
        assert migrate.upgrade_if_needed(fresh) is False
        cfg = migrate.alembic_config(fresh)
        with fresh.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "-1")
            conn.commit()
        assert migrate.upgrade_if_needed(fresh) is True  # one revision behind
        assert migrate.current_revision(fresh) == migrate.head_revision(fresh)
    finally:
        migrated.dispose()
        fresh.dispose()


def test_processes_starting_at_once_on_one_sqlite_file_all_migrate(tmp_path: Path) -> None:
    """`recapd serve` and `recapd worker` started together on a fresh file: each migrates
    or finds the work done, none fails on a table the other just made."""
    # Each process imports first, then waits for the same instant, so they really race.
    code = (
        "import sys, time; import alembic.command; from recapd.store.database import Database; "
        "from recapd.store.migrate import upgrade; "
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); upgrade(Database(sys.argv[1]))"
    )
    for attempt in range(2):
        url = f"sqlite:///{tmp_path / f'race{attempt}.db'}"
        start_at = str(time.time() + 3)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, url, start_at], stderr=subprocess.PIPE, text=True
            )
            for _ in range(3)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
