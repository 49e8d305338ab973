"""`recapd schedules`: create, list, show (with the last runs), pause, resume, delete, run now."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from recapd.cli.common import channel_names, open_runtime
from recapd.cli.output import local, out, show, table, utc
from recapd.cli.recaps import MADE_BY, cannot_read, is_permission_error

if TYPE_CHECKING:
    from rich.table import Table

    from recapd.model.scheduled_recap import ScheduledRecap

app = typer.Typer(help="Scheduled recaps.", no_args_is_help=True)

_DAY_NAMES = {"sun": 1, "mon": 2, "tue": 4, "wed": 8, "thu": 16, "fri": 32, "sat": 64}
_DAY_SETS = {"weekdays": 62, "weekends": 65, "everyday": 127, "daily": 127}
_WINDOWS = {
    "last_24h": "the last 24 hours",
    "last_week": "the last week",
    "since_last_read": "since the user last read each channel",
}
RUNS_SHOWN = 10


def parse_days(text: str) -> int:
    """'mon,wed,fri', 'weekdays', 'everyday' or a bitmask (Sunday=1 ... Saturday=64)."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    if text in _DAY_SETS:
        return _DAY_SETS[text]
    mask = 0
    for part in text.split(","):
        bit = _DAY_NAMES.get(part.strip()[:3])
        if bit is None:
            raise typer.BadParameter(f"{part!r}: use mon..sun, weekdays, everyday or a bitmask")
        mask |= bit
    return mask


def _days_text(mask: int) -> str:
    for name, value in _DAY_SETS.items():
        if mask == value:
            return name
    return ",".join(n for n, bit in _DAY_NAMES.items() if mask & bit)


def _state(sr: ScheduledRecap) -> str:
    if sr.enabled:
        return "on"
    return f"paused: {sr.pause_reason}" if sr.pause_reason else "paused"


def _schedules_table(items: list[ScheduledRecap]) -> Table:
    # Sized for 80 columns: the id and the next run (on two lines) never wrap, the rest folds.
    t = table(title="Scheduled recaps")
    t.add_column("id", no_wrap=True)
    t.add_column("title / when")
    t.add_column("next run", no_wrap=True)
    t.add_column("state")
    for sr in items:
        when = f"{_days_text(sr.days_of_week)} {sr.time_of_day}\n{sr.timezone}"
        if not sr.is_recurring:
            when += " (once)"
        next_run = local(sr.next_run_at, sr.timezone) if sr.enabled else "-"
        day, _, rest = next_run.partition(" ")
        date, _, clock = rest.partition(" ")
        cell = f"{day} {date}\n{clock}" if rest else next_run
        runs = f"\n{sr.run_count} run{'s' if sr.run_count != 1 else ''}"
        t.add_row(sr.id, f"{sr.title}\n{when}", cell, _state(sr) + runs)
    return t


@app.command("create")
def schedules_create(
    ctx: typer.Context,
    user: str = typer.Option(..., "--user", help="Username or id of the reader."),
    title: str = typer.Option(..., help="Title of the recaps."),
    days: str = typer.Option("weekdays", help="mon,wed,fri | weekdays | everyday | bitmask."),
    time_of_day: str = typer.Option("09:00", "--time", help="HH:MM, 24-hour, in --timezone."),
    timezone: str = typer.Option(..., help="IANA zone, e.g. Europe/Paris."),
    period: str = typer.Option("since_last_read", help="last_24h | last_week | since_last_read"),
    channel: list[str] = typer.Option([], "--channel", help="Channel: name, team/name or id."),
    all_unreads: bool = typer.Option(False, "--all-unreads", help="Every unread channel."),
    agent: str = typer.Option("", help="Agent id (default: the default agent)."),
    instructions: str = typer.Option("", help="Custom instructions for the agent."),
    once: bool = typer.Option(False, "--once", help="Run once, then disable."),
) -> None:
    """Create a scheduled recap of the channels given with --channel, or of every unread
    channel with --all-unreads."""
    import asyncio

    from recapd.app.workspace import find_channel, find_user
    from recapd.model.app_error import AppError

    if not channel and not all_unreads:
        raise typer.BadParameter(
            "give the channels to recap with --channel (once per channel) or use --all-unreads",
            param_hint="'--channel' / '--all-unreads'",
        )
    if channel and all_unreads:
        raise typer.BadParameter(
            "--all-unreads recaps every unread channel: leave out --channel, or --all-unreads",
            param_hint="'--channel' / '--all-unreads'",
        )
    mask = parse_days(days)
    with open_runtime(ctx) as rt:
        reader = find_user(rt.store, user)
        chosen = [find_channel(rt.store, c) for c in channel]
        names = {c.id: c.name for c in chosen}
        fields: dict[str, Any] = {
            "title": title,
            "days_of_week": mask,
            "time_of_day": time_of_day,
            "timezone": timezone,
            "time_period": period,
            "channel_mode": "all_unreads" if all_unreads else "specific",
            "channel_ids": list(names),
            "custom_instructions": instructions,
            "is_recurring": not once,
        }
        if agent:
            fields["agent_id"] = agent
        try:
            sr = asyncio.run(rt.schedules.create(reader.id, fields))
        except AppError as exc:
            if is_permission_error(exc):
                raise cannot_read(rt, exc, reader, names) from exc
            raise
    show(_schedules_table([sr]))


@app.command("list")
def schedules_list(
    ctx: typer.Context, user: str = typer.Option(..., "--user", help="Username or id.")
) -> None:
    """The user's scheduled recaps, each next run in the schedule's own zone."""
    import asyncio

    from recapd.app.workspace import find_user

    with open_runtime(ctx) as rt:
        reader = find_user(rt.store, user)
        found = asyncio.run(rt.schedules.list_for_user(reader.id, 0, 200))
    show(_schedules_table(found))
    if not found:
        out(f"{reader.username} has no scheduled recaps")


@app.command("show")
def schedules_show(
    ctx: typer.Context,
    sr_id: str,
    user: str = typer.Option(..., "--user", help="Username or id."),
    runs: int = typer.Option(RUNS_SHOWN, "--runs", min=0, max=200, help="Last runs to show."),
) -> None:
    """One scheduled recap in full: channels, window, timetable, agent, instructions, next run,
    and its last runs with their outcomes."""
    import asyncio

    from recapd.app.workspace import find_user

    with open_runtime(ctx) as rt:
        reader = find_user(rt.store, user)
        sr = asyncio.run(rt.schedules.get(reader.id, sr_id))
        last = asyncio.run(rt.schedules.last_runs(reader.id, sr_id, runs)) if runs else []
        names = channel_names(rt, sr.channel_ids)
    if sr.channel_mode == "all_unreads":
        channels = "every channel with unread posts at run time"
    else:
        channels = ", ".join(names.get(c, c) for c in sr.channel_ids)
    timetable = f"{_days_text(sr.days_of_week)} at {sr.time_of_day}, {sr.timezone}"
    if not sr.is_recurring:
        timetable += " (once)"
    next_run = "-"
    if sr.enabled:
        next_run = f"{local(sr.next_run_at, sr.timezone)}\n{utc(sr.next_run_at)} UTC"
    t = table("", "", title=f"Scheduled recap {sr.id}", show_header=False)
    t.columns[1].overflow = "fold"
    for name, value in (
        ("title", sr.title),
        ("state", _state(sr)),
        ("channels", channels),
        ("window", _WINDOWS.get(sr.time_period, sr.time_period)),
        ("when", timetable),
        ("agent", sr.agent_id),
        ("instructions", sr.custom_instructions or "-"),
        ("next run", next_run),
        ("runs", f"{sr.run_count}; failed in a row: {sr.consecutive_failures}"),
    ):
        t.add_row(name, value)
    show(t)
    if not runs:
        return
    if not last:
        out("no runs yet")
        return
    r = table(title=f"Last runs, latest first (times in {sr.timezone})")
    r.add_column("occurrence", no_wrap=True)
    r.add_column("outcome", overflow="fold")
    for run in last:
        outcome = run.outcome
        if run.has_recap:
            outcome += f"\nrecap {run.recap_id}"
        r.add_row(local(run.scheduled_for, sr.timezone), outcome)
    show(r)


def _schedule_action(ctx: typer.Context, user: str, sr_id: str, action: str) -> None:
    import asyncio

    from recapd.app.workspace import find_user

    with open_runtime(ctx) as rt:
        reader = find_user(rt.store, user)
        svc = rt.schedules
        if action == "pause":
            sr = asyncio.run(svc.pause(reader.id, sr_id))
        elif action == "resume":
            sr = asyncio.run(svc.resume(reader.id, sr_id))
        elif action == "delete":
            asyncio.run(svc.delete(reader.id, sr_id))
            out(f"scheduled recap {sr_id} deleted")
            return
        else:
            job = asyncio.run(svc.run_now(reader.id, sr_id))
            out(f"run now: job {job.id} queued; {MADE_BY}")
            return
    show(_schedules_table([sr]))


@app.command("pause")
def schedules_pause(
    ctx: typer.Context, sr_id: str, user: str = typer.Option(..., "--user")
) -> None:
    """Stop running it until resumed."""
    _schedule_action(ctx, user, sr_id, "pause")


@app.command("resume")
def schedules_resume(
    ctx: typer.Context, sr_id: str, user: str = typer.Option(..., "--user")
) -> None:
    """Run it again from its next occurrence (within the limit of live schedules)."""
    _schedule_action(ctx, user, sr_id, "resume")


@app.command("delete")
def schedules_delete(
    ctx: typer.Context, sr_id: str, user: str = typer.Option(..., "--user")
) -> None:
    """Delete it."""
    _schedule_action(ctx, user, sr_id, "delete")


@app.command("run-now")
def schedules_run_now(
    ctx: typer.Context, sr_id: str, user: str = typer.Option(..., "--user")
) -> None:
    """An extra run now; the timetable does not move."""
    _schedule_action(ctx, user, sr_id, "run-now")
