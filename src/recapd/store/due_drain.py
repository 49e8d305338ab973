"""The scheduler's set-based drain: the SQL that advances every due schedule of some groups
and enqueues one job per occurrence, a batch at a time: one statement on PostgreSQL; on SQLite
a read, then the moves and the jobs by id.

A group is (days_of_week, time_of_day, timezone, next_run_at): every schedule in a group has
the same occurrences, so the scheduler plans once per group and lets the database do the rows.
"""

from __future__ import annotations

import json
import secrets
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
# The next batch of due schedules in index order (ix_scheduled_recaps_due: next_run_at, id),
# from a keyset cursor: no join, no sort, and rows already moved are never scanned again.
_PICK = (
    "SELECT s2.id, s2.next_run_at FROM scheduled_recaps s2 "
    "WHERE s2.enabled AND s2.delete_at = 0 AND s2.next_run_at <= :upto{after}{lane} "
    "ORDER BY s2.next_run_at, s2.id LIMIT :batch"
)
_AFTER = " AND (s2.next_run_at, s2.id) > (:after_next, :after_id)"
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


DrainKey = tuple[int, str]


@dataclass(frozen=True)
class BatchResult:
    """What one batch did: schedules looked at, moved, jobs created, and the keyset cursor."""

    picked: int
    moved: int
    created: int
    last: DrainKey | None


def _pick(
    lane: IdRange, after: DrainKey | None, upto: int, batch: int
) -> tuple[str, dict[str, object]]:
    lane_sql, lane_params = _lane(lane, "s2")
    params: dict[str, object] = {**lane_params, "upto": upto, "batch": batch}
    if after is not None:
        params["after_next"], params["after_id"] = after
    return _PICK.format(after=_AFTER if after is not None else "", lane=lane_sql), params


def _job_id_prefix() -> str:
    """13 random hex digits, one draw per statement: a set-based job's id is this and a row
    number in 13 more hex digits, so the ids of a batch sit side by side in the jobs' indexes
    instead of scattered as random ids are. The numbers are dealt in random order: workers
    claim equal jobs by id, and no schedule should come last every day."""
    return secrets.token_hex(7)[:13]


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
    after: DrainKey | None = None,
) -> BatchResult:
    """Look at the next `batch` due schedules (ids in `lane`, past the cursor `after`), advance
    those of the planned groups and enqueue their occurrences.

    The advance is a compare-and-set on next_run_at, and only schedules it moved get a job,
    under the live dedupe key `id:run_at`.
    """
    _load_plans(conn, plans)
    pick, params = _pick(lane, after, max(p.old_next for p in plans), batch)
    if db.is_postgres:
        q = sa.text(
            f"WITH pick AS MATERIALIZED ({pick}), "
            "moved AS (UPDATE scheduled_recaps s SET next_run_at = p.new_next "
            "FROM due_plan p WHERE s.id = ANY((SELECT array_agg(k.id) FROM pick k)::text[]) "
            # Re-checked on a row changed since the pick: paused or deleted since, it stays.
            f"AND s.enabled AND s.delete_at = 0 AND {_MATCH} "
            "RETURNING s.id, s.user_id, s.channel_ids, s.agent_id, p.run_at), "
            f"ins AS (INSERT INTO jobs ({_JOB_COLS}) "
            "SELECT :prefix || lpad(to_hex(row_number() OVER (ORDER BY random())), 13, '0'), "
            ":type, 0, :now, 0, 0, 'pending', 0, jsonb_build_object('scheduled_recap_id', m.id, "
            # Channel ids are validated ids (letters and digits), so the JSON text of the
            # list, less brackets, quotes and spaces, is the comma-joined list.
            "'user_id', m.user_id, 'channel_ids', translate(m.channel_ids::text, '[]\" ', ''), "
            "'agent_id', m.agent_id, "
            "'scheduled_for', m.run_at), m.id || ':' || m.run_at, 0, :now, '', :term "
            f"FROM moved m ON CONFLICT (dedupe_key) WHERE {JOB_LIVE_KEY.text} DO NOTHING "
            "RETURNING 1), "
            "last AS (SELECT k.next_run_at, k.id FROM pick k "
            "ORDER BY k.next_run_at DESC, k.id DESC LIMIT 1) "
            "SELECT (SELECT count(*) FROM pick), (SELECT count(*) FROM moved), "
            "(SELECT count(*) FROM ins), (SELECT next_run_at FROM last), (SELECT id FROM last)"
        )
        params.update(type=job_type, now=now_ms, term=term, prefix=_job_id_prefix())
        picked, moved, created, last_next, last_id = conn.execute(q, params).one()
        if created:
            conn.execute(sa.text("SELECT pg_notify('recapd_jobs', :type)"), {"type": job_type})
        last = (int(last_next), str(last_id)) if picked else None
        return BatchResult(int(picked), int(moved), int(created), last)
    # SQLite: no data-modifying CTEs, and RETURNING cannot see the FROM tables. The write
    # lock is held (BEGIN IMMEDIATE), so read the batch once, then move exactly those rows.
    read = sa.text(
        "SELECT k.id, k.next_run_at, s.user_id, s.channel_ids, s.agent_id, p.run_at, p.new_next "
        f"FROM ({pick}) k JOIN scheduled_recaps s ON s.id = k.id "
        f"LEFT JOIN due_plan p ON {_MATCH} ORDER BY k.next_run_at, k.id"
    )
    picked_rows = conn.execute(read, params).all()
    if not picked_rows:
        return BatchResult(0, 0, 0, None)
    last = (int(picked_rows[-1][1]), str(picked_rows[-1][0]))
    moved_rows = [r for r in picked_rows if r[5] is not None]
    if moved_rows:
        conn.execute(
            sa.text(
                "UPDATE scheduled_recaps SET next_run_at = :new "
                "WHERE id = :id AND next_run_at = :old"
            ),
            [{"id": r[0], "old": r[1], "new": r[6]} for r in moved_rows],
        )
    ins = sa.text(
        f"INSERT INTO jobs ({_JOB_COLS}) VALUES (:id, :type, 0, :now, 0, 0, 'pending', 0, "
        ":data, :key, 0, :now, '', :term) "
        f"ON CONFLICT (dedupe_key) WHERE {JOB_LIVE_KEY.text} DO NOTHING"
    )
    rows: list[dict[str, object]] = []
    for sr_id, _old, user_id, channel_ids, agent_id, run_at, _new in moved_rows:
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
    created = 0
    if rows:
        before = conn.exec_driver_sql("SELECT total_changes()").scalar_one()
        conn.execute(ins, rows)
        created = conn.exec_driver_sql("SELECT total_changes()").scalar_one() - before
    return BatchResult(len(picked_rows), len(moved_rows), int(created), last)
