"""The `recapd` command: migrate, status, serve, worker, demo, jobs, import, recaps, users."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import importlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import typer
from rich.console import Console
from rich.table import Table

from recapd import __version__
from recapd.chat.importers.common import ImportReport
from recapd.chat.importers.irc_log import import_log
from recapd.chat.importers.mattermost import import_mattermost
from recapd.chat.importers.slack import import_slack
from recapd.chat.mattermost.check import check_settings
from recapd.clock import SystemClock
from recapd.config import ConfigError, Settings, load_settings
from recapd.delivery.text import render_recap
from recapd.demo.seed import seed_demo, token_file_for
from recapd.jobs.server import JobServer
from recapd.model.app_error import AppError
from recapd.model.chat import Channel, User
from recapd.model.ids import new_id
from recapd.model.job import Job, JobStatus
from recapd.model.recap import Recap, RecapStatus
from recapd.model.scheduled_recap import ScheduledRecap
from recapd.model.tz import load_zone
from recapd.runtime import Runtime
from recapd.serve import DEFAULT_HOST, DEFAULT_PORT, ServeError, ServeOptions, run_until_signal
from recapd.store import migrate as migrations
from recapd.store.store import Store
from recapd.store.token_store import SYSTEM_ADMIN

app = typer.Typer(
    help="recapd: scheduled AI recaps of team-chat channels.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@dataclass
class _Options:
    config_file: Path | None
    database_url: str | None


def _settings(ctx: typer.Context) -> Settings:
    opts: _Options = ctx.obj
    try:
        return load_settings(opts.config_file, database_url=opts.database_url)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


def _fail(exc: AppError | Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@app.callback()
def main(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="TOML settings file (default: $RECAPD_CONFIG).",
        envvar=None,
    ),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="sqlite:///PATH or postgresql://user@host:port/db "
        "(default: $RECAPD_DATABASE_URL, else sqlite:///recapd.db).",
    ),
) -> None:
    """recapd: scheduled AI recaps of team-chat channels."""
    ctx.obj = _Options(config_file=config, database_url=database_url)


@app.command()
def version() -> None:
    """Print recapd's version."""
    console.print(f"recapd {__version__}")


@app.command()
def migrate(ctx: typer.Context) -> None:
    """Create or upgrade the database schema to the newest revision."""
    settings = _settings(ctx)
    store = Store.open(settings.database_url)
    try:
        before = migrations.current_revision(store.db)
        migrations.upgrade(store.db)
        after = migrations.current_revision(store.db)
    except Exception as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    where = settings.redacted_database_url
    if before == after:
        console.print(f"{where}: schema already at revision {after}")
    else:
        console.print(f"{where}: schema migrated from {before or 'empty'} to {after}")


@app.command()
def status(ctx: typer.Context) -> None:
    """Show the database, its schema revision and what it holds."""
    settings = _settings(ctx)
    store = Store.open(settings.database_url)
    try:
        current = migrations.current_revision(store.db)
        head = migrations.head_revision(store.db)
        console.print(f"database: {settings.redacted_database_url}")
        console.print(f"schema:   revision {current or 'none'} (newest {head})")
        if current != head:
            console.print("run `recapd migrate` to bring the schema up to date")
            raise typer.Exit(1)
        table = Table(title="What is there")
        table.add_column("what")
        table.add_column("count", justify="right")
        table.add_row("scheduled recaps", str(store.scheduled_recaps.count()))
        table.add_row("recaps", str(store.recaps.count()))
        for (job_type, job_status), n in sorted(store.jobs.count_by_type_and_status().items()):
            table.add_row(f"jobs {job_type} {job_status}", str(n))
        console.print(table)
        flag = "on" if settings.recaps_enabled else "off"
        console.print(f"AI recaps: {flag}; node: {settings.effective_node_id()}")
    finally:
        store.close()


# -- worker ---------------------------------------------------------------------------------


def _load_extension(spec: str) -> Callable[[JobServer], None]:
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise typer.BadParameter(f"{spec!r}: expected module:function")
    func = getattr(importlib.import_module(module_name), func_name)
    if not callable(func):
        raise typer.BadParameter(f"{spec!r} is not callable")
    return cast(Callable[[JobServer], None], func)


@app.command()
def worker(
    ctx: typer.Context,
    node_id: str | None = typer.Option(
        None, "--node-id", help="This node's id in the cluster (default: host and pid)."
    ),
    extension: list[str] = typer.Option(
        [],
        "--extension",
        help="module:function called with the JobServer to register extra job types.",
    ),
) -> None:
    """Run schedulers and workers without the web server, until SIGTERM or SIGINT.

    On a signal it stops claiming, lets running jobs finish within the shutdown grace
    period and releases the rest. SIGHUP reloads the settings.
    """
    settings = _settings(ctx)
    opts: _Options = ctx.obj
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    hooks = [_load_extension(e) for e in extension]
    runtime = Runtime.build(settings, node_id=node_id)
    try:
        migrations.upgrade(runtime.store.db)
        server = runtime.jobs
        for hook in hooks:
            hook(server)
        console.print(
            f"recapd worker {server.node_id} on {settings.redacted_database_url}: "
            f"job types {', '.join(sorted(server.workers)) or 'none'}"
        )

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            loop.add_signal_handler(signal.SIGINT, stop.set)

            def reload() -> None:
                try:
                    runtime.apply_settings(
                        load_settings(opts.config_file, database_url=opts.database_url)
                    )
                    logging.getLogger("recapd").info("settings reloaded")
                except ConfigError as exc:
                    logging.getLogger("recapd").error("settings not reloaded: %s", exc)

            loop.add_signal_handler(signal.SIGHUP, reload)
            try:
                await server.run(stop)
            finally:
                await runtime.aclose()  # HTTP clients of this loop (Mattermost)

        asyncio.run(main())
    finally:
        runtime.close()
    console.print("recapd worker stopped")


# -- serve and demo -------------------------------------------------------------------------


@app.command("serve")
def serve_cmd(
    ctx: typer.Context,
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to listen on."),
    port: int = typer.Option(
        DEFAULT_PORT, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."
    ),
    node_id: str | None = typer.Option(
        None, "--node-id", help="This node's id in the cluster (default: host and pid)."
    ),
    api: bool = typer.Option(True, "--api/--no-api", help="Serve the API and the web pages."),
    jobs: bool = typer.Option(True, "--jobs/--no-jobs", help="Run job workers."),
    schedulers: bool = typer.Option(
        True, "--schedulers/--no-schedulers", help="Stand for leader and run the schedulers."
    ),
) -> None:
    """Run the API and web pages, the schedulers and the workers in one process.

    Migrates the database first. SIGTERM/SIGINT stop it cleanly: workers stop claiming, running
    jobs get the shutdown grace period, the rest are released, then the HTTP server stops.
    SIGHUP reloads the settings. One log line per request (recapd.http) and per job.
    """
    options = ServeOptions(host=host, port=port, api=api, jobs=jobs, schedulers=schedulers)
    settings = options.apply(_settings(ctx))
    opts: _Options = ctx.obj
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # recapd says where it serves and which schema it is on; these would repeat it.
    for noisy in ("uvicorn.error", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    runtime = Runtime.build(settings, node_id=node_id)
    try:
        migrations.upgrade(runtime.store.db)
        server = runtime.jobs
        workers = [t for t, spec in sorted(server.workers.items()) if spec.enabled(settings)]
        typer.echo(
            f"recapd serve {server.node_id} on {settings.redacted_database_url}: "
            f"workers {', '.join(workers) if settings.jobs.run_jobs and workers else 'off'}; "
            f"schedulers {'on' if settings.jobs.run_scheduler else 'off'}; "
            f"API {'on' if api else 'off'}"
        )

        def reload() -> Settings:
            return options.apply(load_settings(opts.config_file, database_url=opts.database_url))

        def ready(url: str) -> None:
            if url:
                typer.echo(f"recapd serving at {url} (API {url}api/v4, docs {url}docs)")

        run_until_signal(runtime, options, reload, ready)
    except ServeError as exc:
        raise _fail(exc) from exc
    finally:
        runtime.close()
    typer.echo("recapd serve stopped")


TOKEN_FILE_HELP = "recapd-demo-token.txt next to the SQLite file, else here"


@app.command("demo")
def demo_cmd(
    ctx: typer.Context,
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        help=f"Where to save the demo token (default: {TOKEN_FILE_HELP}).",
    ),
) -> None:
    """Load the demo: real IRC channels moved into the last day, user `demo` with a token.

    Imports three bundled channels (CC-BY-4.0, attributed in recapd/demo/data), makes user
    `demo` (administrator, member of them) with a personal access token, a daily and a weekly
    schedule, and queues a first run of each. Running it again adds nothing.
    """
    settings = _settings(ctx)
    runtime = Runtime.build(settings)
    try:
        migrations.upgrade(runtime.store.db)
        path = token_file or token_file_for(settings.database_url)
        result = asyncio.run(seed_demo(runtime, path))
    except AppError as exc:
        raise _fail(exc) from exc
    finally:
        runtime.close()
    for line in result.lines():
        typer.echo(line)
    typer.echo("next: `recapd serve`, open the URL it prints and sign in with the token")


# -- jobs -----------------------------------------------------------------------------------

jobs_app = typer.Typer(help="Look at and cancel jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def _when(ms: int) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    job_type: str | None = typer.Option(None, "--type", help="Only this job type."),
    status_: list[JobStatus] = typer.Option([], "--status", help="Only these statuses."),
    page: int = typer.Option(0, min=0),
    per_page: int = typer.Option(50, min=1, max=200),
) -> None:
    """Jobs, newest first."""
    settings = _settings(ctx)
    store = Store.open(settings.database_url)
    try:
        found = store.jobs.list_page(
            type=job_type, statuses=status_ or None, page=page, per_page=per_page
        )
    finally:
        store.close()
    table = Table(title=f"Jobs (page {page})")
    for col in ("id", "type", "status", "attempt", "progress", "created (UTC)", "node", "error"):
        table.add_column(col)
    for j in found:
        table.add_row(
            j.id,
            j.type,
            j.status,
            str(j.attempt),
            f"{j.progress}%",
            _when(j.create_at),
            j.node_id or "-",
            str(j.data.get("error") or j.data.get("last_error") or "")[:60],
        )
    console.print(table)


def _show_job(j: Job) -> None:
    table = Table(show_header=False)
    table.add_column("field")
    table.add_column("value")
    for name, value in (
        ("id", j.id),
        ("type", j.type),
        ("status", j.status),
        ("attempt", str(j.attempt)),
        ("progress", f"{j.progress}%"),
        ("priority", str(j.priority)),
        ("created (UTC)", _when(j.create_at)),
        ("runs from (UTC)", _when(j.run_at)),
        ("started (UTC)", _when(j.start_at)),
        ("last activity (UTC)", _when(j.last_activity_at)),
        ("node", j.node_id or "-"),
        ("dedupe key", j.dedupe_key or "-"),
        ("leader term", str(j.term)),
    ):
        table.add_row(name, value)
    for key, value in sorted(j.data.items()):
        table.add_row(f"data.{key}", str(value))
    console.print(table)


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: str) -> None:
    """One job with its data (errors and tracebacks included)."""
    settings = _settings(ctx)
    store = Store.open(settings.database_url)
    try:
        _show_job(store.jobs.get(job_id))
    except AppError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()


@jobs_app.command("cancel")
def jobs_cancel(ctx: typer.Context, job_id: str) -> None:
    """Cancel a pending job, or ask a running one to stop."""
    settings = _settings(ctx)
    store = Store.open(settings.database_url)
    try:
        job = JobServer(store, settings).cancel_job(job_id)
    except AppError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    console.print(f"job {job.id}: {job.status}")


# -- import ---------------------------------------------------------------------------------

import_app = typer.Typer(
    help="Import chat history into recapd's own workspace.", no_args_is_help=True
)
app.add_typer(import_app, name="import")


def _run_import(ctx: typer.Context, do: Callable[[Store], ImportReport]) -> None:
    settings = _settings(ctx)
    store = Store.open(settings.database_url)
    try:
        migrations.upgrade(store.db)
        report = do(store)
    except AppError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    console.print(report.summary(), markup=False, highlight=False)


@import_app.command("mattermost")
def import_mattermost_cmd(
    ctx: typer.Context, path: Path = typer.Argument(..., help="Bulk export .zip or .jsonl")
) -> None:
    """A Mattermost bulk export: teams, channels, users, posts with replies and reactions."""
    _run_import(ctx, lambda store: import_mattermost(store, path))


@import_app.command("slack")
def import_slack_cmd(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Slack export .zip or folder"),
    team: str = typer.Option("slack", help="Team to import into."),
) -> None:
    """A Slack export: users, channels, messages and threads."""
    _run_import(ctx, lambda store: import_slack(store, path, team=team))


@import_app.command("log")
def import_log_cmd(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="Log files, one channel each"),
    channel: str | None = typer.Option(None, help="Channel name (default: the file name)."),
    team: str = typer.Option("irc", help="Team to import into."),
    date: str | None = typer.Option(None, help="YYYY-MM-DD, for logs with times only."),
) -> None:
    """Plain IRC-style chat logs."""
    for path in paths:
        _run_import(
            ctx,
            functools.partial(_import_one_log, path=path, channel=channel, team=team, date=date),
        )


def _import_one_log(
    store: Store, *, path: Path, channel: str | None, team: str, date: str | None
) -> ImportReport:
    return import_log(store, path, channel=channel, team=team, date=date)


# -- recaps ---------------------------------------------------------------------------------

recap_app = typer.Typer(help="Make and read recaps.", no_args_is_help=True)
app.add_typer(recap_app, name="recap")


def _resolve_user(store: Store, who: str) -> User:
    try:
        return store.workspace.get_user_by_username(who.lstrip("@"))
    except AppError:
        return store.workspace.get_user(who)


def _resolve_channel(store: Store, which: str) -> Channel:
    """A channel by id, by team/name, or by a name unique across teams."""
    team_name, _, name = which.rpartition("/")
    if team_name:
        team = store.workspace.get_team_by_name(team_name)
        return store.workspace.get_channel_by_name(team.id, name.lstrip("#"))
    try:
        return store.workspace.get_channel(which)
    except AppError:
        pass
    found = store.workspace.find_channels_by_name(which.lstrip("#"))
    if len(found) != 1:
        raise AppError(
            "cli.recap.channel.app_error",
            f"channel {which!r} "
            + ("not found" if not found else "is ambiguous: use team/channel"),
            status_code=400,
        )
    return found[0]


async def _permalinks(runtime: Runtime, recap: Recap) -> dict[str, str]:
    ids: set[str] = set()
    for ch in recap.channels:
        for h in ch.highlights:
            ids.update(h.post_ids)
        for a in ch.action_items:
            ids.update(a.post_ids)
    posts = await runtime.chat.get_posts(sorted(ids))
    return {pid: await runtime.chat.permalink(p) for pid, p in posts.items()}


async def _wait_for(runtime: Runtime, recap_id: str, user_id: str, timeout_s: float) -> Recap:
    """Run this process's job server until the recap is finished (or the timeout passes)."""
    stop = asyncio.Event()
    server = asyncio.create_task(runtime.jobs.run(stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while True:
            recap = await runtime.recaps.get(user_id, recap_id)
            if recap.status in (RecapStatus.COMPLETED, RecapStatus.FAILED):
                return recap
            if loop.time() > deadline:
                return recap
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await server


@recap_app.command("create")
def recap_create(
    ctx: typer.Context,
    user: str = typer.Option(..., "--user", help="Username or id of the reader."),
    channel: list[str] = typer.Option(..., "--channel", help="Channel: id, team/name or name."),
    title: str = typer.Option("", help="Title (default: Recap of N channels)."),
    agent: str = typer.Option("", help="Agent id (default: the default agent)."),
    wait: bool = typer.Option(False, "--wait", help="Make it now and print it."),
    timeout: float = typer.Option(600.0, help="Seconds --wait waits at most."),
) -> None:
    """Ask for a recap of channels the user can read."""
    settings = _settings(ctx)
    runtime = Runtime.build(settings)
    try:
        migrations.upgrade(runtime.store.db)
        reader = _resolve_user(runtime.store, user)
        channel_ids = [_resolve_channel(runtime.store, c).id for c in channel]

        async def main() -> Recap:
            recap = await runtime.recaps.create(
                reader.id, title=title, channel_ids=channel_ids, agent_id=agent
            )
            if wait:
                recap = await _wait_for(runtime, recap.id, reader.id, timeout)
            return recap

        recap = asyncio.run(main())
        if not wait:
            console.print(f"recap {recap.id} queued; a running `recapd worker` will make it")
            return
        links = asyncio.run(_permalinks(runtime, recap))
        console.print(render_recap(recap, links), markup=False, highlight=False)
    except AppError as exc:
        raise _fail(exc) from exc
    finally:
        runtime.close()


@recap_app.command("show")
def recap_show(
    ctx: typer.Context,
    recap_id: str,
    user: str = typer.Option(..., "--user", help="Username or id of the reader."),
) -> None:
    """Print one of the user's recaps."""
    settings = _settings(ctx)
    runtime = Runtime.build(settings)
    try:
        reader = _resolve_user(runtime.store, user)
        recap = asyncio.run(runtime.recaps.get(reader.id, recap_id))
        links = asyncio.run(_permalinks(runtime, recap))
        console.print(render_recap(recap, links), markup=False, highlight=False)
    except AppError as exc:
        raise _fail(exc) from exc
    finally:
        runtime.close()


# -- schedules ------------------------------------------------------------------------------

schedules_app = typer.Typer(help="Scheduled recaps.", no_args_is_help=True)
app.add_typer(schedules_app, name="schedules")

_DAY_NAMES = {"sun": 1, "mon": 2, "tue": 4, "wed": 8, "thu": 16, "fri": 32, "sat": 64}
_DAY_SETS = {"weekdays": 62, "weekends": 65, "everyday": 127, "daily": 127}


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


def _when_in(ms: int, zone: str) -> str:
    if not ms:
        return "-"
    local = dt.datetime.fromtimestamp(ms / 1000, load_zone(zone))
    return f"{local:%a %Y-%m-%d %H:%M %Z}\n{_when(ms)} UTC"


def _schedules_table(items: list[ScheduledRecap]) -> Table:
    table = Table(title="Scheduled recaps")
    table.add_column("id", no_wrap=True)
    for col in ("title", "when", "next run", "runs", "state"):
        table.add_column(col)
    for sr in items:
        state = "on" if sr.enabled else f"paused {sr.pause_reason}".strip()
        when = f"{_days_text(sr.days_of_week)} {sr.time_of_day}\n{sr.timezone}"
        if not sr.is_recurring:
            when += "\n(once)"
        table.add_row(
            sr.id,
            sr.title,
            when,
            _when_in(sr.next_run_at, sr.timezone) if sr.enabled else "-",
            str(sr.run_count),
            state,
        )
    return table


def _with_runtime(ctx: typer.Context, do: Callable[[Runtime], None]) -> None:
    settings = _settings(ctx)
    runtime = Runtime.build(settings)
    try:
        migrations.upgrade(runtime.store.db)
        do(runtime)
    except AppError as exc:
        raise _fail(exc) from exc
    finally:
        runtime.close()


@schedules_app.command("create")
def schedules_create(
    ctx: typer.Context,
    user: str = typer.Option(..., "--user", help="Username or id of the reader."),
    title: str = typer.Option(..., help="Title of the recaps."),
    days: str = typer.Option("weekdays", help="mon,wed,fri | weekdays | everyday | bitmask."),
    time_of_day: str = typer.Option("09:00", "--time", help="HH:MM, 24-hour, in --timezone."),
    timezone: str = typer.Option(..., help="IANA zone, e.g. Europe/Paris."),
    period: str = typer.Option("since_last_read", help="last_24h | last_week | since_last_read"),
    channel: list[str] = typer.Option([], "--channel", help="Channel: id, team/name or name."),
    all_unreads: bool = typer.Option(False, "--all-unreads", help="Every unread channel."),
    agent: str = typer.Option("", help="Agent id (default: the default agent)."),
    instructions: str = typer.Option("", help="Custom instructions for the agent."),
    once: bool = typer.Option(False, "--once", help="Run once, then disable."),
) -> None:
    """Create a scheduled recap."""

    def do(rt: Runtime) -> None:
        reader = _resolve_user(rt.store, user)
        fields: dict[str, Any] = {
            "title": title,
            "days_of_week": parse_days(days),
            "time_of_day": time_of_day,
            "timezone": timezone,
            "time_period": period,
            "channel_mode": "all_unreads" if all_unreads else "specific",
            "channel_ids": [_resolve_channel(rt.store, c).id for c in channel],
            "custom_instructions": instructions,
            "is_recurring": not once,
        }
        if agent:
            fields["agent_id"] = agent
        sr = asyncio.run(rt.schedules.create(reader.id, fields))
        console.print(_schedules_table([sr]))

    _with_runtime(ctx, do)


@schedules_app.command("list")
def schedules_list(
    ctx: typer.Context, user: str = typer.Option(..., "--user", help="Username or id.")
) -> None:
    """The user's scheduled recaps, next run in each schedule's zone and in UTC."""

    def do(rt: Runtime) -> None:
        reader = _resolve_user(rt.store, user)
        console.print(_schedules_table(asyncio.run(rt.schedules.list_for_user(reader.id, 0, 200))))

    _with_runtime(ctx, do)


def _schedule_action(ctx: typer.Context, user: str, sr_id: str, action: str) -> None:
    def do(rt: Runtime) -> None:
        reader = _resolve_user(rt.store, user)
        svc = rt.schedules
        if action == "show":
            sr = asyncio.run(svc.get(reader.id, sr_id))
        elif action == "pause":
            sr = asyncio.run(svc.pause(reader.id, sr_id))
        elif action == "resume":
            sr = asyncio.run(svc.resume(reader.id, sr_id))
        elif action == "delete":
            asyncio.run(svc.delete(reader.id, sr_id))
            console.print(f"scheduled recap {sr_id} deleted")
            return
        else:
            job = asyncio.run(svc.run_now(reader.id, sr_id))
            console.print(f"run now: job {job.id} queued; a running `recapd worker` makes it")
            return
        console.print(_schedules_table([sr]))

    _with_runtime(ctx, do)


@schedules_app.command("show")
def schedules_show(ctx: typer.Context, sr_id: str, user: str = typer.Option(..., "--user")) -> None:
    """One scheduled recap."""
    _schedule_action(ctx, user, sr_id, "show")


@schedules_app.command("pause")
def schedules_pause(
    ctx: typer.Context, sr_id: str, user: str = typer.Option(..., "--user")
) -> None:
    """Stop running it until resumed."""
    _schedule_action(ctx, user, sr_id, "pause")


@schedules_app.command("resume")
def schedules_resume(
    ctx: typer.Context, sr_id: str, user: str = typer.Option(..., "--user")
) -> None:
    """Run it again from its next occurrence (within the limit of live schedules)."""
    _schedule_action(ctx, user, sr_id, "resume")


@schedules_app.command("delete")
def schedules_delete(
    ctx: typer.Context, sr_id: str, user: str = typer.Option(..., "--user")
) -> None:
    """Delete it."""
    _schedule_action(ctx, user, sr_id, "delete")


@schedules_app.command("run-now")
def schedules_run_now(
    ctx: typer.Context, sr_id: str, user: str = typer.Option(..., "--user")
) -> None:
    """An extra run now; the timetable does not move."""
    _schedule_action(ctx, user, sr_id, "run-now")


# -- users and tokens -----------------------------------------------------------------------

users_app = typer.Typer(help="Local users and their personal access tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("create")
def users_create(
    ctx: typer.Context,
    username: str,
    admin: bool = typer.Option(False, "--admin", help="Make the user a system administrator."),
    display_name: str = typer.Option("", "--display-name", help="Name shown to others."),
) -> None:
    """Create a workspace user and print their id."""

    def do(rt: Runtime) -> None:
        name = username.lstrip("@")
        try:
            rt.store.workspace.get_user_by_username(name)
        except AppError:
            pass
        else:
            raise AppError(
                "cli.users.create.exists.app_error",
                f"a user named {name!r} already exists",
                status_code=400,
            )
        user = User(
            id=new_id(),
            username=name,
            display_name=display_name,
            timezone="UTC",
            create_at=SystemClock().now_ms(),
        )
        rt.store.workspace.upsert_users([user])
        rt.store.tokens.set_roles(user.id, SYSTEM_ADMIN if admin else "")
        typer.echo(user.id)

    _with_runtime(ctx, do)


@users_app.command("list")
def users_list(ctx: typer.Context) -> None:
    """Every user: id, username, roles, live tokens."""

    def do(rt: Runtime) -> None:
        table = Table("id", "username", "display name", "roles", "tokens")
        for u in rt.store.tokens.list_users():
            table.add_row(u.id, u.username, u.display_name, u.roles, str(u.tokens))
        console.print(table)

    _with_runtime(ctx, do)


@users_app.command("token")
def users_token(
    ctx: typer.Context,
    username: str,
    description: str = typer.Option("", "--description", help="What the token is for."),
) -> None:
    """Make a personal access token for the user and print it (it is shown only once)."""

    def do(rt: Runtime) -> None:
        user = _resolve_user(rt.store, username)
        token, _ = rt.store.tokens.create(user.id, description, SystemClock().now_ms())
        typer.echo(token)

    _with_runtime(ctx, do)


@users_app.command("webhook")
def users_webhook(
    ctx: typer.Context,
    username: str,
    url: str = typer.Argument("", help="Incoming-webhook URL (Slack or Mattermost)."),
    clear: bool = typer.Option(False, "--clear", help="Remove the user's webhook."),
) -> None:
    """Set, show (no URL) or --clear the webhook told of the user's finished recaps."""

    def do(rt: Runtime) -> None:
        user = _resolve_user(rt.store, username)
        if clear:
            removed = asyncio.run(rt.delivery.clear_webhook(user.id))
            typer.echo("webhook removed" if removed else "no webhook was set")
            return
        hook = asyncio.run(
            rt.delivery.set_webhook(user.id, url) if url else rt.delivery.get_webhook(user.id)
        )
        typer.echo(hook.url)
        if hook.last_error:
            typer.echo(f"last error: {hook.last_error}")

    _with_runtime(ctx, do)


# -- mattermost -----------------------------------------------------------------------------

mattermost_app = typer.Typer(help="A Mattermost server as the chat source.", no_args_is_help=True)
app.add_typer(mattermost_app, name="mattermost")


@mattermost_app.command("check")
def mattermost_check(
    ctx: typer.Context,
    send_test: str = typer.Option(
        "", "--send-test", help="Also send this username a test direct message."
    ),
) -> None:
    """What the configured Mattermost token can and cannot read (RECAPD_MATTERMOST_URL and
    RECAPD_MATTERMOST_TOKEN). Exits 1 when recapd could not read posts with it."""
    settings = _settings(ctx)
    if not settings.mattermost_url or not settings.mattermost_token:
        typer.echo("set RECAPD_MATTERMOST_URL and RECAPD_MATTERMOST_TOKEN first", err=True)
        raise typer.Exit(2)
    report = check_settings(settings, send_test)
    table = Table("check", "result", "detail", title=f"Mattermost at {settings.mattermost_url}")
    for row in report.rows:
        table.add_row(row.what, row.result, row.detail)
    console.print(table)
    if not report.usable:
        raise typer.Exit(1)
