"""/api/v4/posts: post to the local workspace, in Mattermost's shape (the ingest route)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from recapd.api.auth import RuntimeDep, UserId
from recapd.api.errors import check_text, check_url_text
from recapd.app.posts import NewPost, create_post
from recapd.model.app_error import AppError
from recapd.model.chat import Post

# 9999-12-31T23:59:59.999Z: the last millisecond a client may name as a post's time.
MAX_TIME_MS = 253_402_300_799_999

router = APIRouter(prefix="/api/v4/posts", tags=["posts"], dependencies=[Depends(check_url_text)])


class CreatePost(BaseModel):
    """The body of POST /posts (Mattermost's; `metadata` and unknown keys are ignored)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    channel_id: str = Field(max_length=64)
    message: str
    root_id: str = Field(default="", max_length=64)
    create_at: int = Field(default=0, ge=0, le=MAX_TIME_MS)
    props: dict[str, Any] = Field(default_factory=dict)
    file_ids: list[str] = Field(default_factory=list)
    pending_post_id: str = Field(default="", max_length=64)


def post_to_dict(post: Post, pending_post_id: str = "") -> dict[str, Any]:
    """A post as JSON, with Mattermost's field names."""
    return {
        "id": post.id,
        "create_at": post.create_at,
        "update_at": post.update_at,
        "edit_at": post.edit_at,
        "delete_at": post.delete_at,
        "is_pinned": False,
        "user_id": post.user_id,
        "channel_id": post.channel_id,
        "root_id": post.root_id,
        "original_id": "",
        "message": post.message,
        "type": post.type,
        "props": dict(post.props),
        "hashtags": "",
        "file_ids": [],
        "pending_post_id": pending_post_id,
        "metadata": {},
    }


@router.post("", status_code=201)
async def create_post_route(body: CreatePost, user_id: UserId, rt: RuntimeDep) -> dict[str, Any]:
    """A new post by the signed-in user, who must be a member of the channel."""
    check_text(body.model_dump())
    if body.file_ids:
        raise AppError(
            "api.post.create_post.file_ids.app_error",
            "File attachments are not supported by recapd.",
            status_code=400,
        )
    new = NewPost(
        channel_id=body.channel_id,
        message=body.message,
        root_id=body.root_id,
        create_at=body.create_at,
        props=body.props,
    )
    post = await asyncio.to_thread(create_post, rt.store, rt.jobs.clock, user_id, new)
    return post_to_dict(post, body.pending_post_id)
