"""Store: the one object the layers above use to reach the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection

from recapd.store.database import Database
from recapd.store.delivery_store import DeliveryStore
from recapd.store.job_store import JobStore
from recapd.store.lease_store import LeaseStore
from recapd.store.part_cache_store import PartCacheStore
from recapd.store.recap_store import RecapStore
from recapd.store.scheduled_recap_store import ScheduledRecapStore
from recapd.store.secret_store import SecretStore
from recapd.store.token_store import TokenStore
from recapd.store.web_session_store import WebSessionStore
from recapd.store.workspace_store import WorkspaceStore


class Store:
    """One sub-store per aggregate over a shared Database.

    `with store.transaction() as conn:` lets a caller make several store calls commit together.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.scheduled_recaps = ScheduledRecapStore(db)
        self.recaps = RecapStore(db)
        self.jobs = JobStore(db)
        self.leases = LeaseStore(db)
        self.workspace = WorkspaceStore(db)
        self.tokens = TokenStore(db)
        self.delivery = DeliveryStore(db)
        self.secrets = SecretStore(db)
        self.web_sessions = WebSessionStore(db)
        self.part_cache = PartCacheStore(db)

    @classmethod
    def open(cls, url: str) -> Store:
        """A store on the database at `url` (sqlite:///PATH or postgresql://...)."""
        return cls(Database(url))

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction to pass as `conn=` to several store calls."""
        with self.db.transaction() as conn:
            yield conn

    def close(self) -> None:
        """Release the connection pool."""
        self.db.dispose()
