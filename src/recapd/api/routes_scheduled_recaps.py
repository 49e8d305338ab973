"""/api/v4/scheduled_recaps: schedules of recaps."""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from recapd.api.auth import RuntimeDep, UserId
from recapd.api.errors import check_text, check_url_text
from recapd.api.routes_recaps import Paging, invalid_param
from recapd.api.wire import scheduled_recap_to_wire
from recapd.app.recaps import ensure_enabled
from recapd.app.scheduled_recaps import EDITABLE_FIELDS
from recapd.model.scheduled_recap import ChannelMode, ScheduledRecap, TimePeriod

router = APIRouter(
    prefix="/api/v4/scheduled_recaps",
    tags=["scheduled_recaps"],
    dependencies=[Depends(check_url_text)],
)

# update_at is the server's too: the original's web app sends back only the editable fields
# (ScheduledRecapInput), so a lost-update guard on it would never be used by that client.
_SERVER_FIELDS = frozenset(f.name for f in fields(ScheduledRecap)) - set(EDITABLE_FIELDS)
# What the original's createScheduledRecap refuses missing or empty, in its order. A missing
# timezone is not among them here: recapd takes the user's zone from the chat profile (the
# original's web app always sends one).
_REQUIRED_ON_CREATE = (
    "title",
    "days_of_week",
    "time_of_day",
    "time_period",
    "channel_mode",
    "agent_id",
)

JsonObject = Annotated[dict[str, Any], Body()]

# What the OpenAPI document says of the body (for /docs and the schema fuzz test). The route
# still takes any JSON object, so a wrong type or an unknown key gets the model's own 400.
_BODY_PROPERTIES: dict[str, Any] = {
    "title": {"type": "string", "minLength": 1, "maxLength": 255},
    "days_of_week": {"type": "integer", "minimum": 1, "maximum": 127},
    "time_of_day": {
        "type": "string",
        "pattern": "^([0-1][0-9]|2[0-3]):([0-5][0-9])$",
        "example": "09:00",
    },
    "timezone": {"type": "string", "example": "Europe/Paris"},
    "time_period": {"type": "string", "enum": [p.value for p in TimePeriod]},
    "channel_mode": {"type": "string", "enum": [m.value for m in ChannelMode]},
    "channel_ids": {"type": "array", "items": {"type": "string"}},
    "custom_instructions": {"type": "string"},
    "agent_id": {"type": "string", "minLength": 1},
    "is_recurring": {"type": "boolean"},
}


def _body_doc(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": list(required)}
    return {"requestBody": {"content": {"application/json": {"schema": schema}}}}


_CREATE_DOC = _body_doc(_BODY_PROPERTIES, _REQUIRED_ON_CREATE)
_UPDATE_DOC = _body_doc(_BODY_PROPERTIES)


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
    ensure_enabled(rt.settings)
    for name in _REQUIRED_ON_CREATE:
        value = body.get(name)
        # Only absent, "" and 0 are "missing" (as Go's zero values); a wrong type is the
        # model's 400 with its own id.
        if value is None or value == "" or (value == 0 and not isinstance(value, bool)):
            raise invalid_param(name)
    return scheduled_recap_to_wire(await rt.schedules.create(user_id, _editable(body)))


@router.get("")
async def list_scheduled_recaps(
    user_id: UserId, rt: RuntimeDep, paging: Annotated[Paging, Depends()]
) -> list[dict[str, Any]]:
    """The user's schedules, newest first."""
    found = await rt.schedules.list_for_user(user_id, paging.page, paging.per_page)
    return [scheduled_recap_to_wire(sr) for sr in found]


@router.get("/{scheduled_recap_id}")
async def get_scheduled_recap(
    scheduled_recap_id: str, user_id: UserId, rt: RuntimeDep
) -> dict[str, Any]:
    """One of the user's schedules."""
    return scheduled_recap_to_wire(await rt.schedules.get(user_id, scheduled_recap_id))


@router.put("/{scheduled_recap_id}", openapi_extra=_UPDATE_DOC)
async def update_scheduled_recap(
    scheduled_recap_id: str, body: JsonObject, user_id: UserId, rt: RuntimeDep
) -> dict[str, Any]:
    """Change the editable fields given; the others keep their values."""
    return scheduled_recap_to_wire(
        await rt.schedules.update(user_id, scheduled_recap_id, _editable(body))
    )


@router.delete("/{scheduled_recap_id}")
async def delete_scheduled_recap(
    scheduled_recap_id: str, user_id: UserId, rt: RuntimeDep
) -> dict[str, str]:
    """Soft delete."""
    await rt.schedules.delete(user_id, scheduled_recap_id)
    return {"status": "OK"}


@router.post("/{scheduled_recap_id}/pause")
async def pause(scheduled_recap_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """Stop running the schedule until resumed."""
    return scheduled_recap_to_wire(await rt.schedules.pause(user_id, scheduled_recap_id))


@router.post("/{scheduled_recap_id}/resume")
async def resume(scheduled_recap_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """Run the schedule again from its next occurrence."""
    return scheduled_recap_to_wire(await rt.schedules.resume(user_id, scheduled_recap_id))


@router.post("/{scheduled_recap_id}/run_now")
async def run_now(scheduled_recap_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """An extra occurrence now; the timetable is not disturbed."""
    job = await rt.schedules.run_now(user_id, scheduled_recap_id)
    return {"status": "OK", "job_id": job.id, "job_status": str(job.status)}
