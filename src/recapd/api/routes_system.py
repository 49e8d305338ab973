"""/api/v4/system/ping (database, schema and jobs) and /metrics (Prometheus); no sign-in."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from recapd import metrics as prom
from recapd.api.auth import RuntimeDep
from recapd.runtime import Runtime
from recapd.store import migrate

router = APIRouter(tags=["system"])

# A due job waiting this long means no worker is claiming its type, or they cannot keep up.
JOBS_WAITING_AFTER_S = 300


def _check_database(rt: Runtime) -> dict[str, Any]:
    try:
        with rt.store.db.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        current = migrate.current_revision(rt.store.db)
        head = migrate.head_revision(rt.store.db)
    except Exception as exc:
        return {"database": "unreachable", "database_error": type(exc).__name__}
    return {
        "database": "ok",
        "schema_revision": current or "",
        "schema_head": head or "",
        "schema_up_to_date": current == head,
    }


def _check_jobs(rt: Runtime) -> dict[str, Any]:
    """How the job system looks from here: the longest wait of a due job (cluster-wide), the
    leader, and what this node runs."""
    server = rt.jobs
    now = server.clock.now_ms()
    oldest = rt.store.jobs.oldest_due_pending(now)
    waited_s = 0.0 if oldest is None else max(0, now - oldest) / 1000
    leadership = server.leadership
    lease = rt.store.leases.get(leadership.lease_name) if rt.store.db.is_postgres else None
    if rt.store.db.is_sqlite:
        leader = server.node_id if server.running else ""
    else:
        leader = lease.holder if lease is not None and lease.live else ""
    return {
        "jobs": "ok" if waited_s < JOBS_WAITING_AFTER_S else "waiting",
        "oldest_due_job_waited_seconds": round(waited_s, 1),
        "leader": leader,
        "node_id": server.node_id,
        "node_runs_jobs": server.running_types,
        "node_is_leader": server.running and leadership.is_leader,
    }


@router.get("/api/v4/system/ping")
async def ping(rt: RuntimeDep) -> JSONResponse:
    """OK (200) when the database answers, else 503; the schema revision, and the jobs'
    health: `jobs` is "waiting" when a due job has waited JOBS_WAITING_AFTER_S or more (no
    worker runs, or they cannot keep up), which does not make this node unhealthy."""
    report = await asyncio.to_thread(_check_database, rt)
    ok = report["database"] == "ok"
    if ok:
        try:
            report |= await asyncio.to_thread(_check_jobs, rt)
        except Exception as exc:  # the database answered a moment ago: report, do not fail
            report |= {"jobs": "unknown", "jobs_error": type(exc).__name__}
    return JSONResponse({"status": "OK" if ok else "UNHEALTHY", **report}, 200 if ok else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """This process's Prometheus metrics, with the cluster's job counts."""
    body = await asyncio.to_thread(prom.render, request.app.state.job_counts)
    return Response(body, media_type=prom.CONTENT_TYPE_LATEST)
