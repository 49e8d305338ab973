"""`recapd mattermost check`: what the configured token can and cannot do on the server.

Every probe is a read, except opening the token account's own direct channel (idempotent,
invisible to others) and, only when asked with `--send-test USER`, one test message.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from recapd.chat.mattermost.client import (
    DEFAULT_MAX_POST_SIZE,
    MattermostClient,
    parse_max_post_size,
)
from recapd.chat.mattermost.source import mattermost_client
from recapd.clock import SystemClock
from recapd.config import Settings
from recapd.model.app_error import AppError

# What each result means in the table.
OK, NO, SKIPPED = "yes", "NO", "-"


@dataclass
class CheckRow:
    """One line of the report."""

    what: str
    result: str
    detail: str


@dataclass
class CheckReport:
    """The rows, and whether recapd can work with this token at all."""

    rows: list[CheckRow] = field(default_factory=list)
    usable: bool = False

    def add(self, what: str, result: str, detail: str) -> None:
        """Append a row."""
        self.rows.append(CheckRow(what, result, detail))


def _why(err: AppError) -> str:
    return f"{err.status_code}: {err.detailed_error or err.message}"


async def run_check(client: MattermostClient, send_test_to: str = "") -> CheckReport:
    """Probe the server with the client's token; never raises for a refused call."""
    report = CheckReport()
    try:
        me = await client.get("/users/me")
    except AppError as err:
        report.add("token accepted", NO, _why(err))
        return report
    roles = str(me.get("roles", ""))
    kind = "bot" if me.get("is_bot") else "user"
    admin = "system_admin" in roles.split()
    report.add(
        "token accepted",
        OK,
        f"@{me.get('username')} ({kind}{', system admin' if admin else ''}), id {me['id']}",
    )
    try:
        config = await client.get("/config/client")
        size = parse_max_post_size(config)
        default = " (not reported: default)" if "MaxPostSize" not in config else ""
        report.add(
            "server",
            OK,
            f"Mattermost {config.get('Version', '?')}, SiteURL "
            f"{config.get('SiteURL') or '(unset: links use the configured URL)'}, "
            f"MaxPostSize {size}{default}",
        )
    except AppError as err:
        report.add("server", NO, f"{_why(err)}; post size {DEFAULT_MAX_POST_SIZE} assumed")
    try:
        teams = await client.get("/users/me/teams")
        report.add("list its teams", OK, f"{len(teams)} team(s)")
    except AppError as err:
        report.add("list its teams", NO, _why(err))
    try:
        channels = [c for c in await client.get("/users/me/channels") if not c.get("delete_at")]
    except AppError as err:
        report.add("list its channels", NO, _why(err))
        return report
    report.add("list its channels", OK, f"{len(channels)} channel(s)")
    await _channel_probes(client, report, me, channels)
    await _dm_probes(client, report, me, send_test_to)
    return report


async def _channel_probes(
    client: MattermostClient, report: CheckReport, me: dict[str, Any], channels: list[Any]
) -> None:
    readable = [c for c in channels if c.get("type") in ("O", "P")] or channels
    if not readable:
        report.add("read posts", SKIPPED, "the account is in no channel: add the bot to some")
        return
    channel = readable[0]
    where = f"~{channel.get('name')}"
    try:
        await client.get(f"/channels/{channel['id']}/posts", {"page": 0, "per_page": 1})
        report.add("read posts", OK, f"in {where}")
        report.usable = True
    except AppError as err:
        report.add("read posts", NO, f"in {where}: {_why(err)}")
    try:
        members = await client.get(f"/channels/{channel['id']}/members", {"per_page": 50})
    except AppError as err:
        report.add("members' last_viewed_at", NO, _why(err))
        return
    others = [m["user_id"] for m in members if m.get("user_id") != me["id"]]
    if not others:
        report.add("members' last_viewed_at", SKIPPED, f"no other member in {where}")
        return
    other = others[0]
    try:
        member = await client.get(f"/channels/{channel['id']}/members/{other}")
        report.add(
            "members' last_viewed_at", OK, f"in {where} (last_viewed_at {member['last_viewed_at']})"
        )
    except AppError as err:
        report.add("members' last_viewed_at", NO, _why(err))
    try:
        theirs = await client.get(f"/users/{other}/channels")
        report.add(
            "other users' channels and unreads",
            OK,
            f"{len(theirs)} channel(s) of user {other}: all_unreads covers all their channels",
        )
    except AppError as err:
        report.add(
            "other users' channels and unreads",
            NO,
            f"{err.status_code}: needs the user's own token or an admin (manage_system); "
            "recapd uses the bot's channels that the user is also in",
        )


async def _dm_probes(
    client: MattermostClient, report: CheckReport, me: dict[str, Any], send_test_to: str
) -> None:
    try:
        await client.post("/channels/direct", [me["id"], me["id"]], idempotent=True)
        report.add("open direct channels", OK, "its own DM channel opened")
    except AppError as err:
        report.add("open direct channels", NO, _why(err))
        return
    if not send_test_to:
        report.add("post direct messages", SKIPPED, "not tried: use --send-test USERNAME")
        return
    try:
        user = await client.get(f"/users/username/{send_test_to.lstrip('@')}")
        dm = await client.post("/channels/direct", [me["id"], user["id"]], idempotent=True)
        body = {"channel_id": dm["id"], "message": "recapd check: this bot can send you recaps."}
        await client.post("/posts", body)
        report.add("post direct messages", OK, f"test message sent to @{user['username']}")
    except AppError as err:
        report.add("post direct messages", NO, _why(err))


def check_settings(settings: Settings, send_test_to: str = "") -> CheckReport:
    """Run the check with the configured server and token."""

    async def main() -> CheckReport:
        client = mattermost_client(settings, SystemClock())
        try:
            return await run_check(client, send_test_to)
        finally:
            await client.aclose()

    return asyncio.run(main())
