"""Recap pages: the list (unread first, live), the form of a one-off recap, one recap with its
channel cards and links to the posts (live while it is made), and mark read, regenerate,
delete."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import Response

from recapd.app.recaps import LimitStatus, ensure_enabled
from recapd.model.app_error import AppError
from recapd.model.recap import MAX_RECAPS_REACHED, Recap, RecapStatus, cited_post_ids
from recapd.runtime import Runtime
from recapd.web.choices import agent_choices, agent_label, channel_choices
from recapd.web.page_route import PageRoute, see_other
from recapd.web.recap_form import RecapForm, field_of, limits_words, message_of
from recapd.web.session import check_csrf
from recapd.web.templating import render
from recapd.web.viewer import CurrentViewer, RuntimeDep, Viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PER_PAGE = 50
FINISHED = (RecapStatus.COMPLETED, RecapStatus.FAILED)


@dataclass(frozen=True)
class PostLink:
    """A cited post: where it lives in the chat, who wrote it and when."""

    url: str
    author: str
    create_at: int


@router.get("/")
async def recaps_page(
    request: Request,
    viewer: CurrentViewer,
    rt: RuntimeDep,
    page: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> Response:
    """The user's recaps, unread first, newest first; rows update live."""
    ensure_enabled(rt.settings)
    now = rt.recaps.clock.now_ms()
    recaps = await asyncio.to_thread(
        rt.store.recaps.list_for_user, viewer.user_id, page, PER_PAGE + 1, unread_first=True
    )
    await rt.recaps.mark_all_viewed(viewer.user_id)
    return render(
        request,
        "recaps.html",
        viewer.session,
        viewer=viewer,
        nav="recaps",
        recaps=recaps[:PER_PAGE],
        page=page,
        more=len(recaps) > PER_PAGE,
        since=now,
    )


async def post_links(rt: Runtime, recap: Recap) -> dict[str, PostLink]:
    """Links to every post the recap cites, built by the chat source (deleted posts: none)."""
    cited = cited_post_ids(recap)
    if not cited:
        return {}
    posts = await rt.chat.get_posts(sorted(cited))
    authors = await rt.chat.get_users(sorted({p.user_id for p in posts.values()}))
    links: dict[str, PostLink] = {}
    for pid, post in posts.items():
        author = authors.get(post.user_id)
        name = author.username if author is not None else "someone"
        links[pid] = PostLink(await rt.chat.permalink(post), name, post.create_at)
    return links


async def _form_page(
    request: Request, rt: Runtime, viewer: Viewer, form: RecapForm, errors: list[AppError]
) -> Response:
    """The form, each error next to its field or above the form."""
    channels, gone = await channel_choices(rt, viewer.user_id, form.channel_ids)
    limits: LimitStatus = await rt.recaps.limit_status(viewer.user_id)
    general = next((e for e in errors if not field_of(e)), None)
    retry_s = int(general.params.get("retry_after_seconds", 0)) if general is not None else 0
    daily = general is not None and general.id == MAX_RECAPS_REACHED
    # Said before the user fills in the form, not only once it is refused.
    waiting_s = limits.cooldown_remaining_seconds if not errors else 0
    response = render(
        request,
        "recap_form.html",
        viewer.session,
        status_code=max((e.status_code for e in errors), default=200),
        viewer=viewer,
        nav="recaps",
        form=form,
        errors={field_of(e): message_of(e) for e in errors if field_of(e)},
        general_error=message_of(general) if general is not None else "",
        retry_at=rt.recaps.clock.now_ms() + retry_s * 1000 if retry_s > 0 else 0,
        retry_minutes=-(-retry_s // 60),
        resets_at=limits.day_resets_at if daily else 0,
        cooldown_until=rt.recaps.clock.now_ms() + waiting_s * 1000 if waiting_s > 0 else 0,
        cooldown_minutes=-(-waiting_s // 60),
        limits_text=limits_words(limits),
        channels=channels,
        gone_channels=gone,
        agents=agent_choices(rt.settings),
    )
    if retry_s > 0:
        response.headers["Retry-After"] = str(retry_s)
    return response


@router.get("/recaps/new")
async def new_recap(request: Request, viewer: CurrentViewer, rt: RuntimeDep) -> Response:
    """The form of a one-off recap: title, channels the user may read, agent."""
    ensure_enabled(rt.settings)
    form = RecapForm(agent_id=rt.settings.default_agent)
    return await _form_page(request, rt, viewer, form, [])


@router.post("/recaps", dependencies=[Depends(check_csrf)])
async def create_recap(request: Request, viewer: CurrentViewer, rt: RuntimeDep) -> Response:
    """Ask for the recap and open its page, which follows it live; or the form again with the
    reason it was refused."""
    ensure_enabled(rt.settings)
    form, unreadable = RecapForm.parse(await request.form())
    if unreadable:
        return await _form_page(request, rt, viewer, form, list(unreadable.values()))
    try:
        recap = await rt.recaps.create(
            viewer.user_id, title=form.title, channel_ids=form.channel_ids, agent_id=form.agent_id
        )
    except AppError as err:
        if err.status_code in (404, 501):
            raise
        return await _form_page(request, rt, viewer, form, [err])
    return see_other(f"/recaps/{recap.id}")


@router.get("/recaps/{recap_id}")
async def recap_page(
    recap_id: str, request: Request, viewer: CurrentViewer, rt: RuntimeDep
) -> Response:
    """One recap: a card per channel with highlights, action items and their posts."""
    recap = await rt.recaps.get(viewer.user_id, recap_id)
    # Cards in the order the channels were chosen, not the order they were finished in.
    order = {cid: i for i, cid in enumerate(recap.channel_ids)}
    return render(
        request,
        "recap.html",
        viewer.session,
        viewer=viewer,
        nav="recaps",
        recap=recap,
        cards=sorted(recap.channels, key=lambda ch: order.get(ch.channel_id, len(order))),
        links=await post_links(rt, recap),
        agent=agent_label(rt, recap.bot_id),
        finished=recap.status in FINISHED,
        since=rt.recaps.clock.now_ms(),
    )


@router.post("/recaps/{recap_id}/read", dependencies=[Depends(check_csrf)])
async def mark_read(recap_id: str, viewer: CurrentViewer, rt: RuntimeDep) -> Response:
    """Mark the recap read."""
    await rt.recaps.mark_read(viewer.user_id, recap_id)
    viewer.session.say("Marked as read.")
    return see_other(f"/recaps/{recap_id}")


@router.post("/recaps/{recap_id}/regenerate", dependencies=[Depends(check_csrf)])
async def regenerate(recap_id: str, viewer: CurrentViewer, rt: RuntimeDep) -> Response:
    """Make the recap again; the page follows its progress live."""
    await rt.recaps.regenerate(viewer.user_id, recap_id)
    viewer.session.say("Making this recap again…")
    return see_other(f"/recaps/{recap_id}")


@router.post("/recaps/{recap_id}/delete", dependencies=[Depends(check_csrf)])
async def delete(recap_id: str, viewer: CurrentViewer, rt: RuntimeDep) -> Response:
    """Delete the recap."""
    recap = await rt.recaps.get(viewer.user_id, recap_id)
    await rt.recaps.delete(viewer.user_id, recap_id)
    viewer.session.say(f"Deleted “{recap.title}”.")
    return see_other("/")
