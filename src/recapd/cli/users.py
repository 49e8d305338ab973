"""`recapd users`: local users, their personal access tokens and webhooks."""

from __future__ import annotations

import typer

from recapd.cli.common import open_runtime, open_store
from recapd.cli.output import out, show, table

app = typer.Typer(help="Local users and their personal access tokens.", no_args_is_help=True)


@app.command("create")
def users_create(
    ctx: typer.Context,
    username: str,
    admin: bool = typer.Option(False, "--admin", help="Make the user a system administrator."),
    display_name: str = typer.Option("", "--display-name", help="Name shown to others."),
) -> None:
    """Create a workspace user and print their id."""
    from recapd.clock import SystemClock
    from recapd.model.app_error import AppError
    from recapd.model.chat import User
    from recapd.model.ids import new_id
    from recapd.store.token_store import SYSTEM_ADMIN

    name = username.lstrip("@")
    with open_store(ctx) as store:
        try:
            store.workspace.get_user_by_username(name)
        except AppError:
            pass
        else:
            raise AppError(
                "cli.users.create.exists.app_error",
                f"a user named {name} already exists",
                detailed_error=f"username={name}",
                status_code=400,
            )
        user = User(
            id=new_id(),
            username=name,
            display_name=display_name,
            timezone="UTC",
            create_at=SystemClock().now_ms(),
        )
        store.workspace.upsert_users([user])
        store.tokens.set_roles(user.id, SYSTEM_ADMIN if admin else "")
    out(user.id)


@app.command("list")
def users_list(ctx: typer.Context) -> None:
    """Every user: id, username, display name, roles, live tokens."""
    with open_store(ctx) as store:
        found = store.tokens.list_users()
    t = table(title="Users")
    t.add_column("id", no_wrap=True)
    t.add_column("username")
    t.add_column("display name")
    t.add_column("roles")
    t.add_column("tokens", justify="right")
    for u in found:
        t.add_row(u.id, u.username, u.display_name, u.roles, str(u.tokens))
    show(t)


@app.command("token")
def users_token(
    ctx: typer.Context,
    username: str,
    description: str = typer.Option("", "--description", help="What the token is for."),
) -> None:
    """Make a personal access token for the user and print it (it is shown only once)."""
    from recapd.app.workspace import find_user
    from recapd.clock import SystemClock

    with open_store(ctx) as store:
        user = find_user(store, username)
        token, _ = store.tokens.create(user.id, description, SystemClock().now_ms())
    out(token)


@app.command("webhook")
def users_webhook(
    ctx: typer.Context,
    username: str,
    url: str = typer.Argument("", help="Incoming-webhook URL (Slack or Mattermost)."),
    clear: bool = typer.Option(False, "--clear", help="Remove the user's webhook."),
) -> None:
    """Set, show (no URL) or --clear the webhook told of the user's finished recaps."""
    import asyncio

    from recapd.app.workspace import find_user
    from recapd.model.app_error import AppError

    with open_runtime(ctx) as rt:
        user = find_user(rt.store, username)
        if clear:
            removed = asyncio.run(rt.delivery.clear_webhook(user.id))
            out("webhook removed" if removed else "no webhook was set")
            return
        try:
            hook = asyncio.run(
                rt.delivery.set_webhook(user.id, url) if url else rt.delivery.get_webhook(user.id)
            )
        except AppError as exc:
            if url or exc.id != "app.delivery.webhook.not_found.app_error":
                raise
            out(f"no webhook is set for {user.username}")
            return
    out(hook.url)
    if hook.last_error:
        out(f"last error: {hook.last_error}")
