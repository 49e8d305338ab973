"""SQL for delivery: each user's outgoing webhook, how its last delivery went, and which
deliveries its receivers accepted."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recapd.store.database import Database
from recapd.store.tables import user_webhooks, webhook_deliveries

t = user_webhooks
td = webhook_deliveries

# How long an accepted delivery's key is kept: far longer than any delivery job can still run
# (its attempts and backoffs take hours at most), so a late retry still finds it.
DELIVERED_KEYS_KEPT_MS = 30 * 86_400_000


@dataclass(frozen=True)
class UserWebhook:
    """A user's outgoing webhook: where finished recaps are announced, and its last outcome."""

    user_id: str
    url: str
    create_at: int
    update_at: int
    last_delivery_key: str = ""
    last_delivery_at: int = 0
    last_error: str = ""
    last_error_at: int = 0


class DeliveryStore:
    """Per-user delivery settings."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get_webhook(self, user_id: str, *, conn: Connection | None = None) -> UserWebhook | None:
        """The user's webhook, or None when they have none."""
        with self._db.transaction(conn) as c:
            row = c.execute(sa.select(t).where(t.c.user_id == user_id)).first()
        return None if row is None else UserWebhook(**row._mapping)

    def set_webhook(
        self, user_id: str, url: str, now: int, *, conn: Connection | None = None
    ) -> UserWebhook:
        """Create or replace the user's webhook; a replace keeps create_at and forgets the
        old URL's last error."""
        stmt = self._db.insert(t).values(user_id=user_id, url=url, create_at=now, update_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id"],
            set_={"url": url, "update_at": now, "last_error": "", "last_error_at": 0},
        )
        with self._db.transaction(conn) as c:
            c.execute(stmt)
            found = self.get_webhook(user_id, conn=c)
        assert found is not None  # written in this transaction
        return found

    def delete_webhook(self, user_id: str, *, conn: Connection | None = None) -> bool:
        """Remove the user's webhook; False when there was none."""
        with self._db.transaction(conn) as c:
            result = c.execute(sa.delete(t).where(t.c.user_id == user_id))
        return result.rowcount > 0

    def was_delivered(self, key: str, *, conn: Connection | None = None) -> bool:
        """True when a receiver accepted the delivery with this job key."""
        with self._db.transaction(conn) as c:
            q = sa.select(td.c.delivery_key).where(td.c.delivery_key == key)
            return c.execute(q).first() is not None

    def record_delivered(
        self, user_id: str, url: str, key: str, now: int, *, conn: Connection | None = None
    ) -> None:
        """Note a delivery the receiver accepted: its key for good (pruned after
        DELIVERED_KEYS_KEPT_MS), and on the webhook row while it still has `url`."""
        keep = self._db.insert(td).values(delivery_key=key, user_id=user_id, delivered_at=now)
        q = (
            t.update()
            .where(t.c.user_id == user_id, t.c.url == url)
            .values(last_delivery_key=key, last_delivery_at=now, last_error="", last_error_at=0)
        )
        prune = sa.delete(td).where(td.c.delivered_at < now - DELIVERED_KEYS_KEPT_MS)
        with self._db.transaction(conn) as c:
            c.execute(keep.on_conflict_do_nothing(index_elements=["delivery_key"]))
            c.execute(q)
            c.execute(prune)

    def record_error(
        self, user_id: str, url: str, error: str, now: int, *, conn: Connection | None = None
    ) -> None:
        """Note a delivery that failed for good (only while the webhook still has `url`)."""
        q = (
            t.update()
            .where(t.c.user_id == user_id, t.c.url == url)
            .values(last_error=error, last_error_at=now)
        )
        with self._db.transaction(conn) as c:
            c.execute(q)
