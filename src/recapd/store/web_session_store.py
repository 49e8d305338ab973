"""SQL for web sessions: one row per sign-in, found by the SHA-256 of the id in its cookie."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recapd.store.database import Database
from recapd.store.tables import web_sessions

t = web_sessions


def hash_session_id(plaintext: str) -> str:
    """The stored form of a session id: its SHA-256 in hex."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


@dataclass(frozen=True)
class WebSession:
    """A live sign-in."""

    user_id: str
    token_id: str
    create_at: int
    expires_at: int


class WebSessionStore:
    """Sign-ins of the web pages: made at sign-in, ended by sign-out, revocation or age."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        user_id: str,
        token_id: str,
        now: int,
        expires_at: int,
        *,
        conn: Connection | None = None,
    ) -> str:
        """A new session; its id (for the cookie, never stored as such)."""
        plaintext = secrets.token_urlsafe(32)
        row = {
            "id_hash": hash_session_id(plaintext),
            "user_id": user_id,
            "token_id": token_id,
            "create_at": now,
            "expires_at": expires_at,
        }
        with self._db.transaction(conn) as c:
            c.execute(sa.insert(t).values(**row))
        return plaintext

    def get(self, plaintext: str, now: int, *, conn: Connection | None = None) -> WebSession | None:
        """The session of the id while it lasts, else None."""
        query = sa.select(t.c.user_id, t.c.token_id, t.c.create_at, t.c.expires_at).where(
            t.c.id_hash == hash_session_id(plaintext), t.c.expires_at > now
        )
        with self._db.transaction(conn) as c:
            row = c.execute(query).first()
        return None if row is None else WebSession(**row._mapping)

    def end(self, plaintext: str, *, conn: Connection | None = None) -> bool:
        """Sign out: delete the session; False when there was none."""
        with self._db.transaction(conn) as c:
            result = c.execute(sa.delete(t).where(t.c.id_hash == hash_session_id(plaintext)))
        return result.rowcount > 0

    def delete_expired(self, now: int, limit: int, *, conn: Connection | None = None) -> int:
        """Delete up to `limit` expired sessions; how many."""
        expired = sa.select(t.c.id_hash).where(t.c.expires_at <= now).limit(limit)
        with self._db.transaction(conn) as c:
            ids = list(c.execute(expired).scalars())
            if not ids:
                return 0
            return int(c.execute(sa.delete(t).where(t.c.id_hash.in_(ids))).rowcount)
