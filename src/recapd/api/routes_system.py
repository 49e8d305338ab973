"""/api/v4/system/ping (database and schema) and /metrics (Prometheus); no sign-in."""

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


@router.get("/api/v4/system/ping")
async def ping(rt: RuntimeDep) -> JSONResponse:
    """OK when the database answers; its schema revision."""
    report = await asyncio.to_thread(_check_database, rt)
    ok = report["database"] == "ok"
    return JSONResponse({"status": "OK" if ok else "UNHEALTHY", **report}, 200 if ok else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """This process's Prometheus metrics, with the cluster's job counts."""
    body = await asyncio.to_thread(prom.render, request.app.state.job_counts)
    return Response(body, media_type=prom.CONTENT_TYPE_LATEST)
