"""SQL for the part cache: stored stretch summaries, and the claim that makes one run in the
cluster compute each of them (see tables.part_cache)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recapd.store.database import Database
from recapd.store.tables import part_cache

t = part_cache

COMPUTING = "computing"
READY = "ready"


@dataclass(slots=True)
class CachedPart:
    """One row of the part cache."""

    cache_key: str
    channel_id: str
    status: str
    claim: str
    claimed_at: int
    expire_at: int
    result: dict[str, Any] | None
    prompt_tokens: int
    completion_tokens: int
    fingerprint: str


@dataclass(frozen=True, slots=True)
class PartMeta:
    """What a claimed row records besides its key: for operators and cleanup, and the
    fingerprint of its stretch with its place among the stretch's parts."""

    channel_id: str
    agent_id: str
    start_ms: int
    end_ms: int
    fingerprint: str = ""
    part: int = 1
    parts: int = 1


@dataclass(slots=True)
class FingerprintedPart:
    """A ready, live row found by its stretch's fingerprint."""

    cache_key: str
    fingerprint: str
    part: int
    parts: int
    expire_at: int
    result: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int


class PartCacheStore:
    """Rows of the part cache; every change is a single conditional statement."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, cache_key: str, *, conn: Connection | None = None) -> CachedPart | None:
        """The row of `cache_key`, if any (expired or not)."""
        q = sa.select(
            t.c.cache_key,
            t.c.channel_id,
            t.c.status,
            t.c.claim,
            t.c.claimed_at,
            t.c.expire_at,
            t.c.result,
            t.c.prompt_tokens,
            t.c.completion_tokens,
            t.c.fingerprint,
        ).where(t.c.cache_key == cache_key)
        # A read transaction: on SQLite it neither takes nor waits for the write lock.
        with self._db.read(conn) as c:
            row = c.execute(q).first()
        if row is None:
            return None
        return CachedPart(**row._mapping)

    def by_fingerprints(
        self,
        channel_id: str,
        fingerprints: Sequence[str],
        now_ms: int,
        *,
        conn: Connection | None = None,
    ) -> list[FingerprintedPart]:
        """The ready, unexpired rows of the channel whose stretch has one of `fingerprints`."""
        if not fingerprints:
            return []
        q = sa.select(
            t.c.cache_key,
            t.c.fingerprint,
            t.c.part,
            t.c.parts,
            t.c.expire_at,
            t.c.result,
            t.c.prompt_tokens,
            t.c.completion_tokens,
        ).where(
            t.c.fingerprint.in_(sorted(set(fingerprints))),
            t.c.channel_id == channel_id,
            t.c.status == READY,
            t.c.expire_at > now_ms,
        )
        with self._db.read(conn) as c:
            return [FingerprintedPart(**r._mapping) for r in c.execute(q) if r.result is not None]

    def set_fingerprint(
        self, cache_key: str, fingerprint: str, *, conn: Connection | None = None
    ) -> None:
        """Name the stretch fingerprint a ready row is found by (a row made before the
        fingerprint existed, or under another one with the same content)."""
        q = (
            t.update()
            .where(t.c.cache_key == cache_key, t.c.status == READY)
            .values(fingerprint=fingerprint)
        )
        with self._db.one_statement(conn) as c:
            c.execute(q)

    def claim(
        self,
        cache_key: str,
        meta: PartMeta,
        claim: str,
        now_ms: int,
        expire_at: int,
        *,
        conn: Connection | None = None,
    ) -> bool:
        """Insert the row as `computing` under `claim`; False when any row has the key (the
        database's unique key decides between concurrent claimers, on any node)."""
        insert = (
            self._db.insert(t)
            .values(
                cache_key=cache_key,
                channel_id=meta.channel_id,
                agent_id=meta.agent_id,
                start_ms=meta.start_ms,
                end_ms=meta.end_ms,
                fingerprint=meta.fingerprint,
                part=meta.part,
                parts=meta.parts,
                status=COMPUTING,
                claim=claim,
                claimed_at=now_ms,
                create_at=now_ms,
                expire_at=expire_at,
            )
            .on_conflict_do_nothing(index_elements=[t.c.cache_key])
            # rowcount is not reliable for ON CONFLICT DO NOTHING on every driver; RETURNING is.
            .returning(t.c.cache_key)
        )
        with self._db.one_statement(conn) as c:
            return c.execute(insert).first() is not None

    def take_over(
        self,
        cache_key: str,
        claim: str,
        now_ms: int,
        expire_at: int,
        *,
        stale_before: int,
        fingerprint: str = "",
        conn: Connection | None = None,
    ) -> bool:
        """Claim a row whose computation was abandoned (claimed before `stale_before`) or
        whose entry expired; compare-and-set, so one taker wins."""
        q = (
            t.update()
            .where(
                t.c.cache_key == cache_key,
                sa.or_(
                    sa.and_(t.c.status == COMPUTING, t.c.claimed_at < stale_before),
                    sa.and_(t.c.status == READY, t.c.expire_at <= now_ms),
                ),
            )
            .values(
                status=COMPUTING,
                claim=claim,
                claimed_at=now_ms,
                result=None,
                expire_at=expire_at,
                fingerprint=fingerprint,
            )
        )
        with self._db.one_statement(conn) as c:
            return bool(c.execute(q).rowcount)

    def complete(
        self,
        cache_key: str,
        claim: str,
        result: dict[str, Any],
        tokens: tuple[int, int],
        now_ms: int,
        expire_at: int,
        *,
        conn: Connection | None = None,
    ) -> bool:
        """Store the computed summary; False when the claim was lost meanwhile (taken over
        or cleaned up): the caller keeps its result, the cache just does not get it."""
        q = (
            t.update()
            .where(t.c.cache_key == cache_key, t.c.claim == claim, t.c.status == COMPUTING)
            .values(
                status=READY,
                result=result,
                prompt_tokens=tokens[0],
                completion_tokens=tokens[1],
                create_at=now_ms,
                expire_at=expire_at,
            )
        )
        with self._db.one_statement(conn) as c:
            return bool(c.execute(q).rowcount)

    def release(self, cache_key: str, claim: str, *, conn: Connection | None = None) -> None:
        """Give up a claim whose computation failed, so a waiting run may try at once."""
        q = t.delete().where(
            t.c.cache_key == cache_key, t.c.claim == claim, t.c.status == COMPUTING
        )
        with self._db.one_statement(conn) as c:
            c.execute(q)

    def delete_expired(self, now_ms: int, limit: int, *, conn: Connection | None = None) -> int:
        """Delete up to `limit` rows expired at `now_ms`; return how many."""
        keys = sa.select(t.c.cache_key).where(t.c.expire_at <= now_ms).limit(limit)
        q = t.delete().where(t.c.cache_key.in_(keys.scalar_subquery()))
        with self._db.transaction(conn) as c:
            return int(c.execute(q).rowcount)

    def count(self, *, conn: Connection | None = None) -> int:
        """Rows in the cache (tests, operators)."""
        with self._db.transaction(conn) as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
