"""/api/v4/recaps: manual recaps, reading, marking, regenerating, deleting, limits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from recapd.api.auth import RuntimeDep, UserId
from recapd.api.errors import check_text, check_url_text
from recapd.model.recap import Recap, RecapChannel

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
    """The body of POST /recaps."""

    model_config = ConfigDict(extra="ignore")

    title: str = ""
    channel_ids: list[str] = Field(default_factory=list)
    agent_id: str = ""


def channel_to_dict(ch: RecapChannel) -> dict[str, Any]:
    """One channel of a recap, as JSON."""
    return {
        "id": ch.id,
        "recap_id": ch.recap_id,
        "channel_id": ch.channel_id,
        "channel_name": ch.channel_name,
        "highlights": [h.to_dict() for h in ch.highlights],
        "action_items": [a.to_dict() for a in ch.action_items],
        "source_post_ids": list(ch.source_post_ids),
        "status": str(ch.status),
        "error": ch.error,
        "create_at": ch.create_at,
    }


def recap_to_dict(r: Recap) -> dict[str, Any]:
    """A recap as JSON, with the original's field names and recapd's additions."""
    return {
        "id": r.id,
        "user_id": r.user_id,
        "title": r.title,
        "create_at": r.create_at,
        "update_at": r.update_at,
        "delete_at": r.delete_at,
        "read_at": r.read_at,
        "viewed_at": r.viewed_at,
        "total_message_count": r.total_message_count,
        "status": str(r.status),
        "bot_id": r.bot_id,
        "scheduled_recap_id": r.scheduled_recap_id,
        "skip_reason": str(r.skip_reason),
        "scheduled_for": r.scheduled_for,
        "error": r.error,
        "channels": [channel_to_dict(c) for c in r.channels],
    }


@router.post("", status_code=201)
async def create_recap(body: CreateRecap, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """Ask for a recap of channels the user can read."""
    check_text(body.model_dump())
    recap = await rt.recaps.create(
        user_id, title=body.title, channel_ids=body.channel_ids, agent_id=body.agent_id
    )
    return recap_to_dict(recap)


@router.get("")
async def list_recaps(
    user_id: UserId, rt: RuntimeDep, paging: Annotated[Paging, Depends()]
) -> list[dict[str, Any]]:
    """The user's recaps, newest first, without channels."""
    recaps = await rt.recaps.list_for_user(user_id, paging.page, paging.per_page)
    return [recap_to_dict(r) for r in recaps]


@router.get("/limit_status")
async def limit_status(user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """The limits in force and today's use."""
    return (await rt.recaps.limit_status(user_id)).to_dict()


@router.post("/mark_viewed")
async def mark_viewed(user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """Mark the user's finished recaps viewed."""
    count = await rt.recaps.mark_all_viewed(user_id)
    return {"status": "OK", "count": count}


@router.get("/{recap_id}")
async def get_recap(recap_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """One of the user's recaps, with its channels."""
    return recap_to_dict(await rt.recaps.get(user_id, recap_id))


@router.post("/{recap_id}/read")
async def mark_read(recap_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """Set read_at once."""
    await rt.recaps.mark_read(user_id, recap_id)
    return recap_to_dict(await rt.recaps.get(user_id, recap_id))


@router.post("/{recap_id}/regenerate")
async def regenerate(recap_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """Make a finished recap again."""
    return recap_to_dict(await rt.recaps.regenerate(user_id, recap_id))


@router.delete("/{recap_id}")
async def delete_recap(recap_id: str, user_id: UserId, rt: RuntimeDep) -> dict[str, str]:
    """Soft delete."""
    await rt.recaps.delete(user_id, recap_id)
    return {"status": "OK"}
