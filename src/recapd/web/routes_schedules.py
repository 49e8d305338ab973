"""Scheduled-recap pages: the list (next run in each schedule's zone), one schedule with its last
runs, the create and edit form, and pause, resume, run now, delete."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from recapd.model.app_error import AppError
from recapd.model.chat import Channel
from recapd.model.scheduled_recap import ScheduledRecap
from recapd.runtime import Runtime
from recapd.web.choices import agent_choices, agent_label, channel_choices, channel_labels
from recapd.web.page_route import PageRoute, see_other
from recapd.web.schedule_form import (
    ScheduleForm,
    field_errors,
    field_of,
    message_of,
    messages,
    time_zones,
)
from recapd.web.session import check_csrf
from recapd.web.templating import PERIOD_LABELS, render, when
from recapd.web.viewer import CurrentViewer, RuntimeDep, Viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)

MAX_SCHEDULES_SHOWN = 200
RUNS_SHOWN = 10


async def _channel_names(
    rt: Runtime, viewer_id: str, schedules: list[ScheduledRecap]
) -> dict[str, str]:
    found: list[Channel] = []
    for channel_id in sorted({c for sr in schedules for c in sr.channel_ids}):
        try:
            found.append(await rt.chat.get_channel(channel_id))
        except AppError:
            continue
    return (await channel_labels(rt, viewer_id, found))[0]


@router.get("/schedules")
async def schedules_page(request: Request, viewer: CurrentViewer, rt: RuntimeDep) -> Response:
    """The user's schedules."""
    schedules = await rt.schedules.list_for_user(viewer.user_id, 0, MAX_SCHEDULES_SHOWN)
    return render(
        request,
        "schedules.html",
        viewer.session,
        viewer=viewer,
        nav="schedules",
        schedules=schedules,
        channel_names=await _channel_names(rt, viewer.user_id, schedules),
    )


async def _form_page(
    request: Request,
    rt: Runtime,
    viewer: Viewer,
    form: ScheduleForm,
    *,
    schedule: ScheduledRecap | None = None,
    errors: dict[str, AppError] | None = None,
) -> Response:
    errors = errors or {}
    readable, gone = await channel_choices(rt, viewer.user_id, form.channel_ids)
    return render(
        request,
        "schedule_form.html",
        viewer.session,
        status_code=400 if errors else 200,
        viewer=viewer,
        nav="schedules",
        form=form,
        schedule=schedule,
        errors=messages((k, v) for k, v in errors.items() if k),
        general_error=message_of(errors[""]) if "" in errors else "",
        channels=readable,
        gone_channels=gone,
        agents=agent_choices(rt.settings),
        zones=time_zones(),
        periods=PERIOD_LABELS,
        next_runs=_preview(form, rt.recaps.clock.now_ms()),
    )


def _preview(form: ScheduleForm, now_ms: int) -> list[str]:
    """The next three runs of what the form holds (none while it is invalid)."""
    sr = ScheduledRecap.from_dict(form.fields())
    try:
        runs = sr.next_occurrences(now_ms, 3)
    except (AppError, TypeError, ValueError):
        return []
    return [when(r, form.timezone) for r in runs]


@router.get("/schedules/new")
async def new_schedule(request: Request, viewer: CurrentViewer, rt: RuntimeDep) -> Response:
    """The form for a new schedule."""
    form = ScheduleForm.blank(rt.settings.default_agent, viewer.timezone)
    return await _form_page(request, rt, viewer, form)


async def _submit(
    request: Request, rt: Runtime, viewer: Viewer, schedule: ScheduledRecap | None
) -> Response:
    form, unreadable = ScheduleForm.parse(await request.form())
    now = rt.recaps.clock.now_ms()
    errors: dict[str, AppError] = {
        name: AppError(f"web.schedule_form.{name}.app_error", text, status_code=400)
        for name, text in unreadable.items()
    }
    errors |= {k: v for k, v in field_errors(viewer.user_id, form.fields(), now).items()}
    if errors:
        return await _form_page(request, rt, viewer, form, schedule=schedule, errors=errors)
    try:
        if schedule is None:
            saved = await rt.schedules.create(viewer.user_id, form.fields())
        else:
            saved = await rt.schedules.update(
                viewer.user_id, schedule.id, form.fields(), form.update_at
            )
    except AppError as err:
        if err.status_code == 404:
            raise
        return await _form_page(
            request, rt, viewer, form, schedule=schedule, errors={field_of(err): err}
        )
    verb = "created" if schedule is None else "saved"
    next_run = when(saved.next_run_at, saved.timezone) if saved.enabled else "paused"
    viewer.session.say(f"Schedule “{saved.title}” {verb}. Next run: {next_run}.")
    return see_other("/schedules")


@router.post("/schedules", dependencies=[Depends(check_csrf)])
async def create_schedule(request: Request, viewer: CurrentViewer, rt: RuntimeDep) -> Response:
    """Create a schedule, or show the form again with each error next to its field."""
    return await _submit(request, rt, viewer, None)


@router.get("/schedules/{sr_id}/edit")
async def edit_schedule(
    sr_id: str, request: Request, viewer: CurrentViewer, rt: RuntimeDep
) -> Response:
    """The form of an existing schedule."""
    sr = await rt.schedules.get(viewer.user_id, sr_id)
    return await _form_page(request, rt, viewer, ScheduleForm.of(sr), schedule=sr)


@router.get("/schedules/{sr_id}")
async def show_schedule(
    sr_id: str, request: Request, viewer: CurrentViewer, rt: RuntimeDep
) -> Response:
    """One schedule: what it recaps and when, and its last runs with their outcomes."""
    sr = await rt.schedules.get(viewer.user_id, sr_id)
    runs = await rt.schedules.last_runs(viewer.user_id, sr_id, RUNS_SHOWN)
    return render(
        request,
        "schedule.html",
        viewer.session,
        viewer=viewer,
        nav="schedules",
        sr=sr,
        runs=runs,
        agent=agent_label(rt, sr.agent_id),
        channel_names=await _channel_names(rt, viewer.user_id, [sr]),
    )


@router.post("/schedules/{sr_id}", dependencies=[Depends(check_csrf)])
async def update_schedule(
    sr_id: str, request: Request, viewer: CurrentViewer, rt: RuntimeDep
) -> Response:
    """Save the edited schedule (a change made meanwhile elsewhere is reported, not lost)."""
    sr = await rt.schedules.get(viewer.user_id, sr_id)
    return await _submit(request, rt, viewer, sr)


@router.post("/schedules/{sr_id}/pause", dependencies=[Depends(check_csrf)])
async def pause(sr_id: str, viewer: CurrentViewer, rt: RuntimeDep) -> Response:
    """Stop running the schedule."""
    sr = await rt.schedules.pause(viewer.user_id, sr_id)
    viewer.session.say(f"Paused “{sr.title}”.")
    return see_other("/schedules")


@router.post("/schedules/{sr_id}/resume", dependencies=[Depends(check_csrf)])
async def resume(sr_id: str, viewer: CurrentViewer, rt: RuntimeDep) -> Response:
    """Run the schedule again from its next occurrence."""
    sr = await rt.schedules.resume(viewer.user_id, sr_id)
    viewer.session.say(f"Resumed “{sr.title}”. Next run: {when(sr.next_run_at, sr.timezone)}.")
    return see_other("/schedules")


@router.post("/schedules/{sr_id}/run", dependencies=[Depends(check_csrf)])
async def run_now(sr_id: str, viewer: CurrentViewer, rt: RuntimeDep) -> Response:
    """An extra run now; the recap appears on the recaps page when it is made."""
    sr = await rt.schedules.get(viewer.user_id, sr_id)
    await rt.schedules.run_now(viewer.user_id, sr_id)
    viewer.session.say(f"Running “{sr.title}” now: the recap appears here when it is ready.")
    return see_other("/")


@router.post("/schedules/{sr_id}/delete", dependencies=[Depends(check_csrf)])
async def delete(sr_id: str, viewer: CurrentViewer, rt: RuntimeDep) -> Response:
    """Delete the schedule."""
    sr = await rt.schedules.get(viewer.user_id, sr_id)
    await rt.schedules.delete(viewer.user_id, sr_id)
    viewer.session.say(f"Deleted “{sr.title}”.")
    return see_other("/schedules")
