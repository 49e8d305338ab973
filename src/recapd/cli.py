"""The `recapd` command: migrate, status and version for now; serve, worker and the rest arrive
with their issues."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from recapd import __version__
from recapd.config import ConfigError, Settings, load_settings
from recapd.model.app_error import AppError
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
