"""Posting to the local workspace (the ingest path of `POST /api/v4/posts`), with Mattermost's
rules: the author is the signed-in user and must be a member of the channel."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from recapd.clock import Clock
from recapd.model.app_error import AppError
from recapd.model.chat import ChannelMember, Post
from recapd.model.ids import new_id
from recapd.store.store import Store

# Mattermost's bound on the serialized props of a post (model.PostPropsMaxRunes).
POST_PROPS_MAX_RUNES = 800_000
# Props that mark a post as made by an integration; Mattermost leaves the author's read
# position alone for those.
_INTEGRATION_PROPS = ("from_webhook", "from_bot")


@dataclass(slots=True)
class NewPost:
    """What a client may set on a new post."""

    channel_id: str
    message: str
    root_id: str = ""
    create_at: int = 0
    props: dict[str, Any] = field(default_factory=dict)


def _props_error(detail: str) -> AppError:
    return AppError(
        "model.post.is_valid.props.app_error",
        "Invalid props: at most 800000 characters of JSON.",
        detailed_error=detail,
        status_code=400,
    )


def create_post(store: Store, clock: Clock, user_id: str, new: NewPost) -> Post:
    """Add a post by `user_id` and return it.

    As Mattermost: `create_at` is honoured for system administrators only (imports), anyone
    else posts "now"; the author's channel is marked read at now unless the post comes from an
    integration. Errors come from WorkspaceStore.add_post (ids, length, channel, membership,
    thread root) or are 400 for props too large.
    """
    size = len(json.dumps(new.props, ensure_ascii=False))
    if size > POST_PROPS_MAX_RUNES:
        raise _props_error(f"length={size}")
    now = clock.now_ms()
    with store.transaction() as conn:
        at = now
        if new.create_at and store.tokens.is_admin(user_id, conn=conn):
            at = new.create_at
        post = Post(
            id=new_id(),
            channel_id=new.channel_id,
            user_id=user_id,
            message=new.message,
            create_at=at,
            update_at=at,
            root_id=new.root_id,
            props=dict(new.props),
        )
        store.workspace.add_post(post, conn=conn)
        if not any(str(new.props.get(p, "")).lower() == "true" for p in _INTEGRATION_PROPS):
            # Forward only: an older read position never overwrites a newer one.
            store.workspace.upsert_members(
                [ChannelMember(post.channel_id, user_id, last_viewed_at=now)], conn=conn
            )
    return post
