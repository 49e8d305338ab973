"""Running the Alembic migrations from code (`recapd migrate`, and on start)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from recapd.store.database import Database


def alembic_config(db: Database) -> Config:
    """An Alembic Config that finds recapd's migrations inside the installed package."""
    cfg = Config()
    cfg.set_main_option("script_location", "recapd.store:migrations")
    cfg.attributes["database"] = db
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema up to `revision` (default: the newest)."""
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


def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: Database) -> str | None:
    """The newest revision recapd ships."""
    return ScriptDirectory.from_config(alembic_config(db)).get_current_head()
