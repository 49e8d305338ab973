"""/api/v4/scheduled_recaps: schedules of recaps."""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from recapd.api.auth import RuntimeDep, UserId
from recapd.api.errors import INVALID_BODY, check_text, check_url_text
from recapd.api.routes_recaps import Paging
from recapd.app.scheduled_recaps import EDITABLE_FIELDS
from recapd.model.app_error import AppError
from recapd.model.scheduled_recap import ChannelMode, ScheduledRecap, TimePeriod

router = APIRouter(
    prefix="/api/v4/scheduled_recaps",
    tags=["scheduled_recaps"],
    dependencies=[Depends(check_url_text)],
)

_SERVER_FIELDS = frozenset(f.name for f in fields(ScheduledRecap)) - set(EDITABLE_FIELDS)

JsonObject = Annotated[dict[str, Any], Body()]

_MAX_MS = 2**63 - 1
# What the OpenAPI document says of the body (for /docs and the schema fuzz test). The route
# still takes any JSON object, so a wrong type or an unknown key gets the model's own 400.
_BODY_PROPERTIES: dict[str, Any] = {
    "title": {"type": "string"},
    "days_of_week": {"type": "integer", "minimum": 1, "maximum": 127},
    "time_of_day": {"type": "string", "example": "09:00"},
    "timezone": {"type": "string", "example": "Europe/Paris"},
    "time_period": {"type": "string", "enum": [p.value for p in TimePeriod]},
    "channel_mode": {"type": "string", "enum": [m.value for m in ChannelMode]},
    "channel_ids": {"type": "array", "items": {"type": "string"}},
    "custom_instructions": {"type": "string"},
    "agent_id": {"type": "string"},
    "is_recurring": {"type": "boolean"},
}


def _body_doc(properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties}
    return {"requestBody": {"content": {"application/json": {"schema": schema}}}}


_CREATE_DOC = _body_doc(_BODY_PROPERTIES)
_UPDATE_DOC = _body_doc(
    {**_BODY_PROPERTIES, "update_at": {"type": "integer", "minimum": 0, "maximum": _MAX_MS}}
)


def _editable(body: dict[str, Any]) -> dict[str, Any]:
    """What the client may set: a whole ScheduledRecap sent back is fine (the server's fields
    are ignored); a key the model does not know answers 400 in the service."""
    check_text(body)
    return {k: v for k, v in body.items() if k not in _SERVER_FIELDS}


@router.post("", status_code=201, openapi_extra=_CREATE_DOC)
async def create_scheduled_recap(
    body: JsonObject, user_id: UserId, rt: RuntimeDep
) -> dict[str, Any]:
    """A new schedule (enabled)."""
    return (await rt.schedules.create(user_id, _editable(body))).to_dict()


@router.get("")
async def list_scheduled_recaps(
    user_id: UserId, rt: RuntimeDep, paging: Annotated[Paging, Depends()]
) -> list[dict[str, Any]]:
    """The user's schedules, newest first."""
    found = await rt.schedules.list_for_user(user_id, paging.page, paging.per_page)
    return [sr.to_dict() for sr in found]


@router.get("/{sr_id}")
async def get_scheduled_recap(sr_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """One of the user's schedules."""
    return (await rt.schedules.get(user_id, sr_id)).to_dict()


@router.put("/{sr_id}", openapi_extra=_UPDATE_DOC)
async def update_scheduled_recap(
    sr_id: str, body: JsonObject, user_id: UserId, rt: RuntimeDep
) -> dict[str, Any]:
    """Change the editable fields; `update_at` in the body guards against lost updates."""
    expected = body.get("update_at", 0)
    if not isinstance(expected, int) or isinstance(expected, bool):
        expected = 0
    elif not 0 <= expected <= _MAX_MS:
        # Out of the database's range: it could never match, and must not reach the SQL.
        raise AppError(INVALID_BODY, "update_at must be a time in milliseconds.", status_code=400)
    saved = await rt.schedules.update(user_id, sr_id, _editable(body), expected)
    return saved.to_dict()


@router.delete("/{sr_id}")
async def delete_scheduled_recap(sr_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, str]:
    """Soft delete."""
    await rt.schedules.delete(user_id, sr_id)
    return {"status": "OK"}


@router.post("/{sr_id}/pause")
async def pause(sr_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """Stop running the schedule until resumed."""
    return (await rt.schedules.pause(user_id, sr_id)).to_dict()


@router.post("/{sr_id}/resume")
async def resume(sr_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """Run the schedule again from its next occurrence."""
    return (await rt.schedules.resume(user_id, sr_id)).to_dict()


@router.post("/{sr_id}/run_now")
async def run_now(sr_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """An extra occurrence now; the timetable is not disturbed."""
    job = await rt.schedules.run_now(user_id, sr_id)
    return {"status": "OK", "job_id": job.id, "job_status": str(job.status)}
