"""SQL for jobs: insert (optionally deduplicated among live jobs), claim, progress, status."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import fields
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from recapd.model.app_error import AppError
from recapd.model.job import Job, JobStatus
from recapd.store.database import COPY_NULL, COPY_SPECIAL, Database, copy_escape
from recapd.store.tables import (
    JOB_FINISHED,
    JOB_LIVE_KEY,
    JOB_PENDING,
    JOB_RUNNING,
    jobs,
)

t = jobs

# The PostgreSQL LISTEN/NOTIFY channel on which new jobs announce their type.
NOTIFY_CHANNEL = "recapd_jobs"
_RUNNING = (JobStatus.IN_PROGRESS.value, JobStatus.CANCEL_REQUESTED.value)


def _runs(pairs: Sequence[tuple[str, int]], postgres: bool) -> sa.ColumnElement[bool]:
    """Rows matching (id, attempt) pairs, written so the primary key index serves it: one
    `attempt = n AND id IN (...)` per distinct attempt (almost always a single one). On
    PostgreSQL the ids travel as one array parameter instead of one parameter each."""
    by_attempt: dict[int, list[str]] = {}
    for job_id, attempt in pairs:
        by_attempt.setdefault(attempt, []).append(job_id)

    def ids_match(ids: list[str]) -> sa.ColumnElement[bool]:
        if postgres:
            return t.c.id == sa.any_(sa.bindparam(None, ids, type_=postgresql.ARRAY(sa.String)))
        return t.c.id.in_(ids)

    return sa.or_(
        *(sa.and_(t.c.attempt == a, ids_match(ids)) for a, ids in sorted(by_attempt.items()))
    )


# Job's fields in declaration order: rows are read as these columns and turned into Jobs
# positionally (a claim reads thousands of rows; a mapping per row cost half of its Python).
_FIELDS = tuple(f.name for f in fields(Job))
_COLUMNS = tuple(t.c[f] for f in _FIELDS)


def _row_to_job(row: Sequence[Any]) -> Job:
    job = Job(*row)
    if type(job.data) is not dict:
        job.data = dict(job.data or {})
    return job


def _job_to_row(job: Job) -> dict[str, Any]:
    row = {f: getattr(job, f) for f in _FIELDS}
    row["status"] = str(job.status)
    row["type"] = str(job.type)
    return row


def _copy_lines(new_jobs: Sequence[Job]) -> str:
    """The jobs as COPY text-format lines, columns in _FIELDS order: built in one pass, with
    escaping only for a row whose text needs it (ids, types and statuses never do)."""
    lines = []
    for j in new_jobs:
        data = json.dumps(j.data) if j.data else "{}"
        key = j.dedupe_key
        text = (j.id, j.type, j.status, data, key or "", j.node_id)
        if COPY_SPECIAL.search("".join(text)):
            fid, ftype, fstatus, data, esc_key, node = (copy_escape(v) for v in text)
            key = None if key is None else esc_key
        else:
            fid, ftype, fstatus, node = j.id, j.type, j.status, j.node_id
        lines.append(
            f"{fid}\t{ftype}\t{j.priority:d}\t{j.create_at:d}\t{j.start_at:d}\t"
            f"{j.last_activity_at:d}\t{fstatus}\t{j.progress:d}\t{data}\t"
            f"{COPY_NULL if key is None else key}\t{j.attempt:d}\t{j.run_at:d}\t{node}\t"
            f"{j.term:d}\n"
        )
    return "".join(lines)


def _not_found(job_id: str) -> AppError:
    return AppError(
        "store.sql_job.get.not_found.app_error",
        "job not found",
        detailed_error=f"id={job_id}",
        status_code=404,
    )


class JobStore:
    """Jobs in the database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _notify(self, c: Connection, job_types: Collection[str]) -> None:
        # Delivered at commit, so a woken worker always finds the row.
        if self._db.is_postgres:
            for job_type in sorted(set(job_types)):
                c.execute(
                    sa.text("SELECT pg_notify(:ch, :type)"),
                    {"ch": NOTIFY_CHANNEL, "type": job_type},
                )

    def save(self, job: Job, *, conn: Connection | None = None) -> Job:
        """Insert a job (and wake the workers of its type on PostgreSQL)."""
        with self._db.transaction(conn) as c:
            c.execute(t.insert().values(_job_to_row(job)))
            self._notify(c, [job.type])
        return job

    def save_many(self, new_jobs: Sequence[Job], *, conn: Connection | None = None) -> None:
        """Insert many jobs in one statement."""
        if not new_jobs:
            return
        with self._db.transaction(conn) as c:
            if self._db.is_postgres:
                # COPY, one pre-built buffer: several times faster than INSERTs.
                self._db.copy_text(c, t.name, _FIELDS, _copy_lines(new_jobs))
            else:
                c.execute(t.insert(), [_job_to_row(j) for j in new_jobs])
            self._notify(c, {j.type for j in new_jobs})

    def save_once(self, job: Job, *, conn: Connection | None = None) -> tuple[Job, bool]:
        """Insert `job` unless a live job with its dedupe key exists.

        Returns (the new job, True) or (the live job already holding the key, False). The
        unique partial index on live dedupe keys decides; there is no count to race with.
        """
        if not job.dedupe_key:
            raise ValueError("save_once needs a dedupe_key")
        ins = (
            self._db.insert(t)
            .values(_job_to_row(job))
            .on_conflict_do_nothing(index_elements=[t.c.dedupe_key], index_where=JOB_LIVE_KEY)
            .returning(t.c.id)
        )
        with self._db.transaction(conn) as c:
            if c.execute(ins).first() is not None:
                self._notify(c, [job.type])
                return job, True
            existing = c.execute(
                sa.select(*_COLUMNS).where(t.c.dedupe_key == job.dedupe_key, JOB_LIVE_KEY)
            ).first()
        if existing is None:
            # The holder finished between our insert and our read: the key is free again, so
            # the caller may try once more; report it as not created to stay conservative.
            return job, False
        return _row_to_job(existing), False

    def save_many_once(self, new_jobs: Sequence[Job], *, conn: Connection | None = None) -> int:
        """Insert jobs whose dedupe key no live job holds; return how many were inserted."""
        if not new_jobs:
            return 0
        ins = (
            self._db.insert(t)
            .on_conflict_do_nothing(index_elements=[t.c.dedupe_key], index_where=JOB_LIVE_KEY)
            .returning(t.c.id)
        )
        rows = [_job_to_row(j) for j in new_jobs]
        with self._db.transaction(conn) as c:
            if self._db.is_postgres:
                created = self._insert_staged_once(c, rows)
            else:
                created = len(c.execute(ins, rows).all())
            if created:
                self._notify(c, [j.type for j in new_jobs])
            return created

    def live_keys(self, keys: Sequence[str], *, conn: Connection | None = None) -> set[str]:
        """The dedupe keys among `keys` that a live job holds."""
        if not keys:
            return set()
        q = sa.select(t.c.dedupe_key).where(t.c.dedupe_key.in_(list(keys)), JOB_LIVE_KEY)
        with self._db.transaction(conn) as c:
            return {r[0] for r in c.execute(q)}

    def _insert_staged_once(self, c: Connection, rows: list[dict[str, Any]]) -> int:
        # COPY into a session-local staging table, then one INSERT ... SELECT ... ON CONFLICT:
        # a 100,000-row batch costs one COPY stream instead of a statement with 1.5 million
        # parameters for the driver and the server to parse.
        c.exec_driver_sql(
            "CREATE TEMP TABLE IF NOT EXISTS jobs_staged "
            "(LIKE jobs INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        c.exec_driver_sql("DELETE FROM jobs_staged")
        self._db.copy_rows(c, t, rows, into="jobs_staged")
        cols = ", ".join(_FIELDS)
        q = (
            f"INSERT INTO jobs ({cols}) SELECT {cols} FROM jobs_staged "
            f"ON CONFLICT (dedupe_key) WHERE {JOB_LIVE_KEY.text} DO NOTHING RETURNING id"
        )
        return len(c.exec_driver_sql(q).all())

    def get(self, job_id: str, *, conn: Connection | None = None) -> Job:
        """The job; AppError 404 when missing."""
        with self._db.transaction(conn) as c:
            row = c.execute(sa.select(*_COLUMNS).where(t.c.id == job_id)).first()
        if row is None:
            raise _not_found(job_id)
        return _row_to_job(row)

    def list_page(
        self,
        *,
        type: str | None = None,
        statuses: Collection[JobStatus] | None = None,
        page: int = 0,
        per_page: int = 60,
        conn: Connection | None = None,
    ) -> list[Job]:
        """Jobs, newest first, optionally of one type and in some statuses."""
        q = sa.select(*_COLUMNS)
        if type is not None:
            q = q.where(t.c.type == type)
        if statuses:
            q = q.where(t.c.status.in_([s.value for s in statuses]))
        q = q.order_by(t.c.create_at.desc(), t.c.id.desc()).limit(per_page).offset(page * per_page)
        with self._db.transaction(conn) as c:
            return [_row_to_job(r) for r in c.execute(q)]

    def count_by_type_and_status(
        self, *, conn: Connection | None = None
    ) -> dict[tuple[str, str], int]:
        """How many jobs of each (type, status)."""
        q = sa.select(t.c.type, t.c.status, sa.func.count()).group_by(t.c.type, t.c.status)
        with self._db.transaction(conn) as c:
            return {(r[0], r[1]): int(r[2]) for r in c.execute(q)}

    def oldest_due_pending(self, now_ms: int, *, conn: Connection | None = None) -> int | None:
        """run_at of the longest-waiting pending job that is due at `now_ms`, or None."""
        q = sa.select(sa.func.min(t.c.run_at)).where(JOB_PENDING, t.c.run_at <= now_ms)
        with self._db.transaction(conn) as c:
            value = c.execute(q).scalar()
        return None if value is None else int(value)

    def claim(
        self, job_id: str, now_ms: int, node_id: str = "", *, conn: Connection | None = None
    ) -> bool:
        """Move one job pending -> in_progress; exactly one of several claimers wins."""
        q = (
            t.update()
            .where(t.c.id == job_id, t.c.status == JobStatus.PENDING.value)
            .values(
                status=JobStatus.IN_PROGRESS.value,
                start_at=now_ms,
                last_activity_at=now_ms,
                node_id=node_id,
                attempt=t.c.attempt + 1,
            )
        )
        with self._db.transaction(conn) as c:
            return bool(c.execute(q).rowcount)

    def claim_batch(
        self,
        job_type: str,
        limit: int,
        now_ms: int,
        node_id: str = "",
        *,
        conn: Connection | None = None,
    ) -> list[Job]:
        """Claim up to `limit` pending jobs of a type whose run_at has come, best first.

        PostgreSQL skips rows other claimers hold (FOR UPDATE SKIP LOCKED); SQLite serializes
        writers, so the same statement is already one-winner there.
        """
        pick = (
            sa.select(t.c.id)
            .where(JOB_PENDING, t.c.type == job_type, t.c.run_at <= now_ms)
            .order_by(t.c.priority.desc(), t.c.run_at, t.c.id)
            .limit(limit)
        )
        if self._db.is_postgres:
            pick = pick.with_for_update(skip_locked=True)
        q = (
            t.update()
            .where(*self._picked(pick))
            .values(
                status=JobStatus.IN_PROGRESS.value,
                start_at=now_ms,
                last_activity_at=now_ms,
                node_id=node_id,
                attempt=t.c.attempt + 1,
            )
            .returning(*_COLUMNS)
        )
        with self._db.transaction(conn) as c:
            claimed = [_row_to_job(r) for r in c.execute(q)]
        claimed.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        return claimed

    def _picked(self, pick: sa.Select[tuple[str]]) -> list[sa.ColumnElement[bool] | sa.TextClause]:
        if self._db.is_postgres:
            # `= ANY(ARRAY(subquery))` runs the LIMITed, SKIP LOCKED subquery exactly once
            # (with `IN (subquery)` the planner may re-run it per row and claim too many), and
            # the rows it locked are still pending: no status test, so the primary key serves.
            return [t.c.id == sa.any_(sa.func.array(pick.scalar_subquery()))]
        return [t.c.id.in_(pick.scalar_subquery()), JOB_PENDING]

    def set_progress(
        self, job_id: str, progress: int, now_ms: int, *, conn: Connection | None = None
    ) -> bool:
        """Record progress (0..100) of a running job and count it as a heartbeat."""
        q = (
            t.update()
            .where(
                t.c.id == job_id,
                t.c.status.in_([JobStatus.IN_PROGRESS.value, JobStatus.CANCEL_REQUESTED.value]),
            )
            .values(progress=max(0, min(100, progress)), last_activity_at=now_ms)
        )
        with self._db.one_statement(conn) as c:
            return bool(c.execute(q).rowcount)

    def update_status(
        self,
        job_id: str,
        new_status: JobStatus,
        expected: Collection[JobStatus],
        now_ms: int,
        *,
        progress: int | None = None,
        data: dict[str, Any] | None = None,
        run_at: int | None = None,
        conn: Connection | None = None,
    ) -> bool:
        """Compare-and-set the status from one of `expected`; True if it changed.

        `data` replaces the job's data when given (merge in the caller, which read it).
        """
        values: dict[str, Any] = {"status": new_status.value, "last_activity_at": now_ms}
        if progress is not None:
            values["progress"] = progress
        if data is not None:
            values["data"] = data
        if run_at is not None:
            values["run_at"] = run_at
        q = (
            t.update()
            .where(t.c.id == job_id, t.c.status.in_([s.value for s in expected]))
            .values(values)
        )
        with self._db.transaction(conn) as c:
            return bool(c.execute(q).rowcount)

    def request_cancel(self, job_id: str, now_ms: int, *, conn: Connection | None = None) -> Job:
        """pending -> canceled, in_progress -> cancel_requested; other states are left alone."""
        with self._db.transaction(conn) as c:
            self.update_status(
                job_id, JobStatus.CANCELED, [JobStatus.PENDING], now_ms, conn=c
            ) or self.update_status(
                job_id,
                JobStatus.CANCEL_REQUESTED,
                [JobStatus.IN_PROGRESS],
                now_ms,
                conn=c,
            )
            return self.get(job_id, conn=c)

    def get_wedged(
        self, older_than_ms: int, limit: int = 100, *, conn: Connection | None = None
    ) -> list[Job]:
        """Running jobs whose heartbeat stopped before `older_than_ms`."""
        q = (
            sa.select(*_COLUMNS)
            .where(JOB_RUNNING, t.c.last_activity_at < older_than_ms)
            .order_by(t.c.last_activity_at)
            .limit(limit)
        )
        with self._db.transaction(conn) as c:
            return [_row_to_job(r) for r in c.execute(q)]

    def delete_finished_before(
        self, before_ms: int, batch_size: int, *, conn: Connection | None = None
    ) -> int:
        """Delete up to `batch_size` finished jobs last active before `before_ms`."""
        pick = (
            sa.select(t.c.id)
            .where(JOB_FINISHED, t.c.last_activity_at < before_ms)
            .limit(batch_size)
        )
        with self._db.transaction(conn) as c:
            return int(c.execute(t.delete().where(t.c.id.in_(pick.scalar_subquery()))).rowcount)

    def heartbeat_status(
        self,
        running: Sequence[tuple[str, int]],
        node_id: str,
        now_ms: int,
        *,
        conn: Connection | None = None,
    ) -> dict[str, str]:
        """Advance last_activity_at of this node's running (id, attempt) pairs.

        Returns {id: status} for those still ours; a missing id was recovered elsewhere, and
        `cancel_requested` asks the runner to stop.
        """
        if not running:
            return {}
        q = (
            t.update()
            .where(
                _runs(running, self._db.is_postgres),
                t.c.node_id == node_id,
                t.c.status.in_(_RUNNING),
            )
            .values(last_activity_at=now_ms)
            .returning(t.c.id, t.c.status)
        )
        with self._db.transaction(conn) as c:
            return {r[0]: r[1] for r in c.execute(q)}

    def complete_many(
        self,
        done: Sequence[tuple[str, int]],
        node_id: str,
        now_ms: int,
        *,
        conn: Connection | None = None,
    ) -> int:
        """Mark this node's running (id, attempt) pairs `success` in one statement.

        A job recovered and re-claimed meanwhile no longer matches and is left alone.
        """
        if not done:
            return 0
        q = (
            t.update()
            .where(
                _runs(done, self._db.is_postgres),
                t.c.node_id == node_id,
                t.c.status.in_(_RUNNING),
            )
            .values(status=JobStatus.SUCCESS.value, progress=100, last_activity_at=now_ms)
        )
        with self._db.transaction(conn) as c:
            return int(c.execute(q).rowcount)

    def finish(
        self,
        job: Job,
        node_id: str,
        new_status: JobStatus,
        now_ms: int,
        *,
        run_at: int | None = None,
        attempt: int | None = None,
        progress: int | None = None,
        conn: Connection | None = None,
    ) -> bool:
        """End this node's run of `job` (its id and attempt) with `new_status` and job.data.

        Used for errors, retries (pending again with a later run_at), cancels and releases.
        False when the run was no longer ours (recovered, re-claimed or finished elsewhere).
        """
        values: dict[str, Any] = {
            "status": new_status.value,
            "last_activity_at": now_ms,
            "data": job.data,
        }
        if run_at is not None:
            values["run_at"] = run_at
        if attempt is not None:
            values["attempt"] = attempt
        if progress is not None:
            values["progress"] = progress
        if new_status is JobStatus.PENDING:
            values["node_id"] = ""
        q = (
            t.update()
            .where(
                t.c.id == job.id,
                t.c.attempt == job.attempt,
                t.c.node_id == node_id,
                t.c.status.in_(_RUNNING),
            )
            .values(values)
        )
        with self._db.transaction(conn) as c:
            changed = bool(c.execute(q).rowcount)
            if changed and new_status is JobStatus.PENDING:
                self._notify(c, [job.type])
            return changed

    def recover_wedged(
        self,
        older_than_ms: int,
        now_ms: int,
        max_attempts: Callable[[str], int],
        limit: int = 500,
        *,
        conn: Connection | None = None,
    ) -> tuple[int, int]:
        """Jobs whose heartbeat stopped before `older_than_ms`, whichever node ran them, go
        back to pending, or to error after their last attempt (canceled if a cancel was
        asked). Returns (requeued, ended)."""
        requeued = ended = 0
        with self._db.transaction(conn) as c:
            for job in self.get_wedged(older_than_ms, limit, conn=c):
                cas = [
                    t.c.id == job.id,
                    t.c.attempt == job.attempt,
                    t.c.status == job.status,
                    t.c.last_activity_at < older_than_ms,
                ]
                reason = f"no heartbeat from node {job.node_id or '?'} since {job.last_activity_at}"
                data = dict(job.data)
                if job.status == JobStatus.CANCEL_REQUESTED.value:
                    values: dict[str, Any] = {"status": JobStatus.CANCELED.value}
                elif job.attempt < max_attempts(job.type):
                    data["last_error"] = f"wedged: {reason}"
                    values = {"status": JobStatus.PENDING.value, "run_at": now_ms, "node_id": ""}
                else:
                    data["error"] = f"wedged after {job.attempt} attempts: {reason}"
                    values = {"status": JobStatus.ERROR.value, "progress": -1}
                values.update(data=data, last_activity_at=now_ms)
                if c.execute(t.update().where(*cas).values(values)).rowcount:
                    if values["status"] == JobStatus.PENDING.value:
                        requeued += 1
                        self._notify(c, [job.type])
                    else:
                        ended += 1
        return requeued, ended
