"""/api/v4/jobs: the job system for administrators (list with filters, get one, cancel), as
Mattermost's `/jobs` routes."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from recapd.api.auth import RuntimeDep, UserId
from recapd.api.errors import check_url_text
from recapd.api.routes_recaps import Paging
from recapd.model.app_error import AppError
from recapd.model.job import Job, JobStatus
from recapd.runtime import Runtime

router = APIRouter(prefix="/api/v4/jobs", tags=["jobs"], dependencies=[Depends(check_url_text)])

# Job types are short identifiers; a longer filter cannot match anything.
_MAX_TYPE_LENGTH = 64


def job_to_dict(job: Job) -> dict[str, Any]:
    """A job as JSON: Mattermost's Job fields, then recapd's (attempt, run_at, node_id,
    dedupe_key, term)."""
    return {
        "id": job.id,
        "type": job.type,
        "priority": job.priority,
        "create_at": job.create_at,
        "start_at": job.start_at,
        "last_activity_at": job.last_activity_at,
        "status": str(job.status),
        "progress": job.progress,
        "data": dict(job.data),
        "attempt": job.attempt,
        "run_at": job.run_at,
        "node_id": job.node_id,
        "dedupe_key": job.dedupe_key or "",
        "term": job.term,
    }


async def admin_user_id(user_id: UserId, rt: RuntimeDep) -> str:
    """The signed-in user when a system administrator; 403 like Mattermost otherwise."""
    if not await asyncio.to_thread(rt.store.tokens.is_admin, user_id):
        raise AppError(
            "api.context.permissions.app_error",
            "You do not have the appropriate permissions.",
            detailed_error=f"userId={user_id}, permission=manage_jobs",
            status_code=403,
        )
    return user_id


AdminId = Annotated[str, Depends(admin_user_id)]


def _statuses(given: list[str]) -> list[JobStatus]:
    """The status filter: repeated `status` parameters or comma-separated values."""
    known = {s.value: s for s in JobStatus}
    wanted: list[JobStatus] = []
    for value in (v.strip() for item in given for v in item.split(",")):
        if not value:
            continue
        if value not in known:
            raise AppError(
                "api.job.get_jobs.status.app_error",
                f"Unknown job status {value[:40]!r}.",
                detailed_error=f"known={','.join(known)}",
                status_code=400,
            )
        wanted.append(known[value])
    return wanted


def _job_type(*given: str | None) -> str | None:
    """The type filter (`job_type` as Mattermost, or `type`); 400 when they disagree."""
    values = {g for g in given if g}
    if len(values) > 1:
        raise AppError(
            "api.job.get_jobs.type.app_error",
            "`type` and `job_type` name different job types.",
            status_code=400,
        )
    return values.pop() if values else None


async def _list(
    rt: Runtime, job_type: str | None, statuses: list[JobStatus], paging: Paging
) -> list[dict[str, Any]]:
    if job_type is not None and len(job_type) > _MAX_TYPE_LENGTH:
        return []
    found = await asyncio.to_thread(
        rt.store.jobs.list_page,
        type=job_type,
        statuses=statuses or None,
        page=paging.page,
        per_page=paging.per_page,
    )
    return [job_to_dict(j) for j in found]


@router.get("")
async def list_jobs(
    _: AdminId,
    rt: RuntimeDep,
    paging: Annotated[Paging, Depends()],
    job_type: str | None = None,
    type: str | None = None,
    status: Annotated[list[str] | None, Query()] = None,
) -> list[dict[str, Any]]:
    """Jobs, newest first, optionally of one type and in some statuses."""
    return await _list(rt, _job_type(job_type, type), _statuses(status or []), paging)


@router.get("/type/{job_type}")
async def list_jobs_by_type(
    job_type: str, _: AdminId, rt: RuntimeDep, paging: Annotated[Paging, Depends()]
) -> list[dict[str, Any]]:
    """Jobs of one type, newest first (Mattermost's `/jobs/type/{type}`)."""
    return await _list(rt, job_type, [], paging)


@router.get("/{job_id}")
async def get_job(job_id: str, _: AdminId, rt: RuntimeDep) -> dict[str, Any]:
    """One job with its data (errors and tracebacks included)."""
    return job_to_dict(await asyncio.to_thread(rt.store.jobs.get, job_id))


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: str, _: AdminId, rt: RuntimeDep) -> dict[str, Any]:
    """Cancel a pending job at once, or ask a running one to stop (it ends `canceled` when its
    worker notices, at the next heartbeat); a finished job answers 409."""
    job = await asyncio.to_thread(rt.jobs.cancel_job, job_id)
    if job.status not in (JobStatus.CANCELED, JobStatus.CANCEL_REQUESTED):
        raise AppError(
            "jobs.request_cancellation.status.error",
            f"The job has already finished ({job.status}); it cannot be canceled.",
            detailed_error=f"id={job_id} status={job.status}",
            status_code=409,
        )
    return {"status": "OK", "job_id": job.id, "job_status": str(job.status)}
