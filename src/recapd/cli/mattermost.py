"""`recapd mattermost`: a Mattermost server as the chat source."""

from __future__ import annotations

import typer

from recapd.cli.common import settings
from recapd.cli.output import show, table

app = typer.Typer(help="A Mattermost server as the chat source.", no_args_is_help=True)


@app.command("check")
def mattermost_check(
    ctx: typer.Context,
    send_test: str = typer.Option(
        "", "--send-test", help="Also send this username a test direct message."
    ),
) -> None:
    """What the configured Mattermost token can and cannot read (RECAPD_MATTERMOST_URL and
    RECAPD_MATTERMOST_TOKEN). Exits 1 when recapd could not read posts with it."""
    from recapd.chat.mattermost.check import check_settings

    conf = settings(ctx)
    if not conf.mattermost_url or not conf.mattermost_token:
        typer.echo("set RECAPD_MATTERMOST_URL and RECAPD_MATTERMOST_TOKEN first", err=True)
        raise typer.Exit(2)
    report = check_settings(conf, send_test)
    t = table("check", "result", "detail", title=f"Mattermost at {conf.mattermost_url}")
    for row in report.rows:
        t.add_row(row.what, row.result, row.detail)
    show(t)
    if not report.usable:
        raise typer.Exit(1)
