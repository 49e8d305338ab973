"""`recapd channels`: the local workspace's channels and who is in them (a user reads, and so
recaps, only the channels they are a member of)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from recapd.cli.common import open_store, settings
from recapd.cli.output import out, show, table

if TYPE_CHECKING:
    from recapd.store.store import Store

app = typer.Typer(help="Channels of the local workspace and their members.", no_args_is_help=True)
members_app = typer.Typer(help="Who is in a channel.", no_args_is_help=True)
app.add_typer(members_app, name="members")


@contextmanager
def _local_store(ctx: typer.Context) -> Iterator[Store]:
    if settings(ctx).chat != "local":
        typer.echo(
            "error: with RECAPD_CHAT=mattermost the channels and their members are the "
            "Mattermost server's; these commands manage recapd's own workspace",
            err=True,
        )
        raise typer.Exit(1)
    with open_store(ctx) as store:
        yield store


_KINDS = {"O": "public", "P": "private"}


@app.command("list")
def channels_list(
    ctx: typer.Context,
    user: str | None = typer.Option(None, "--user", help="Only this user's channels."),
) -> None:
    """Team channels: team/name (what --channel takes), display name, kind, members."""
    from recapd.app.workspace import find_user, list_channels

    with _local_store(ctx) as store:
        reader = find_user(store, user) if user else None
        found = list_channels(store, reader.id if reader else None)
    title = f"Channels of {reader.username}" if reader else "Channels"
    t = table(title=title)
    t.add_column("channel", no_wrap=True)
    t.add_column("display name")
    t.add_column("kind")
    t.add_column("members", justify="right")
    for c in found:
        kind = _KINDS.get(c.channel.type, c.channel.type)
        if c.channel.delete_at:
            kind += ", archived"
        t.add_row(c.full_name, c.channel.display_name, kind, str(c.member_count))
    show(t)
    if not found:
        out(f"{reader.username} is in no channel" if reader else "no channels yet")


@members_app.command("add")
def members_add(
    ctx: typer.Context,
    channel: str = typer.Argument(..., help="Channel: name, team/name or id."),
    users: list[str] = typer.Argument(..., help="Usernames (or ids)."),
) -> None:
    """Make users members of a channel: they may read it, and recap it, from now on."""
    from recapd.app.workspace import add_members, find_channel, find_user
    from recapd.clock import SystemClock

    with _local_store(ctx) as store:
        ch = find_channel(store, channel)
        found = [find_user(store, u) for u in users]
        added = add_members(store, ch, found, SystemClock().now_ms())
    names = ", ".join(u.username for u in found)
    already = len(set(u.id for u in found)) - added
    out(
        f"channel {ch.name}: {added} member(s) added"
        + (f", {already} already in it" if already else "")
        + f" ({names})"
    )


@members_app.command("remove")
def members_remove(
    ctx: typer.Context,
    channel: str = typer.Argument(..., help="Channel: name, team/name or id."),
    users: list[str] = typer.Argument(..., help="Usernames (or ids)."),
) -> None:
    """Take users out of a channel: from now on they neither read nor recap it."""
    from recapd.app.workspace import find_channel, find_user, remove_members

    with _local_store(ctx) as store:
        ch = find_channel(store, channel)
        found = [find_user(store, u) for u in users]
        removed = remove_members(store, ch, found)
    missing = len(set(u.id for u in found)) - removed
    out(
        f"channel {ch.name}: {removed} member(s) removed"
        + (f", {missing} were not in it" if missing else "")
    )
