"""`recapd import`: chat history into recapd's own workspace (the importers load on use)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from recapd.cli.common import open_store
from recapd.cli.output import out

if TYPE_CHECKING:
    from recapd.chat.importers.common import ImportReport
    from recapd.store.store import Store

app = typer.Typer(help="Import chat history into recapd's own workspace.", no_args_is_help=True)


def _run_import(ctx: typer.Context, do: Callable[[Store], ImportReport]) -> None:
    with open_store(ctx) as store:
        report = do(store)
    out(report.summary())


@app.command("mattermost")
def import_mattermost_cmd(
    ctx: typer.Context, path: Path = typer.Argument(..., help="Bulk export .zip or .jsonl")
) -> None:
    """A Mattermost bulk export: teams, channels, users, posts with replies and reactions."""
    from recapd.chat.importers.mattermost import import_mattermost

    _run_import(ctx, lambda store: import_mattermost(store, path))


@app.command("slack")
def import_slack_cmd(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Slack export .zip or folder"),
    team: str = typer.Option("slack", help="Team to import into."),
) -> None:
    """A Slack export: users, channels, messages and threads."""
    from recapd.chat.importers.slack import import_slack

    _run_import(ctx, lambda store: import_slack(store, path, team=team))


@app.command("log")
def import_log_cmd(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="Log files, one channel each"),
    channel: str | None = typer.Option(None, help="Channel name (default: the file name)."),
    team: str = typer.Option("irc", help="Team to import into."),
    date: str | None = typer.Option(None, help="YYYY-MM-DD, for logs with times only."),
) -> None:
    """Plain IRC-style chat logs. The nicks that wrote in a log become users and members of
    its channel; add others with `recapd channels members add CHANNEL USER`."""
    for path in paths:
        _run_import(
            ctx,
            functools.partial(_import_one_log, path=path, channel=channel, team=team, date=date),
        )


def _import_one_log(
    store: Store, *, path: Path, channel: str | None, team: str, date: str | None
) -> ImportReport:
    from recapd.chat.importers.irc_log import import_log

    return import_log(store, path, channel=channel, team=team, date=date)
