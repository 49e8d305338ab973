"""SQL for personal access tokens (only their SHA-256 is stored) and the roles of users."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recapd.model.ids import new_id
from recapd.store.database import Database
from recapd.store.tables import access_tokens, user_roles, users, web_sessions

SYSTEM_ADMIN = "system_admin"


def hash_token(plaintext: str) -> str:
    """The stored form of a token: its SHA-256 in hex."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


@dataclass(frozen=True)
class AccessToken:
    """A token as stored (never with its plaintext)."""

    id: str
    user_id: str
    token_hash: str
    description: str
    create_at: int
    last_used_at: int = 0
    delete_at: int = 0


@dataclass(frozen=True)
class UserAccess:
    """A user as `recapd users list` shows them."""

    id: str
    username: str
    display_name: str
    roles: str
    tokens: int


class TokenStore:
    """Personal access tokens and user roles."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self, user_id: str, description: str, now: int, *, conn: Connection | None = None
    ) -> tuple[str, AccessToken]:
        """A new token for the user: (the plaintext, shown once; the stored row)."""
        plaintext = secrets.token_urlsafe(32)
        row = AccessToken(
            id=new_id(),
            user_id=user_id,
            token_hash=hash_token(plaintext),
            description=description,
            create_at=now,
        )
        with self._db.transaction(conn) as c:
            c.execute(sa.insert(access_tokens).values(**row.__dict__))
        return plaintext, row

    def lookup(self, plaintext: str, now: int = 0, *, conn: Connection | None = None) -> str | None:
        """The user id of a live token, or None; records its use when `now` is given."""
        t = access_tokens
        with self._db.transaction(conn) as c:
            found = c.execute(
                sa.select(t.c.id, t.c.user_id).where(
                    t.c.token_hash == hash_token(plaintext), t.c.delete_at == 0
                )
            ).first()
            if found is None:
                return None
            if now:
                c.execute(sa.update(t).where(t.c.id == found.id).values(last_used_at=now))
            return str(found.user_id)

    def list_for_user(self, user_id: str, *, conn: Connection | None = None) -> list[AccessToken]:
        """The user's live tokens, oldest first."""
        t = access_tokens
        with self._db.transaction(conn) as c:
            rows = c.execute(
                sa.select(t)
                .where(t.c.user_id == user_id, t.c.delete_at == 0)
                .order_by(t.c.create_at, t.c.id)
            ).all()
        return [AccessToken(**row._mapping) for row in rows]

    def revoke(self, token_id: str, now: int, *, conn: Connection | None = None) -> bool:
        """Soft delete a token and end the web sessions signed in with it; False when it was
        not live."""
        t = access_tokens
        with self._db.transaction(conn) as c:
            result = c.execute(
                sa.update(t).where(t.c.id == token_id, t.c.delete_at == 0).values(delete_at=now)
            )
            c.execute(sa.delete(web_sessions).where(web_sessions.c.token_id == token_id))
        return result.rowcount > 0

    def set_roles(self, user_id: str, roles: str, *, conn: Connection | None = None) -> None:
        """Set the user's roles ("system_admin" or "")."""
        stmt = self._db.insert(user_roles).values(user_id=user_id, roles=roles)
        stmt = stmt.on_conflict_do_update(index_elements=["user_id"], set_={"roles": roles})
        with self._db.transaction(conn) as c:
            c.execute(stmt)

    def get_roles(self, user_id: str, *, conn: Connection | None = None) -> str:
        """The user's roles; "" when none were set."""
        with self._db.transaction(conn) as c:
            roles = c.execute(
                sa.select(user_roles.c.roles).where(user_roles.c.user_id == user_id)
            ).scalar()
        return str(roles or "")

    def is_admin(self, user_id: str, *, conn: Connection | None = None) -> bool:
        """True for a system administrator."""
        return SYSTEM_ADMIN in self.get_roles(user_id, conn=conn).split()

    def list_users(self, *, conn: Connection | None = None) -> list[UserAccess]:
        """Every non-bot workspace user with their roles and live token count, by username."""
        u, r, t = users, user_roles, access_tokens
        tokens = (
            sa.select(sa.func.count())
            .where(t.c.user_id == u.c.id, t.c.delete_at == 0)
            .scalar_subquery()
        )
        query = (
            sa.select(u.c.id, u.c.username, u.c.display_name, r.c.roles, tokens.label("tokens"))
            .select_from(u.outerjoin(r, r.c.user_id == u.c.id))
            .where(u.c.is_bot.is_(False))
            .order_by(u.c.username)
        )
        with self._db.transaction(conn) as c:
            rows = c.execute(query).all()
        return [
            UserAccess(row.id, row.username, row.display_name, row.roles or "", int(row.tokens))
            for row in rows
        ]
