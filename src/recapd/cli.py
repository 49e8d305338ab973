"""The `recapd` command: migrate, status, worker, jobs, version."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import typer
from rich.console import Console
from rich.table import Table

from recapd import __version__
from recapd.config import ConfigError, Settings, load_settings
from recapd.jobs.server import JobServer
from recapd.model.app_error import AppError
from recapd.model.job import Job, JobStatus
from recapd.store import migrate as migrations
from recapd.store.store import Store

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


def build_job_server(settings: Settings, store: Store, node_id: str | None = None) -> JobServer:
    """A JobServer with every built-in job type's worker and scheduler registered."""
    # The scheduled-recap and recap job types register here as their issues land.
    return JobServer(store, settings, node_id=node_id)


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
    store = Store.open(settings.database_url)
    hooks = [_load_extension(e) for e in extension]
    try:
        migrations.upgrade(store.db)
        server = build_job_server(settings, store, node_id)
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
                    server.apply_settings(
                        load_settings(opts.config_file, database_url=opts.database_url)
                    )
                    logging.getLogger("recapd").info("settings reloaded")
                except ConfigError as exc:
                    logging.getLogger("recapd").error("settings not reloaded: %s", exc)

            loop.add_signal_handler(signal.SIGHUP, reload)
            await server.run(stop)

        asyncio.run(main())
    finally:
        store.close()
    console.print("recapd worker stopped")


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
