"""`recapd recap`: make, list and read recaps."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from recapd.cli.common import channel_names, open_runtime
from recapd.cli.output import fail, out, show, table, utc

if TYPE_CHECKING:
    from recapd.model.app_error import AppError
    from recapd.model.chat import User
    from recapd.model.recap import Recap
    from recapd.runtime import Runtime

app = typer.Typer(help="Make and read recaps.", no_args_is_help=True)

# Where a recap queued by the command is made.
MADE_BY = "a running `recapd serve` or `recapd worker` makes it"


def cannot_read(rt: Runtime, exc: AppError, reader: User, names: dict[str, str]) -> typer.Exit:
    """A refused channel named by the name the user gave, with how to let the reader in."""
    from recapd.model.app_error import AppError

    channel_id = str(exc.params.get("channel_id", ""))
    name = names.get(channel_id)
    if name is None:
        return fail(exc)
    named = AppError(
        exc.id,
        f"you cannot read channel {name}",
        detailed_error=exc.detailed_error,
        status_code=exc.status_code,
        params=exc.params,
    )
    hint = ""
    if rt.settings.chat == "local":
        hint = (
            f"`recapd channels members add {name} {reader.username}` lets {reader.username} read it"
        )
    return fail(named, hint)


def is_permission_error(exc: AppError) -> bool:
    """Whether the use case refused a channel the user may not read."""
    from recapd.model.recap import RECAP_PERMISSION_DENIED
    from recapd.model.scheduled_recap import CHANNEL_ACCESS_DENIED

    return exc.id in (RECAP_PERMISSION_DENIED, CHANNEL_ACCESS_DENIED)


async def _permalinks(runtime: Runtime, recap: Recap) -> dict[str, str]:
    from recapd.model.recap import cited_post_ids

    posts = await runtime.chat.get_posts(sorted(cited_post_ids(recap)))
    return {pid: await runtime.chat.permalink(p) for pid, p in posts.items()}


async def _wait_for(runtime: Runtime, recap_id: str, user_id: str, timeout_s: float) -> Recap:
    """Run this process's job server until the recap is finished (or the timeout passes)."""
    import asyncio

    from recapd.model.recap import RecapStatus

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


@app.command("create")
def recap_create(
    ctx: typer.Context,
    user: str = typer.Option(..., "--user", help="Username or id of the reader."),
    channel: list[str] = typer.Option(..., "--channel", help="Channel: name, team/name or id."),
    title: str = typer.Option("", help="Title (default: Recap of the channels' names)."),
    agent: str = typer.Option("", help="Agent id (default: the default agent)."),
    wait: bool = typer.Option(False, "--wait", help="Make it now and print it."),
    timeout: float = typer.Option(600.0, help="Seconds --wait waits at most."),
) -> None:
    """Ask for a recap of channels the user can read."""
    import asyncio

    from recapd.app.workspace import find_channel, find_user
    from recapd.delivery.text import render_recap
    from recapd.model.app_error import AppError

    with open_runtime(ctx) as rt:
        reader = find_user(rt.store, user)
        chosen = [find_channel(rt.store, c) for c in channel]
        names = {c.id: c.name for c in chosen}

        async def main() -> Recap:
            recap = await rt.recaps.create(
                reader.id, title=title, channel_ids=list(names), agent_id=agent
            )
            if wait:
                recap = await _wait_for(rt, recap.id, reader.id, timeout)
            return recap

        try:
            recap = asyncio.run(main())
        except AppError as exc:
            if is_permission_error(exc):
                raise cannot_read(rt, exc, reader, names) from exc
            raise
        if not wait:
            out(f"recap {recap.id} queued; {MADE_BY} (or use --wait)")
            return
        links = asyncio.run(_permalinks(rt, recap))
        out(render_recap(recap, links))


@app.command("list")
def recap_list(
    ctx: typer.Context,
    user: str = typer.Option(..., "--user", help="Username or id of the reader."),
    page: int = typer.Option(0, min=0, help="Page, from 0."),
    per_page: int = typer.Option(20, min=1, max=200, help="Recaps per page."),
) -> None:
    """The user's recaps, newest first: id, when made, status, title and channels."""
    import asyncio

    from recapd.app.workspace import find_user

    with open_runtime(ctx) as rt:
        reader = find_user(rt.store, user)
        found = asyncio.run(rt.recaps.list_for_user(reader.id, page, per_page))
        names = channel_names(rt, [c for r in found for c in r.channel_ids])
    t = table(title=f"Recaps of {reader.username} (page {page}, newest first)")
    t.add_column("id", no_wrap=True)
    t.add_column("created (UTC)", no_wrap=True)
    t.add_column("status", no_wrap=True)
    t.add_column("title / channels")
    for r in found:
        channels = ", ".join(names.get(c, c) for c in r.channel_ids)
        status = str(r.status) if r.read_at or r.status != "completed" else "completed\n(unread)"
        t.add_row(r.id, utc(r.create_at), status, f"{r.title}\n{channels}")
    show(t)
    if len(found) == per_page:
        out(f"more: --page {page + 1}")
    elif not found and page == 0:
        out(f"{reader.username} has no recaps yet")


@app.command("show")
def recap_show(
    ctx: typer.Context,
    recap_id: str,
    user: str = typer.Option(..., "--user", help="Username or id of the reader."),
) -> None:
    """Print one of the user's recaps (`recap list` gives their ids)."""
    import asyncio

    from recapd.app.workspace import find_user
    from recapd.delivery.text import render_recap

    with open_runtime(ctx) as rt:
        reader = find_user(rt.store, user)
        recap = asyncio.run(rt.recaps.get(reader.id, recap_id))
        links = asyncio.run(_permalinks(rt, recap))
    out(render_recap(recap, links))
