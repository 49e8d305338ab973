"""The `recapd` command: global options, version, migrate, status, serve, worker, demo, and the
command groups of the other modules."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

from recapd import __version__
from recapd.cli import channels, imports, jobs, mattermost, recaps, schedules, users
from recapd.cli.common import Options, open_store, options, settings
from recapd.cli.output import fail, out, set_verbose, show, table

if TYPE_CHECKING:
    from recapd.jobs.server import JobServer

app = typer.Typer(
    help="recapd: scheduled AI recaps of team-chat channels.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(recaps.app, name="recap")
app.add_typer(schedules.app, name="schedules")
app.add_typer(channels.app, name="channels")
app.add_typer(users.app, name="users")
app.add_typer(imports.app, name="import")
app.add_typer(jobs.app, name="jobs")
app.add_typer(mattermost.app, name="mattermost")

# `recapd serve`'s address; recapd.serve has the same (a test keeps them equal), not imported
# here because it loads the web server.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8065

# How to get real summaries, in two lines: `recapd demo` prints them, README's top says them.
REAL_MODEL_HINT = (
    "These recaps come from the offline `extractive` agent. For real summaries, point recapd at "
    "an OpenAI-compatible server (Ollama, vLLM, OpenAI), e.g. Ollama:",
    "RECAPD_AGENTS__OLLAMA__TYPE=openai RECAPD_AGENTS__OLLAMA__BASE_URL=http://127.0.0.1:11434/v1 "
    "RECAPD_AGENTS__OLLAMA__MODEL=llama3.1 RECAPD_DEFAULT_AGENT=ollama",
)


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
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="With an error, also print its id and detail."
    ),
) -> None:
    """recapd: scheduled AI recaps of team-chat channels."""
    ctx.obj = Options(config_file=config, database_url=database_url, verbose=verbose)
    set_verbose(verbose)


@app.command()
def version() -> None:
    """Print recapd's version."""
    out(f"recapd {__version__}")


@app.command()
def migrate(ctx: typer.Context) -> None:
    """Create or upgrade the database schema to the newest revision."""
    from recapd.store import migrate as migrations

    where = settings(ctx).redacted_database_url
    with open_store(ctx, migrate=False) as store:
        try:
            before = migrations.current_revision(store.db)
            migrations.upgrade(store.db)
            after = migrations.current_revision(store.db)
        except Exception as exc:
            raise fail(exc) from exc
    if before == after:
        out(f"{where}: schema already at revision {after}")
    else:
        out(f"{where}: schema migrated from {before or 'empty'} to {after}")


@app.command()
def status(ctx: typer.Context) -> None:
    """Show the database, its schema revision and what it holds."""
    from recapd.store import migrate as migrations

    conf = settings(ctx)
    with open_store(ctx, migrate=False) as store:
        current = migrations.current_revision(store.db)
        head = migrations.head_revision(store.db)
        out(f"database: {conf.redacted_database_url}")
        out(f"schema:   revision {current or 'none'} (newest {head})")
        if current != head:
            out("run `recapd migrate` to bring the schema up to date")
            raise typer.Exit(1)
        t = table("what", "count", title="What is there")
        t.columns[1].justify = "right"
        t.add_row("scheduled recaps", str(store.scheduled_recaps.count()))
        t.add_row("recaps", str(store.recaps.count()))
        for (job_type, job_status), n in sorted(store.jobs.count_by_type_and_status().items()):
            t.add_row(f"jobs {job_type} {job_status}", str(n))
        show(t)
        flag = "on" if conf.recaps_enabled else "off"
        out(f"AI recaps: {flag}; node: {conf.effective_node_id()}")


# -- worker ---------------------------------------------------------------------------------


def _load_extension(spec: str) -> Callable[[JobServer], None]:
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise typer.BadParameter(f"{spec!r}: expected module:function")
    func = getattr(importlib.import_module(module_name), func_name)
    if not callable(func):
        raise typer.BadParameter(f"{spec!r} is not callable")
    return cast("Callable[[JobServer], None]", func)


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
    import asyncio
    import signal

    from recapd.config import ConfigError, load_settings
    from recapd.runtime import Runtime
    from recapd.store import migrate as migrations

    conf = settings(ctx)
    opts = options(ctx)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    hooks = [_load_extension(e) for e in extension]
    runtime = Runtime.build(conf, node_id=node_id)
    try:
        migrations.upgrade(runtime.store.db)
        server = runtime.jobs
        for hook in hooks:
            hook(server)
        out(
            f"recapd worker {server.node_id} on {conf.redacted_database_url}: "
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
    out("recapd worker stopped")


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
    from recapd.config import Settings, load_settings
    from recapd.runtime import Runtime
    from recapd.serve import ServeError, ServeOptions, run_until_signal
    from recapd.store import migrate as migrations

    options_ = ServeOptions(host=host, port=port, api=api, jobs=jobs, schedulers=schedulers)
    conf = options_.apply(settings(ctx))
    opts = options(ctx)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # recapd says where it serves and which schema it is on; these would repeat it.
    for noisy in ("uvicorn.error", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    runtime = Runtime.build(conf, node_id=node_id)
    try:
        migrations.upgrade(runtime.store.db)
        server = runtime.jobs
        workers = [t for t, spec in sorted(server.workers.items()) if spec.enabled(conf)]
        out(
            f"recapd serve {server.node_id} on {conf.redacted_database_url}: "
            f"workers {', '.join(workers) if conf.jobs.run_jobs and workers else 'off'}; "
            f"schedulers {'on' if conf.jobs.run_scheduler else 'off'}; "
            f"API {'on' if api else 'off'}"
        )

        def reload() -> Settings:
            return options_.apply(load_settings(opts.config_file, database_url=opts.database_url))

        def ready(url: str) -> None:
            if url:
                out(f"recapd serving at {url} (API {url}api/v4, docs {url}docs)")

        run_until_signal(runtime, options_, reload, ready)
    except ServeError as exc:
        raise fail(exc) from exc
    finally:
        runtime.close()
    out("recapd serve stopped")


TOKEN_FILE_HELP = "recapd-demo-token.txt next to the SQLite file, else here"


@app.command("demo")
def demo_cmd(
    ctx: typer.Context,
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        help=f"Where to save the demo token (default: {TOKEN_FILE_HELP}).",
    ),
    next_hint: bool = typer.Option(
        True,
        "--next-hint/--no-next-hint",
        help="End with what to run next (scripts/run, which serves right after, leaves it out).",
    ),
) -> None:
    """Load the demo: real IRC channels moved into the last day, user `demo` with a token.

    Imports three bundled channels (CC-BY-4.0, attributed in recapd/demo/data), makes user
    `demo` (administrator, member of them) with a personal access token, a daily and a weekly
    schedule, and queues a first run of each. Running it again adds nothing.
    """
    import asyncio

    from recapd.cli.common import open_runtime
    from recapd.demo.seed import seed_demo, token_file_for

    with open_runtime(ctx) as runtime:
        path = token_file or token_file_for(runtime.settings.database_url)
        result = asyncio.run(seed_demo(runtime, path))
        agent = runtime.settings.default_agent
        offline = runtime.settings.agents[agent].type == "extractive"
    for line in result.lines():
        out(line)
    if offline:
        for line in REAL_MODEL_HINT:
            out(line)
    else:
        out(f"new recaps use agent {agent} (RECAPD_DEFAULT_AGENT)")
    if next_hint:
        out("next: `recapd serve`, open the URL it prints and sign in with the token")
