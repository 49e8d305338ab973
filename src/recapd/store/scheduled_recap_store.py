"""SQL for scheduled recaps: save under the per-user limit, due lookups, execution bookkeeping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
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
        consecutive_failures=m["consecutive_failures"],
        pause_reason=m["pause_reason"],
        last_scheduled_for=m["last_scheduled_for"],
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
        "consecutive_failures": sr.consecutive_failures,
        "pause_reason": sr.pause_reason,
        "last_scheduled_for": sr.last_scheduled_for,
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
        for key in (
            "id",
            "user_id",
            "create_at",
            "delete_at",
            "last_run_at",
            "run_count",
            "consecutive_failures",
            "pause_reason",
            "last_scheduled_for",
        ):
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
        if enabled:  # resuming starts the failure count afresh
            values.update(consecutive_failures=0, pause_reason="")
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
        *,
        scheduled_for: int | None = None,
        failed: bool | None = None,
        conn: Connection | None = None,
    ) -> ScheduledRecap | None:
        """Record a run: last_run_at and run_count + 1. next_run_at is left alone: only the
        scheduler (and create, update, resume) sets it, so a run ending late can neither skip
        an occurrence due meanwhile nor undo an edit of the times made while it ran.

        With `scheduled_for`, an occurrence already recorded is not counted again (a retried
        job); with `failed`, the count of failed occurrences in a row goes up or back to 0.
        Returns the schedule after the change, or None when nothing changed.
        """
        values: dict[str, Any] = {"last_run_at": last_run_at, "run_count": t.c.run_count + 1}
        cond = [t.c.id == sr_id]
        if scheduled_for is not None:
            values["last_scheduled_for"] = scheduled_for
            cond.append(t.c.last_scheduled_for != scheduled_for)
        if failed is not None:
            values["consecutive_failures"] = t.c.consecutive_failures + 1 if failed else 0
        with self._db.transaction(conn) as c:
            if c.execute(t.update().where(*cond).values(values)).rowcount == 0:
                self.get(sr_id, include_deleted=True, conn=c)  # 404 when it does not exist
                return None
            return self.get(sr_id, include_deleted=True, conn=c)

    def pause(
        self, sr_id: str, reason: str, now_ms: int, *, conn: Connection | None = None
    ) -> None:
        """Disable a schedule and record why (it paused itself after repeated failures)."""
        q = (
            t.update()
            .where(t.c.id == sr_id, t.c.enabled == sa.true())
            .values(enabled=False, pause_reason=reason, update_at=now_ms)
        )
        with self._db.transaction(conn) as c:
            c.execute(q)

    def advance(
        self, moves: Sequence[tuple[str, int, int]], *, conn: Connection | None = None
    ) -> set[str]:
        """Compare-and-set next_run_at for each (id, expected, new); return the ids moved.

        A schedule whose next_run_at changed meanwhile (another leader, an edit), or that was
        paused or deleted meanwhile, is left alone, so one occurrence is never enqueued twice by
        two schedulers.
        """
        if not moves:
            return set()
        with self._db.transaction(conn) as c:
            if self._db.is_postgres:
                q = sa.text(
                    "UPDATE scheduled_recaps AS s SET next_run_at = d.new "
                    "FROM unnest(:ids, :olds, :news) AS d(id, old, new) "
                    "WHERE s.id = d.id AND s.next_run_at = d.old "
                    "AND s.enabled AND s.delete_at = 0 RETURNING s.id"
                ).bindparams(
                    sa.bindparam("ids", type_=postgresql.ARRAY(sa.String)),
                    sa.bindparam("olds", type_=postgresql.ARRAY(sa.BigInteger)),
                    sa.bindparam("news", type_=postgresql.ARRAY(sa.BigInteger)),
                )
                rows = c.execute(
                    q,
                    {
                        "ids": [m[0] for m in moves],
                        "olds": [m[1] for m in moves],
                        "news": [m[2] for m in moves],
                    },
                )
                return {r[0] for r in rows}
            moved: set[str] = set()
            upd = (
                t.update()
                .where(
                    t.c.id == sa.bindparam("b_id"),
                    t.c.next_run_at == sa.bindparam("b_old"),
                    SCHEDULE_LIVE,
                )
                .values(next_run_at=sa.bindparam("b_new"))
            )
            for sr_id, old, new in moves:
                if c.execute(upd, {"b_id": sr_id, "b_old": old, "b_new": new}).rowcount:
                    moved.add(sr_id)
            return moved

    def earliest_next_run_at(self, *, conn: Connection | None = None) -> int | None:
        """The next time any live schedule falls due (the first entry of the due index)."""
        q = sa.select(t.c.next_run_at).where(SCHEDULE_LIVE).order_by(t.c.next_run_at).limit(1)
        with self._db.transaction(conn) as c:
            row = c.execute(q).first()
        return int(row[0]) if row else None

    def count_due(self, now_ms: int, *, conn: Connection | None = None) -> int:
        """Live schedules due at `now_ms` and not yet enqueued (the due backlog)."""
        q = (
            sa.select(sa.func.count())
            .select_from(t)
            .where(SCHEDULE_LIVE, t.c.next_run_at <= now_ms)
        )
        with self._db.transaction(conn) as c:
            return int(c.execute(q).scalar_one())

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
