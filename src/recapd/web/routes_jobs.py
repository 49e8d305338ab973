"""The jobs page, for administrators: status, progress, attempts, error, cancel."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import Response

from recapd.model.app_error import AppError
from recapd.model.job import ALL_JOB_TYPES, LIVE_JOB_STATUSES, JobStatus
from recapd.web.page_route import PageRoute, see_other
from recapd.web.session import check_csrf
from recapd.web.templating import render
from recapd.web.viewer import CurrentViewer, RuntimeDep, Viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PER_PAGE = 50


def _admin_only(viewer: Viewer) -> None:
    """Anyone else gets the page's 404, as if it did not exist."""
    if not viewer.is_admin:
        raise AppError("web.jobs.not_found.app_error", "page not found", status_code=404)


@router.get("/jobs")
async def jobs_page(
    request: Request,
    viewer: CurrentViewer,
    rt: RuntimeDep,
    type: Annotated[str, Query(max_length=64)] = "",
    status: Annotated[str, Query(max_length=32)] = "",
    page: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> Response:
    """Jobs, newest first, filtered by type and status."""
    _admin_only(viewer)
    known_types = [str(t) for t in ALL_JOB_TYPES]
    job_type = type if type in known_types else ""
    job_status = status if status in {s.value for s in JobStatus} else ""
    jobs = await asyncio.to_thread(
        rt.store.jobs.list_page,
        type=job_type or None,
        statuses=[JobStatus(job_status)] if job_status else None,
        page=page,
        per_page=PER_PAGE + 1,
    )
    return render(
        request,
        "jobs.html",
        viewer.session,
        viewer=viewer,
        nav="jobs",
        jobs=jobs[:PER_PAGE],
        more=len(jobs) > PER_PAGE,
        page=page,
        job_type=job_type,
        job_status=job_status,
        types=known_types,
        statuses=[s.value for s in JobStatus],
        live={s.value for s in LIVE_JOB_STATUSES},
        max_attempts={t: rt.jobs.max_attempts(t) for t in known_types},
    )


@router.post("/jobs/{job_id}/cancel", dependencies=[Depends(check_csrf)])
async def cancel(job_id: str, request: Request, viewer: CurrentViewer, rt: RuntimeDep) -> Response:
    """Cancel a pending job, or ask a running one to stop."""
    _admin_only(viewer)
    job = await asyncio.to_thread(rt.jobs.cancel_job, job_id)
    viewer.session.say(f"Job {job.id}: {job.status.replace('_', ' ')}.")
    form = await request.form()
    back = str(form.get("back", ""))
    return see_other(back if back.startswith("/jobs") and "//" not in back else "/jobs")
