"""SQL for server-wide secrets: made once by whichever node needs one first, then shared."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recapd.store.database import Database
from recapd.store.tables import system_secrets

t = system_secrets


class SecretStore:
    """Named secrets that every node of a cluster reads alike."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get_or_create(
        self, name: str, candidate: str, now_ms: int, *, conn: Connection | None = None
    ) -> str:
        """The secret `name`; stored as `candidate` when there was none. Concurrent first
        callers on several nodes all get the one value that won the insert."""
        insert = (
            self._db.insert(t)
            .values(name=name, value=candidate, create_at=now_ms)
            .on_conflict_do_nothing(index_elements=[t.c.name])
        )
        with self._db.transaction(conn) as c:
            c.execute(insert)
            return str(c.execute(sa.select(t.c.value).where(t.c.name == name)).scalar_one())

    def get(self, name: str, *, conn: Connection | None = None) -> str | None:
        """The secret `name`, or None when none was made yet."""
        with self._db.transaction(conn) as c:
            value = c.execute(sa.select(t.c.value).where(t.c.name == name)).scalar()
        return None if value is None else str(value)
