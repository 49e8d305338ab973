"""SQL for scheduled recaps: save under the per-user limit, due lookups, execution bookkeeping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recapd.model.app_error import AppError
from recapd.model.scheduled_recap import ScheduledRecap
from recapd.store.database import Database
from recapd.store.tables import SCHEDULE_LIVE, scheduled_recaps

t = scheduled_recaps
DueCursor = tuple[int, str]


def _row_to_model(row: sa.Row[Any]) -> ScheduledRecap:
    m = row._mapping
    return ScheduledRecap(
        id=m["id"],
        user_id=m["user_id"],
        title=m["title"],
        days_of_week=m["days_of_week"],
        time_of_day=m["time_of_day"],
        timezone=m["timezone"],
        time_period=m["time_period"],
        next_run_at=m["next_run_at"],
        last_run_at=m["last_run_at"],
        run_count=m["run_count"],
        channel_mode=m["channel_mode"],
        channel_ids=list(m["channel_ids"]),
        custom_instructions=m["custom_instructions"],
        agent_id=m["agent_id"],
        is_recurring=bool(m["is_recurring"]),
        enabled=bool(m["enabled"]),
        create_at=m["create_at"],
        update_at=m["update_at"],
        delete_at=m["delete_at"],
    )


def _model_to_row(sr: ScheduledRecap) -> dict[str, Any]:
    return {
        "id": sr.id,
        "user_id": sr.user_id,
        "title": sr.title,
        "days_of_week": sr.days_of_week,
        "time_of_day": sr.time_of_day,
        "timezone": sr.timezone,
        "time_period": str(sr.time_period),
        "next_run_at": sr.next_run_at,
        "last_run_at": sr.last_run_at,
        "run_count": sr.run_count,
        "channel_mode": str(sr.channel_mode),
        "channel_ids": list(sr.channel_ids),
        "custom_instructions": sr.custom_instructions,
        "agent_id": sr.agent_id,
        "is_recurring": sr.is_recurring,
        "enabled": sr.enabled,
        "create_at": sr.create_at,
        "update_at": sr.update_at,
        "delete_at": sr.delete_at,
    }


def _not_found(sr_id: str) -> AppError:
    return AppError(
        "store.sql_scheduled_recap.get.not_found.app_error",
        "scheduled recap not found",
        detailed_error=f"id={sr_id}",
        status_code=404,
    )


def _limit_reached(limit: int) -> AppError:
    return AppError(
        "app.scheduled_recap.limit_reached.app_error",
        f"you already have the maximum of {limit} active scheduled recaps",
        detailed_error=f"limit={limit}",
        status_code=400,
    )


class ScheduledRecapStore:
    """Scheduled recaps in the database. Methods take an optional connection to join the
    caller's transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, sr: ScheduledRecap, *, conn: Connection | None = None) -> ScheduledRecap:
        """Insert a new scheduled recap (already validated and pre-saved)."""
        with self._db.transaction(conn) as c:
            c.execute(t.insert().values(_model_to_row(sr)))
        return sr

    def _count_active(self, c: Connection, user_id: str) -> int:
        q = (
            sa.select(sa.func.count())
            .select_from(t)
            .where(t.c.user_id == user_id, t.c.enabled == sa.true(), t.c.delete_at == 0)
        )
        return int(c.execute(q).scalar_one())

    def save_if_under_limit(
        self, sr: ScheduledRecap, limit: int, *, conn: Connection | None = None
    ) -> ScheduledRecap:
        """Insert unless the user already has `limit` enabled, live schedules (-1: no limit).

        Holds under concurrent creators: the check and the insert run under a per-user lock.
        """
        with self._db.transaction(conn) as c:
            if limit >= 0 and sr.enabled:
                self._db.lock(c, f"scheduled_recaps:{sr.user_id}")
                if self._count_active(c, sr.user_id) >= limit:
                    raise _limit_reached(limit)
            c.execute(t.insert().values(_model_to_row(sr)))
        return sr

    def get(
        self, sr_id: str, *, include_deleted: bool = False, conn: Connection | None = None
    ) -> ScheduledRecap:
        """The scheduled recap with this id; AppError 404 when missing or deleted."""
        q = sa.select(t).where(t.c.id == sr_id)
        if not include_deleted:
            q = q.where(t.c.delete_at == 0)
        with self._db.transaction(conn) as c:
            row = c.execute(q).first()
        if row is None:
            raise _not_found(sr_id)
        return _row_to_model(row)

    def list_for_user(
        self, user_id: str, page: int = 0, per_page: int = 60, *, conn: Connection | None = None
    ) -> list[ScheduledRecap]:
        """The user's live scheduled recaps, newest first."""
        q = (
            sa.select(t)
            .where(t.c.user_id == user_id, t.c.delete_at == 0)
            .order_by(t.c.create_at.desc(), t.c.id.desc())
            .limit(per_page)
            .offset(page * per_page)
        )
        with self._db.transaction(conn) as c:
            return [_row_to_model(r) for r in c.execute(q)]

    def update(
        self, sr: ScheduledRecap, expected_update_at: int, *, conn: Connection | None = None
    ) -> ScheduledRecap:
        """Write the editable fields if nobody changed the row since `expected_update_at`.

        A concurrent change makes this fail with a 409 instead of silently losing it.
        The new update_at always moves forward, even within one millisecond.
        """
        new_update_at = max(sr.update_at, expected_update_at + 1)
        values = _model_to_row(sr)
        for key in ("id", "user_id", "create_at", "delete_at", "last_run_at", "run_count"):
            values.pop(key)
        values["update_at"] = new_update_at
        q = (
            t.update()
            .where(t.c.id == sr.id, t.c.delete_at == 0, t.c.update_at == expected_update_at)
            .values(values)
        )
        with self._db.transaction(conn) as c:
            if c.execute(q).rowcount == 0:
                current = c.execute(
                    sa.select(t.c.update_at).where(t.c.id == sr.id, t.c.delete_at == 0)
                ).first()
                if current is None:
                    raise _not_found(sr.id)
                raise AppError(
                    "store.sql_scheduled_recap.update.conflict.app_error",
                    "the scheduled recap was changed by someone else; reload it and try again",
                    detailed_error=f"expected update_at={expected_update_at} found={current[0]}",
                    status_code=409,
                )
            return self.get(sr.id, conn=c)

    def set_enabled(
        self,
        sr_id: str,
        enabled: bool,
        now_ms: int,
        *,
        next_run_at: int | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Pause or resume without a limit check (pausing never needs one)."""
        values: dict[str, Any] = {"enabled": enabled, "update_at": now_ms}
        if next_run_at is not None:
            values["next_run_at"] = next_run_at
        with self._db.transaction(conn) as c:
            res = c.execute(t.update().where(t.c.id == sr_id, t.c.delete_at == 0).values(values))
            if res.rowcount == 0:
                raise _not_found(sr_id)

    def enable_if_under_limit(
        self,
        sr_id: str,
        limit: int,
        next_run_at: int,
        now_ms: int,
        *,
        conn: Connection | None = None,
    ) -> ScheduledRecap:
        """Resume a schedule if that keeps its user within `limit` enabled schedules (-1: none).

        The original's resume skips this check; recapd holds the limit under concurrency too.
        """
        with self._db.transaction(conn) as c:
            sr = self.get(sr_id, conn=c)
            if not sr.enabled:
                if limit >= 0:
                    self._db.lock(c, f"scheduled_recaps:{sr.user_id}")
                    if self._count_active(c, sr.user_id) >= limit:
                        raise _limit_reached(limit)
                self.set_enabled(sr_id, True, now_ms, next_run_at=next_run_at, conn=c)
            return self.get(sr_id, conn=c)

    def delete(self, sr_id: str, now_ms: int, *, conn: Connection | None = None) -> None:
        """Soft delete: the row stays, with delete_at set."""
        q = (
            t.update()
            .where(t.c.id == sr_id, t.c.delete_at == 0)
            .values(delete_at=now_ms, update_at=now_ms)
        )
        with self._db.transaction(conn) as c:
            if c.execute(q).rowcount == 0:
                raise _not_found(sr_id)

    def get_due_before(
        self,
        now_ms: int,
        limit: int,
        cursor: DueCursor | None = None,
        *,
        conn: Connection | None = None,
    ) -> list[ScheduledRecap]:
        """Enabled, live schedules with next_run_at <= now, in (next_run_at, id) order.

        `cursor` is the (next_run_at, id) of the last row of the previous batch (keyset paging).
        """
        q = sa.select(t).where(SCHEDULE_LIVE, t.c.next_run_at <= now_ms)
        if cursor is not None:
            q = q.where(sa.tuple_(t.c.next_run_at, t.c.id) > sa.tuple_(*cursor))
        q = q.order_by(t.c.next_run_at, t.c.id).limit(limit)
        with self._db.transaction(conn) as c:
            return [_row_to_model(r) for r in c.execute(q)]

    def mark_executed(
        self,
        sr_id: str,
        last_run_at: int,
        next_run_at: int,
        *,
        conn: Connection | None = None,
    ) -> None:
        """Record a run: last_run_at, run_count + 1, and next_run_at (never moved backwards)."""
        q = (
            t.update()
            .where(t.c.id == sr_id)
            .values(
                last_run_at=last_run_at,
                run_count=t.c.run_count + 1,
                next_run_at=sa.case(
                    (t.c.next_run_at < next_run_at, next_run_at), else_=t.c.next_run_at
                ),
            )
        )
        with self._db.transaction(conn) as c:
            if c.execute(q).rowcount == 0:
                raise _not_found(sr_id)

    def count(self, *, conn: Connection | None = None) -> int:
        """All rows, deleted included (for status output)."""
        with self._db.transaction(conn) as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())

    def get_many(
        self, ids: Sequence[str], *, conn: Connection | None = None
    ) -> list[ScheduledRecap]:
        """Live schedules among `ids`, in no particular order."""
        if not ids:
            return []
        q = sa.select(t).where(t.c.id.in_(list(ids)), t.c.delete_at == 0)
        with self._db.transaction(conn) as c:
            return [_row_to_model(r) for r in c.execute(q)]
