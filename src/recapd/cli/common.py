"""What every command shares: the global options, the settings, and a store or a runtime opened
for one command (schema brought up to date, AppErrors printed in words)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from recapd.cli.output import fail

if TYPE_CHECKING:
    from recapd.config import Settings
    from recapd.runtime import Runtime
    from recapd.store.store import Store


@dataclass
class Options:
    """The global options, given before the command."""

    config_file: Path | None
    database_url: str | None
    verbose: bool = False


def options(ctx: typer.Context) -> Options:
    """The global options of this invocation."""
    found = ctx.find_object(Options)
    return found if found is not None else Options(None, None)


def settings(ctx: typer.Context) -> Settings:
    """The settings (env, --config file, --database-url); a bad one exits 2 with one line."""
    from recapd.config import ConfigError, load_settings

    opts = options(ctx)
    try:
        return load_settings(opts.config_file, database_url=opts.database_url)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


@contextmanager
def open_store(ctx: typer.Context, *, migrate: bool = True) -> Iterator[Store]:
    """The database of the settings, its schema brought up to date first (unless told not to);
    an AppError inside prints in words and exits 1."""
    from recapd.model.app_error import AppError
    from recapd.store import migrate as migrations
    from recapd.store.store import Store

    store = Store.open(settings(ctx).database_url)
    try:
        if migrate:
            migrations.upgrade_if_needed(store.db)
        yield store
    except AppError as exc:
        raise fail(exc) from exc
    finally:
        store.close()


@contextmanager
def open_runtime(ctx: typer.Context, *, migrate: bool = True) -> Iterator[Runtime]:
    """A node's parts wired on the settings (no server started), the schema brought up to date
    first; an AppError inside prints in words and exits 1."""
    from recapd.model.app_error import AppError
    from recapd.runtime import Runtime
    from recapd.store import migrate as migrations

    rt = Runtime.build(settings(ctx))
    try:
        if migrate:
            migrations.upgrade_if_needed(rt.store.db)
        yield rt
    except AppError as exc:
        raise fail(exc) from exc
    finally:
        rt.close()


def channel_names(rt: Runtime, channel_ids: list[str]) -> dict[str, str]:
    """Channel id -> name as the chat source knows it (the id itself when it cannot tell)."""
    import asyncio

    from recapd.model.app_error import AppError

    async def name(channel_id: str) -> str:
        try:
            return (await rt.chat.get_channel(channel_id)).name or channel_id
        except AppError:
            return channel_id

    async def names(ids: list[str]) -> list[str]:
        return list(await asyncio.gather(*(name(c) for c in ids)))

    unique = list(dict.fromkeys(channel_ids))
    return dict(zip(unique, asyncio.run(names(unique)), strict=True))
