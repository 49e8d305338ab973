"""SQL for recaps and their per-channel results."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recapd.model.app_error import AppError
from recapd.model.recap import (
    COOLDOWN_ACTIVE,
    MAX_RECAPS_REACHED,
    ActionItem,
    Highlight,
    Recap,
    RecapChannel,
    RecapStatus,
)
from recapd.store.database import Database
from recapd.store.tables import RECAP_IS_SCHEDULED, recap_channels, recaps

t = recaps
tc = recap_channels

_RECAP_FIELDS = (
    "id",
    "user_id",
    "title",
    "create_at",
    "update_at",
    "delete_at",
    "read_at",
    "viewed_at",
    "total_message_count",
    "status",
    "bot_id",
    "scheduled_recap_id",
    "scheduled_for",
    "skip_reason",
    "error",
    "channel_ids",
    "time_period",
    "custom_instructions",
    "prompt_tokens",
    "completion_tokens",
    "finish_at",
    "agent_calls",
    "parts_total",
    "parts_reused",
)


def _row_to_recap(row: sa.Row[Any]) -> Recap:
    m = row._mapping
    recap = Recap(**{f: m[f] for f in _RECAP_FIELDS})
    recap.channel_ids = list(recap.channel_ids)
    return recap


def _recap_to_row(r: Recap) -> dict[str, Any]:
    row = {f: getattr(r, f) for f in _RECAP_FIELDS}
    row["status"] = str(r.status)
    row["channel_ids"] = list(r.channel_ids)
    return row


def _row_to_channel(row: sa.Row[Any]) -> RecapChannel:
    m = row._mapping
    return RecapChannel(
        id=m["id"],
        recap_id=m["recap_id"],
        channel_id=m["channel_id"],
        channel_name=m["channel_name"],
        highlights=[Highlight.from_dict(h) for h in m["highlights"]],
        action_items=[ActionItem.from_dict(a) for a in m["action_items"]],
        source_post_ids=list(m["source_post_ids"]),
        status=m["status"],
        error=m["error"],
        create_at=m["create_at"],
        open_questions=[Highlight.from_dict(q) for q in m["open_questions"]],
        notice=m["notice"],
    )


def _channel_to_row(rc: RecapChannel) -> dict[str, Any]:
    return {
        "id": rc.id,
        "recap_id": rc.recap_id,
        "channel_id": rc.channel_id,
        "channel_name": rc.channel_name,
        "highlights": [h.to_dict() for h in rc.highlights],
        "action_items": [a.to_dict() for a in rc.action_items],
        "source_post_ids": list(rc.source_post_ids),
        "status": str(rc.status),
        "error": rc.error,
        "create_at": rc.create_at,
        "open_questions": [q.to_dict() for q in rc.open_questions],
        "notice": rc.notice,
    }


def _not_found(recap_id: str) -> AppError:
    return AppError(
        "store.sql_recap.get.not_found.app_error",
        "recap not found",
        detailed_error=f"id={recap_id}",
        status_code=404,
    )


class RecapStore:
    """Recaps and recap channels in the database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, recap: Recap, *, conn: Connection | None = None) -> Recap:
        """Insert a recap and its channels. A second recap for one occurrence is refused (409)."""
        with self._db.transaction(conn) as c:
            try:
                with c.begin_nested():
                    c.execute(t.insert().values(_recap_to_row(recap)))
            except sa.exc.IntegrityError as exc:
                raise AppError(
                    "store.sql_recap.save.occurrence_exists.app_error",
                    "a recap already exists for this scheduled occurrence",
                    detailed_error=f"scheduled_recap_id={recap.scheduled_recap_id} "
                    f"scheduled_for={recap.scheduled_for}",
                    status_code=409,
                ) from exc
            for ch in recap.channels:
                self.save_channel(ch, conn=c)
        return recap

    def save_outcome_once(self, recap: Recap, *, conn: Connection | None = None) -> bool:
        """Insert the outcome of an occurrence unless one exists; True when this call did."""
        return self.save_outcomes_once([recap], conn=conn) == 1

    def save_outcomes_once(self, recaps: Sequence[Recap], *, conn: Connection | None = None) -> int:
        """Insert each occurrence's outcome unless it has one, in one statement; how many were."""
        if not recaps:
            return 0
        ins = (
            self._db.insert(t)
            .on_conflict_do_nothing(
                index_elements=[t.c.scheduled_recap_id, t.c.scheduled_for],
                index_where=RECAP_IS_SCHEDULED,
            )
            .returning(t.c.id)
        )
        with self._db.transaction(conn) as c:
            return len(c.execute(ins, [_recap_to_row(r) for r in recaps]).all())

    def _count_today(self, c: Connection, user_id: str, start_ms: int, end_ms: int) -> int:
        # Skipped records are outcomes, not recaps: they do not use up the daily allowance.
        # Deleted recaps still count, or deleting would reset the limit.
        q = (
            sa.select(sa.func.count())
            .select_from(t)
            .where(
                t.c.user_id == user_id,
                t.c.create_at >= start_ms,
                t.c.create_at < end_ms,
                t.c.status != RecapStatus.SKIPPED.value,
            )
        )
        return int(c.execute(q).scalar_one())

    def count_for_day(
        self, user_id: str, day_start_ms: int, day_end_ms: int, *, conn: Connection | None = None
    ) -> int:
        """Recaps (not skipped) the user created in [day_start_ms, day_end_ms)."""
        with self._db.transaction(conn) as c:
            return self._count_today(c, user_id, day_start_ms, day_end_ms)

    def save_if_under_daily_limit(
        self,
        recap: Recap,
        limit: int,
        day_start_ms: int,
        day_end_ms: int,
        *,
        cooldown_ms: int = 0,
        now_ms: int = 0,
        conn: Connection | None = None,
    ) -> Recap:
        """Insert unless the user made `limit` recaps in the day [day_start_ms, day_end_ms),
        or (when `cooldown_ms` > 0) a manual recap less than `cooldown_ms` before `now_ms`.

        The day is the user's day in some zone; model.tz.local_day_bounds computes it. N
        concurrent creators never exceed the limit (per-user lock around check and insert).
        """
        with self._db.transaction(conn) as c:
            if limit >= 0 or cooldown_ms > 0:
                self._db.lock(c, f"recaps:{recap.user_id}")
            if cooldown_ms > 0:
                last = self._last_manual_create_at(c, recap.user_id)
                wait_ms = last + cooldown_ms - now_ms
                if last and wait_ms > 0:
                    raise AppError(
                        COOLDOWN_ACTIVE,
                        f"please wait {math.ceil(wait_ms / 60_000)} more minute(s) before "
                        "asking for another recap",
                        detailed_error=f"retry_after_ms={wait_ms}",
                        status_code=429,
                        params={"retry_after_seconds": math.ceil(wait_ms / 1000)},
                    )
            if (
                limit >= 0
                and self._count_today(c, recap.user_id, day_start_ms, day_end_ms) >= limit
            ):
                raise AppError(
                    MAX_RECAPS_REACHED,
                    f"you have reached the limit of {limit} recaps per day",
                    detailed_error=f"limit={limit}",
                    status_code=400,
                )
            return self.save(recap, conn=c)

    def _last_manual_create_at(self, c: Connection, user_id: str) -> int:
        q = sa.select(sa.func.max(t.c.create_at)).where(
            t.c.user_id == user_id, t.c.scheduled_recap_id == ""
        )
        return int(c.execute(q).scalar_one() or 0)

    def last_manual_create_at(self, user_id: str, *, conn: Connection | None = None) -> int:
        """When the user last asked for a manual recap (ms; 0 if never)."""
        with self._db.transaction(conn) as c:
            return self._last_manual_create_at(c, user_id)

    def posts_used(
        self, user_id: str, day_start_ms: int, day_end_ms: int, *, conn: Connection | None = None
    ) -> int:
        """Posts read by the user's recaps created in [day_start_ms, day_end_ms)."""
        q = sa.select(sa.func.coalesce(sa.func.sum(t.c.total_message_count), 0)).where(
            t.c.user_id == user_id, t.c.create_at >= day_start_ms, t.c.create_at < day_end_ms
        )
        with self._db.transaction(conn) as c:
            return int(c.execute(q).scalar_one())

    def get(
        self,
        recap_id: str,
        *,
        with_channels: bool = True,
        include_deleted: bool = False,
        conn: Connection | None = None,
    ) -> Recap:
        """The recap, with its channels unless asked not to; 404 when missing or deleted."""
        q = sa.select(t).where(t.c.id == recap_id)
        if not include_deleted:
            q = q.where(t.c.delete_at == 0)
        with self._db.transaction(conn) as c:
            row = c.execute(q).first()
            if row is None:
                raise _not_found(recap_id)
            recap = _row_to_recap(row)
            if with_channels:
                recap.channels = self.get_channels(recap_id, conn=c)
        return recap

    def get_channels(self, recap_id: str, *, conn: Connection | None = None) -> list[RecapChannel]:
        """The per-channel results of a recap, in the order they were made."""
        q = sa.select(tc).where(tc.c.recap_id == recap_id).order_by(tc.c.create_at, tc.c.id)
        with self._db.transaction(conn) as c:
            return [_row_to_channel(r) for r in c.execute(q)]

    def get_by_occurrence(
        self, scheduled_recap_id: str, scheduled_for: int, *, conn: Connection | None = None
    ) -> Recap | None:
        """The outcome recorded for one occurrence of a schedule, or None."""
        q = sa.select(t).where(
            RECAP_IS_SCHEDULED,
            t.c.scheduled_recap_id == scheduled_recap_id,
            t.c.scheduled_for == scheduled_for,
        )
        with self._db.transaction(conn) as c:
            row = c.execute(q).first()
            if row is None:
                return None
            recap = _row_to_recap(row)
            recap.channels = self.get_channels(recap.id, conn=c)
        return recap

    def list_for_schedule(
        self, scheduled_recap_id: str, limit: int = 10, *, conn: Connection | None = None
    ) -> list[Recap]:
        """The outcomes recorded for a schedule's occurrences, latest occurrence first, without
        channels: skipped records and recaps the user deleted included (each was a run)."""
        q = (
            sa.select(t)
            .where(RECAP_IS_SCHEDULED, t.c.scheduled_recap_id == scheduled_recap_id)
            .order_by(t.c.scheduled_for.desc(), t.c.id.desc())
            .limit(limit)
        )
        with self._db.transaction(conn) as c:
            return [_row_to_recap(r) for r in c.execute(q)]

    def list_for_user(
        self,
        user_id: str,
        page: int = 0,
        per_page: int = 60,
        *,
        unread_first: bool = False,
        conn: Connection | None = None,
    ) -> list[Recap]:
        """The user's recaps, newest first (the unread ones before the rest when asked),
        without channels; skipped and deleted are hidden."""
        order: list[sa.ColumnElement[Any]] = [t.c.create_at.desc(), t.c.id.desc()]
        if unread_first:
            order.insert(0, sa.case((t.c.read_at == 0, 0), else_=1))
        q = (
            sa.select(t)
            .where(
                t.c.user_id == user_id,
                t.c.delete_at == 0,
                t.c.status != RecapStatus.SKIPPED.value,
            )
            .order_by(*order)
            .limit(per_page)
            .offset(page * per_page)
        )
        with self._db.transaction(conn) as c:
            return [_row_to_recap(r) for r in c.execute(q)]

    def changed_since(
        self, user_id: str, since_ms: int, limit: int = 100, *, conn: Connection | None = None
    ) -> list[Recap]:
        """The user's recaps whose update_at >= since_ms, deleted ones included (so a page can
        drop them), skipped ones left out; oldest change first, without channels."""
        q = (
            sa.select(t)
            .where(
                t.c.user_id == user_id,
                t.c.update_at >= since_ms,
                t.c.status != RecapStatus.SKIPPED.value,
            )
            .order_by(t.c.update_at, t.c.id)
            .limit(limit)
        )
        with self._db.transaction(conn) as c:
            return [_row_to_recap(r) for r in c.execute(q)]

    def update_status(
        self,
        recap_id: str,
        new_status: RecapStatus,
        expected: Collection[RecapStatus],
        now_ms: int,
        *,
        error: str | None = None,
        total_message_count: int | None = None,
        tokens: tuple[int, int] | None = None,
        cost: tuple[int, int, int] | None = None,
        conn: Connection | None = None,
    ) -> bool:
        """Compare-and-set: change the status only from one of `expected`. True if it changed.

        A concurrent regenerate or delete therefore is never overwritten by a stale worker.
        """
        values: dict[str, Any] = {"status": new_status.value, "update_at": now_ms}
        if new_status in (RecapStatus.COMPLETED, RecapStatus.FAILED):
            values["finish_at"] = now_ms
        if error is not None:
            values["error"] = error
        if total_message_count is not None:
            values["total_message_count"] = total_message_count
        if tokens is not None:
            values["prompt_tokens"], values["completion_tokens"] = tokens
        if cost is not None:
            values["agent_calls"], values["parts_total"], values["parts_reused"] = cost
        q = (
            t.update()
            .where(
                t.c.id == recap_id,
                t.c.delete_at == 0,
                t.c.status.in_([s.value for s in expected]),
            )
            .values(values)
        )
        with self._db.transaction(conn) as c:
            return bool(c.execute(q).rowcount)

    def mark_read(self, recap_id: str, now_ms: int, *, conn: Connection | None = None) -> Recap:
        """Set read_at the first time only; return the recap."""
        q = (
            t.update()
            .where(t.c.id == recap_id, t.c.delete_at == 0, t.c.read_at == 0)
            .values(read_at=now_ms, update_at=now_ms)
        )
        with self._db.transaction(conn) as c:
            c.execute(q)
            return self.get(recap_id, conn=c)

    def mark_viewed(
        self, user_id: str, now_ms: int, *, conn: Connection | None = None
    ) -> list[str]:
        """Mark the user's finished, unviewed recaps viewed; return their ids."""
        q = (
            t.update()
            .where(
                t.c.user_id == user_id,
                t.c.delete_at == 0,
                t.c.viewed_at == 0,
                t.c.status.in_([RecapStatus.COMPLETED.value, RecapStatus.FAILED.value]),
            )
            .values(viewed_at=now_ms)
            .returning(t.c.id)
        )
        with self._db.transaction(conn) as c:
            return sorted(str(row[0]) for row in c.execute(q))

    def delete(self, recap_id: str, now_ms: int, *, conn: Connection | None = None) -> None:
        """Soft delete."""
        q = (
            t.update()
            .where(t.c.id == recap_id, t.c.delete_at == 0)
            .values(delete_at=now_ms, update_at=now_ms)
        )
        with self._db.transaction(conn) as c:
            if c.execute(q).rowcount == 0:
                raise _not_found(recap_id)

    def save_channel(self, rc: RecapChannel, *, conn: Connection | None = None) -> RecapChannel:
        """Store one channel's result; a retry replaces the earlier result for that channel."""
        row = _channel_to_row(rc)
        ins = self._db.insert(tc).values(row)
        ins = ins.on_conflict_do_update(
            index_elements=[tc.c.recap_id, tc.c.channel_id],
            set_={k: ins.excluded[k] for k in row if k not in ("id", "recap_id", "channel_id")},
        )
        with self._db.one_statement(conn) as c:
            c.execute(ins)
        return rc

    def delete_channels(self, recap_id: str, *, conn: Connection | None = None) -> None:
        """Drop a recap's channel results (regenerate starts afresh)."""
        with self._db.transaction(conn) as c:
            c.execute(tc.delete().where(tc.c.recap_id == recap_id))

    def list_by_status(
        self,
        status: RecapStatus,
        limit: int = 100,
        *,
        updated_before: int | None = None,
        conn: Connection | None = None,
    ) -> list[Recap]:
        """Recaps in a status, oldest update first (recovery looks for stuck ones)."""
        q = sa.select(t).where(t.c.status == status.value, t.c.delete_at == 0)
        if updated_before is not None:
            q = q.where(t.c.update_at < updated_before)
        q = q.order_by(t.c.update_at, t.c.id).limit(limit)
        with self._db.transaction(conn) as c:
            return [_row_to_recap(r) for r in c.execute(q)]

    def count(self, *, conn: Connection | None = None) -> int:
        """All recaps, deleted and skipped included (for status output)."""
        with self._db.transaction(conn) as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
