"""Permalinks of the local workspace: `{site_url}/{team}/pl/{post_id}`, as the chat source
builds them, open the post among its neighbours when recapd itself is the site (the default
`site_url` is recapd's default address). Only a reader of the channel sees it."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from recapd.model.app_error import AppError
from recapd.model.chat import Post
from recapd.web.page_route import PageRoute
from recapd.web.templating import render
from recapd.web.viewer import CurrentViewer, RuntimeDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# The post is shown with this many posts around it, within this window.
NEIGHBOURS = 5
WINDOW_MS = 6 * 3600 * 1000


def _not_found(post_id: str) -> AppError:
    return AppError(
        "web.permalink.not_found.app_error",
        "This post does not exist, was deleted, or is in a channel you cannot read.",
        detailed_error=f"post_id={post_id}",
        status_code=404,
    )


@router.get("/{team}/pl/{post_id}")
async def permalink(
    team: str, post_id: str, request: Request, viewer: CurrentViewer, rt: RuntimeDep
) -> Response:
    """The post, highlighted, with its neighbours in the channel."""
    post = (await rt.chat.get_posts([post_id])).get(post_id)
    if post is None or not await rt.chat.can_read(viewer.user_id, post.channel_id):
        raise _not_found(post_id)
    channel = await rt.chat.get_channel(post.channel_id)
    before: list[Post] = []
    after: list[Post] = []
    async for p in rt.chat.iter_posts(
        post.channel_id, post.create_at - WINDOW_MS, post.create_at + WINDOW_MS
    ):
        if (p.create_at, p.id) < (post.create_at, post.id):
            before = [*before, p][-NEIGHBOURS:]
        elif p.id != post.id:
            after.append(p)
            if len(after) >= NEIGHBOURS:
                break
    shown = [*before, post, *after]
    authors = await rt.chat.get_users(sorted({p.user_id for p in shown}))
    return render(
        request,
        "post.html",
        viewer.session,
        viewer=viewer,
        nav="",
        post=post,
        posts=shown,
        channel=channel,
        authors={uid: u.username for uid, u in authors.items()},
        zone=viewer.timezone,
    )
