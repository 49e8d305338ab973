"""/api/v4/recaps: manual recaps, reading, marking, regenerating, deleting, limits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from recapd.api.auth import RuntimeDep, UserId
from recapd.api.errors import INVALID_BODY, check_text, check_url_text
from recapd.api.wire import limit_status_to_wire, recap_to_wire
from recapd.app.recaps import ensure_enabled
from recapd.model.app_error import AppError

MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 60

router = APIRouter(prefix="/api/v4/recaps", tags=["recaps"], dependencies=[Depends(check_url_text)])


class Paging:
    """`page` (from 0) and `per_page` (1..200; larger asks are capped at 200)."""

    def __init__(
        self,
        page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        per_page: Annotated[int, Query(ge=1, le=1_000_000)] = DEFAULT_PER_PAGE,
    ) -> None:
        self.page = page
        self.per_page = min(per_page, MAX_PER_PAGE)


class CreateRecap(BaseModel):
    """The body of POST /recaps (the original's CreateRecapRequest)."""

    # The document says what the route enforces: all three present and not empty (checked in
    # create_recap, so the answer is the original's invalid-param 400, not a validation list).
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"required": ["title", "channel_ids", "agent_id"]}
    )

    title: str = Field("", json_schema_extra={"minLength": 1})
    channel_ids: list[str] = Field(default_factory=list, json_schema_extra={"minItems": 1})
    agent_id: str = Field("", json_schema_extra={"minLength": 1})


def invalid_param(name: str) -> AppError:
    """The original's answer to a missing or empty required field (`c.SetInvalidParam`)."""
    return AppError(INVALID_BODY, f"Invalid or missing {name} in request body.", status_code=400)


@router.post("", status_code=201)
async def create_recap(body: CreateRecap, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """Ask for a recap of channels the user can read."""
    ensure_enabled(rt.settings)
    check_text(body.model_dump())
    # The original refuses these empty (400) before anything else; so does recapd.
    for name in ("channel_ids", "title", "agent_id"):
        if not getattr(body, name):
            raise invalid_param(name)
    recap = await rt.recaps.create(
        user_id, title=body.title, channel_ids=body.channel_ids, agent_id=body.agent_id
    )
    return recap_to_wire(recap)


@router.get("")
async def list_recaps(
    user_id: UserId, rt: RuntimeDep, paging: Annotated[Paging, Depends()]
) -> list[dict[str, Any]]:
    """The user's recaps, newest first, without channels."""
    recaps = await rt.recaps.list_for_user(user_id, paging.page, paging.per_page)
    return [recap_to_wire(r) for r in recaps]


@router.get("/limit_status")
async def limit_status(user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """The limits in force and today's use."""
    return limit_status_to_wire(await rt.recaps.limit_status(user_id))


@router.post("/mark_viewed")
async def mark_viewed(user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """Mark the user's finished recaps viewed; the original's MarkRecapsViewedResponse."""
    return {"recap_ids": await rt.recaps.mark_all_viewed(user_id)}


@router.get("/{recap_id}")
async def get_recap(recap_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """One of the user's recaps, with its channels."""
    return recap_to_wire(await rt.recaps.get(user_id, recap_id))


@router.post("/{recap_id}/read")
async def mark_read(recap_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """Set read_at once."""
    await rt.recaps.mark_read(user_id, recap_id)
    return recap_to_wire(await rt.recaps.get(user_id, recap_id))


@router.post("/{recap_id}/regenerate")
async def regenerate(recap_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """Make a finished recap again."""
    return recap_to_wire(await rt.recaps.regenerate(user_id, recap_id))


@router.delete("/{recap_id}")
async def delete_recap(recap_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, str]:
    """Soft delete."""
    await rt.recaps.delete(user_id, recap_id)
    return {"status": "OK"}
