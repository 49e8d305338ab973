"""The scheduler's set-based drain: the SQL that advances every due schedule of some groups
and enqueues one job per occurrence in one statement (PostgreSQL) or two (SQLite).

A group is (days_of_week, time_of_day, timezone, next_run_at): every schedule in a group has
the same occurrences, so the scheduler plans once per group and lets the database do the rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recapd.model.ids import ID_ALPHABET, new_id
from recapd.store.database import Database
from recapd.store.tables import JOB_LIVE_KEY, SCHEDULE_LIVE, scheduled_recaps

t = scheduled_recaps
GroupKey = tuple[int, str, str, int]


@dataclass(frozen=True)
class GroupPlan:
    """What every schedule of one group does now: run `run_at`, then wait for `new_next`."""

    days_of_week: int
    time_of_day: str
    timezone: str
    old_next: int
    new_next: int
    run_at: int


def due_groups(db: Database, now_ms: int, *, conn: Connection) -> list[tuple[GroupKey, int]]:
    """The groups of live schedules due at `now_ms`, with how many schedules each holds."""
    q = (
        sa.select(t.c.days_of_week, t.c.time_of_day, t.c.timezone, t.c.next_run_at, sa.func.count())
        .where(SCHEDULE_LIVE, t.c.next_run_at <= now_ms)
        .group_by(t.c.days_of_week, t.c.time_of_day, t.c.timezone, t.c.next_run_at)
    )
    return [((r[0], r[1], r[2], int(r[3])), int(r[4])) for r in conn.execute(q)]


_PLAN_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS due_plan (days_of_week INTEGER, time_of_day TEXT, "
    "timezone TEXT, old_next BIGINT, new_next BIGINT, run_at BIGINT)"
)
_JOB_COLS = (
    "id, type, priority, create_at, start_at, last_activity_at, status, progress, data, "
    "dedupe_key, attempt, run_at, node_id, term"
)
# Up to a batch of the schedules of the planned groups (a moved schedule leaves its group).
_PICK = (
    "SELECT s2.id FROM scheduled_recaps s2 JOIN due_plan p2 ON "
    "s2.days_of_week = p2.days_of_week AND s2.time_of_day = p2.time_of_day AND "
    "s2.timezone = p2.timezone AND s2.next_run_at = p2.old_next "
    "WHERE s2.enabled AND s2.delete_at = 0{lane} ORDER BY s2.id LIMIT :batch"
)
# A lane is a range of ids [low, high); lanes drain side by side on their own connections.
IdRange = tuple[str | None, str | None]
ALL_IDS: IdRange = (None, None)
_MATCH = (
    "s.days_of_week = p.days_of_week AND s.time_of_day = p.time_of_day AND "
    "s.timezone = p.timezone AND s.next_run_at = p.old_next"
)


def lanes(count: int) -> list[IdRange]:
    """`count` disjoint id ranges covering every id, about equally full for random ids."""
    alphabet = sorted(ID_ALPHABET)
    cuts = [alphabet[len(alphabet) * i // count] for i in range(1, count)]
    bounds: list[str | None] = [None, *cuts, None]
    return [(bounds[i], bounds[i + 1]) for i in range(count)]


def _lane(lane: IdRange, alias: str) -> tuple[str, dict[str, str]]:
    low, high = lane
    sql, params = "", {}
    if low is not None:
        sql, params["low"] = f"{sql} AND {alias}.id >= :low", low
    if high is not None:
        sql, params["high"] = f"{sql} AND {alias}.id < :high", high
    return sql, params


def _load_plans(conn: Connection, plans: Sequence[GroupPlan]) -> None:
    conn.exec_driver_sql(_PLAN_DDL)
    conn.exec_driver_sql("DELETE FROM due_plan")
    conn.execute(
        sa.text("INSERT INTO due_plan VALUES (:d, :t, :z, :o, :n, :r)"),
        [
            {
                "d": p.days_of_week,
                "t": p.time_of_day,
                "z": p.timezone,
                "o": p.old_next,
                "n": p.new_next,
                "r": p.run_at,
            }
            for p in plans
        ],
    )


def advance_and_enqueue(
    db: Database,
    plans: Sequence[GroupPlan],
    job_type: str,
    now_ms: int,
    term: int,
    batch: int,
    *,
    conn: Connection,
    lane: IdRange = ALL_IDS,
) -> tuple[int, int]:
    """Advance up to `batch` schedules of the planned groups (ids in `lane`) and enqueue their
    occurrences.

    The advance is a compare-and-set on next_run_at, and only schedules it moved get a job,
    under the live dedupe key `id:run_at`. Returns (schedules moved, jobs created).
    """
    _load_plans(conn, plans)
    if db.is_postgres:
        lane_sql, lane_params = _lane(lane, "s2")
        pick = _PICK.format(lane=lane_sql)
        q = sa.text(
            "WITH moved AS (UPDATE scheduled_recaps s SET next_run_at = p.new_next "
            f"FROM due_plan p WHERE s.id IN ({pick}) AND {_MATCH} "
            "RETURNING s.id, s.user_id, s.channel_ids, s.agent_id, p.run_at), "
            f"ins AS (INSERT INTO jobs ({_JOB_COLS}) "
            "SELECT substr(md5(random()::text || m.id || clock_timestamp()::text), 1, 26), "
            ":type, 0, :now, 0, 0, 'pending', 0, jsonb_build_object('scheduled_recap_id', m.id, "
            "'user_id', m.user_id, 'channel_ids', COALESCE((SELECT string_agg(x, ',') FROM "
            "jsonb_array_elements_text(m.channel_ids) AS x), ''), 'agent_id', m.agent_id, "
            "'scheduled_for', m.run_at), m.id || ':' || m.run_at, 0, :now, '', :term "
            f"FROM moved m ON CONFLICT (dedupe_key) WHERE {JOB_LIVE_KEY.text} DO NOTHING "
            "RETURNING 1) "
            "SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM ins)"
        )
        params = {"batch": batch, "type": job_type, "now": now_ms, "term": term, **lane_params}
        moved, created = conn.execute(q, params).one()
        if created:
            conn.execute(sa.text("SELECT pg_notify('recapd_jobs', :type)"), {"type": job_type})
        return int(moved), int(created)
    # SQLite: no data-modifying CTEs, and RETURNING cannot see the FROM tables. The write
    # lock is held (BEGIN IMMEDIATE), so read the batch once, then move exactly those rows.
    lane_sql, lane_params = _lane(lane, "s")
    read = sa.text(
        "SELECT s.id, s.user_id, s.channel_ids, s.agent_id, p.run_at, p.old_next, p.new_next "
        f"FROM scheduled_recaps s JOIN due_plan p ON {_MATCH} "
        f"WHERE s.enabled AND s.delete_at = 0{lane_sql} ORDER BY s.id LIMIT :batch"
    )
    moved_rows = conn.execute(read, {"batch": batch, **lane_params}).all()
    if not moved_rows:
        return 0, 0
    conn.execute(
        sa.text(
            "UPDATE scheduled_recaps SET next_run_at = :new WHERE id = :id AND next_run_at = :old"
        ),
        [{"id": r[0], "old": r[5], "new": r[6]} for r in moved_rows],
    )
    ins = sa.text(
        f"INSERT INTO jobs ({_JOB_COLS}) VALUES (:id, :type, 0, :now, 0, 0, 'pending', 0, "
        ":data, :key, 0, :now, '', :term) "
        f"ON CONFLICT (dedupe_key) WHERE {JOB_LIVE_KEY.text} DO NOTHING"
    )
    rows: list[dict[str, object]] = []
    for sr_id, user_id, channel_ids, agent_id, run_at, _old, _new in moved_rows:
        ids = json.loads(channel_ids) if isinstance(channel_ids, str) else channel_ids
        data = {
            "scheduled_recap_id": sr_id,
            "user_id": user_id,
            "channel_ids": ",".join(ids),
            "agent_id": agent_id,
            "scheduled_for": int(run_at),
        }
        rows.append(
            {
                "id": new_id(),
                "type": job_type,
                "now": now_ms,
                "term": term,
                "data": json.dumps(data),
                "key": f"{sr_id}:{run_at}",
            }
        )
    before = conn.exec_driver_sql("SELECT total_changes()").scalar_one()
    conn.execute(ins, rows)
    created = conn.exec_driver_sql("SELECT total_changes()").scalar_one() - before
    return len(moved_rows), int(created)
