"""A job type for the cluster tests, loaded by `recapd worker --extension
tests.cluster_ext:register`: each job writes one row under a unique key (its side effect)."""

from __future__ import annotations

import asyncio
import os

import sqlalchemy as sa

from recapd.jobs.leader import StaticLeadership
from recapd.jobs.server import JobServer
from recapd.jobs.worker import JobContext, WorkerSpec

CLUSTER_JOB = "cluster_write"
EFFECTS_DDL = (
    "CREATE TABLE IF NOT EXISTS cluster_effects "
    "(key TEXT PRIMARY KEY, node TEXT NOT NULL, runs INTEGER NOT NULL DEFAULT 1)"
)


def register(server: JobServer) -> None:
    """Register the cluster_write worker on `server`."""
    with server.store.db.transaction() as conn:
        conn.exec_driver_sql(EFFECTS_DDL)
    work_s = float(os.environ.get("CLUSTER_JOB_SECONDS", "0.1"))
    node = server.node_id

    def write(key: str) -> None:
        with server.store.db.transaction() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO cluster_effects (key, node) VALUES (:k, :n) "
                    "ON CONFLICT (key) DO UPDATE SET runs = cluster_effects.runs + 1"
                ),
                {"k": key, "n": node},
            )

    async def handler(ctx: JobContext) -> None:
        await asyncio.sleep(work_s)
        await asyncio.to_thread(write, str(ctx.job.data["key"]))

    server.register_worker(WorkerSpec(CLUSTER_JOB, handler, concurrency=20))


def force_leader(server: JobServer) -> None:
    """Make this node act as leader whatever the lease says (split-brain tests)."""
    server.set_leadership(StaticLeadership(term=1))
