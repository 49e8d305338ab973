"""The migrations build exactly the schema tables.py declares, on both engines."""

from __future__ import annotations

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
