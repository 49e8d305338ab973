"""Import a Slack export (a zip or its unpacked folder) into the local workspace.

The export holds users.json, channels.json and, when present, groups.json (private channels),
mpims.json (group messages) and dms.json (direct messages), plus one folder per conversation
(named after the channel, or the id of a direct message) of `YYYY-MM-DD.json` message lists.
"""

from __future__ import annotations

import html
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

from sqlalchemy.engine import Connection

from recapd.chat.importers.common import (
    Batch,
    Ids,
    ImportFailed,
    ImportReport,
    Record,
    direct_channel_name,
    progress_bar,
)
from recapd.model.chat import Channel, ChannelMember, ChannelType, Post, Reaction, Team, User
from recapd.model.ids import stable_id
from recapd.store.store import Store

SOURCE = "slack"

# Slack subtypes that are channel events, as Mattermost's post types.
_SYSTEM_SUBTYPES = {
    "channel_join": "system_join_channel",
    "group_join": "system_join_channel",
    "channel_leave": "system_leave_channel",
    "group_leave": "system_leave_channel",
    "channel_topic": "system_header_change",
    "group_topic": "system_header_change",
    "channel_purpose": "system_purpose_change",
    "group_purpose": "system_purpose_change",
    "channel_name": "system_displayname_change",
    "group_name": "system_displayname_change",
    "channel_archive": "system_channel_deleted",
    "group_archive": "system_channel_deleted",
    "channel_unarchive": "system_channel_restored",
    "group_unarchive": "system_channel_restored",
}
_SLACKBOT = "USLACKBOT"
_DAY_FILE = re.compile(r"\d{4}-\d{2}-\d{2}\.json")
_TS = re.compile(r"(?P<s>\d+)(?:\.(?P<f>\d+))?")
_MARKUP = re.compile(r"<([^<>\s][^<>]*)>")
_SPECIAL_MENTIONS = {"here": "@here", "channel": "@channel", "everyone": "@all"}


def import_slack(
    store: Store, path: str | Path, *, team: str = "slack", progress: bool = True
) -> ImportReport:
    """Import a Slack export into team `team` (created if missing).

    One transaction: bad input raises ImportFailed naming the file, element and field, and
    nothing is written. Importing the same export again changes nothing.
    """
    path = Path(path)
    team = team.strip()
    if not team or len(team) > 64:
        raise ImportFailed(SOURCE, path.name, "must be 1 to 64 characters", field="team")
    report = ImportReport(SOURCE, str(path))
    with _Export(path) as export, store.transaction() as conn:
        reader = _Reader(store, conn, export, team, report)
        conversations = reader.conversations()
        total = sum(len(export.day_files(c.folder)) for c in conversations)
        with progress_bar(f"Importing {path.name}", total, enabled=progress) as advance:
            for conversation in conversations:
                for name in export.day_files(conversation.folder):
                    reader.messages(conversation, name)
                    advance(1)
        reader.finish()
    return report


class _Export:
    """The JSON files of an export, by their path relative to the export's root."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            names = [p.relative_to(path).as_posix() for p in path.rglob("*.json")]
        elif zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
            names = [n for n in self._zip.namelist() if n.endswith(".json")]
        else:
            raise ImportFailed(SOURCE, str(path), "not a Slack export zip or folder", reason="open")
        # A zipped folder puts everything under one prefix: the root is where users.json is.
        roots = sorted(
            (str(PurePosixPath(n).parent) for n in names if PurePosixPath(n).name == "users.json"),
            key=len,
        )
        if not roots:
            raise ImportFailed(
                SOURCE, path.name, "no users.json: not a Slack export", reason="open"
            )
        self._root = "" if roots[0] == "." else roots[0] + "/"
        self._names = {n[len(self._root) :] for n in names if n.startswith(self._root)}
        self._days: dict[str, list[str]] = {}
        for name in sorted(self._names):
            parts = name.split("/")
            if len(parts) == 2 and _DAY_FILE.fullmatch(parts[1]):
                self._days.setdefault(parts[0], []).append(name)

    def __enter__(self) -> _Export:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._zip is not None:
            self._zip.close()

    def has(self, name: str) -> bool:
        return name in self._names

    def day_files(self, folder: str) -> list[str]:
        """The message files of one conversation, oldest day first."""
        return self._days.get(folder, [])

    def read(self, name: str) -> Any:
        """One JSON file, parsed (each holds one day or one list: small next to the export)."""
        try:
            if self._zip is not None:
                data = self._zip.read(self._root + name)
            else:
                data = (self._path / name).read_bytes()
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ImportFailed(SOURCE, name, f"not valid JSON ({err})") from None


@dataclass(slots=True)
class _Conversation:
    """A channel of the export and the folder of its messages."""

    channel_id: str
    folder: str


def _fail_in(file: str) -> Callable[[str, str], NoReturn]:
    def fail(field: str, message: str) -> NoReturn:
        raise ImportFailed(SOURCE, file, message, field=field)

    return fail


def _items(export: _Export, name: str, required: bool) -> Iterator[Record]:
    """The objects of a top-level list file, each with its index as path."""
    if not export.has(name):
        if required:
            raise ImportFailed(SOURCE, name, "missing from the export", reason="open")
        return
    data = export.read(name)
    fail = _fail_in(name)
    if not isinstance(data, list):
        fail("", "expected a list")
    for i, item in enumerate(data):
        yield Record(item, f"[{i}]", fail)


def _ts_ms(rec: Record, key: str, *, required: bool = False) -> int:
    """A Slack timestamp ("1355517523.000005": seconds and a per-second sequence) in ms."""
    value = rec.text(key, required=required)
    if not value:
        return 0
    m = _TS.fullmatch(value)
    if m is None:
        rec.fail(key, f"not a Slack timestamp: {value!r}")
    return int(m["s"]) * 1000 + int((m["f"] or "0")[:3].ljust(3, "0"))


class _Reader:
    """Turns the export's users, channels and messages into rows."""

    def __init__(
        self, store: Store, conn: Connection, export: _Export, team: str, report: ImportReport
    ) -> None:
        self._export = export
        self._report = report
        self._ids = Ids(store.workspace, conn)
        self._batch = Batch(store.workspace, conn, report)
        self._team = Team(self._ids.team(team), team, team)
        if self._ids.existing_team(team) is None:
            self._batch.add(self._team)
        # Slack user id -> (our id, username); bot id -> our id; Slack channel id -> name.
        self._users: dict[str, tuple[str, str]] = {}
        self._bots: dict[str, str] = {}
        self._channel_names: dict[str, str] = {}
        self._read_users()

    def _read_users(self) -> None:
        taken: set[str] = set()
        for rec in _items(self._export, "users.json", required=True):
            slack_id = rec.text("id", required=True)
            username = rec.text("name", required=True, max_len=64)
            if username in taken:
                rec.fail("name", f"duplicate username {username!r}")
            taken.add(username)
            profile = rec.obj("profile")
            user = User(
                self._ids.user(username),
                username,
                display_name=(
                    profile.text("display_name")
                    or profile.text("real_name")
                    or rec.text("real_name")
                    or username
                )[:255],
                email=profile.text("email", max_len=255),
                locale=rec.text("locale", max_len=32) or "en",
                timezone=rec.text("tz", max_len=64),
                is_bot=rec.flag("is_bot") or slack_id == _SLACKBOT,
                delete_at=max(rec.number("updated") * 1000, 1) if rec.flag("deleted") else 0,
            )
            self._users[slack_id] = (user.id, username)
            if bot_id := profile.text("bot_id"):
                self._bots[bot_id] = user.id
            self._batch.add(user)

    def _user(self, slack_id: str, hint: Record | None = None) -> str:
        """Our id for a Slack user id.

        Ids missing from users.json (Slackbot, people of shared channels) become placeholder
        users rather than failing a real export; an existing user of that name is kept as is.
        """
        known = self._users.get(slack_id)
        if known is not None:
            return known[0]
        username = "slackbot" if slack_id == _SLACKBOT else slack_id.lower()[:64]
        display = ""
        if hint is not None:
            display = hint.text("display_name") or hint.text("real_name")
        user = User(
            self._ids.user(username),
            username,
            (display or username)[:255],
            is_bot=slack_id == _SLACKBOT,
        )
        self._users[slack_id] = (user.id, username)
        if self._ids.existing_user(username) is None:
            self._batch.add(user)
        return user.id

    def _bot(self, bot_id: str, name: str) -> str:
        known = self._bots.get(bot_id)
        if known is not None:
            return known
        username = f"bot-{bot_id.lower()}"[:64]
        user = User(self._ids.user(username), username, (name or username)[:255], is_bot=True)
        self._bots[bot_id] = user.id
        if self._ids.existing_user(username) is None:
            self._batch.add(user)
        return user.id

    def conversations(self) -> list[_Conversation]:
        """Queue every channel with its members; the conversations whose messages to read."""
        out: list[_Conversation] = []
        for file, channel_type in (
            ("channels.json", ChannelType.OPEN),
            ("groups.json", ChannelType.PRIVATE),
        ):
            for rec in _items(self._export, file, required=file == "channels.json"):
                name = rec.text("name", required=True, max_len=128)
                channel = Channel(
                    self._ids.channel(self._team.id, name),
                    self._team.id,
                    name,
                    name,
                    channel_type,
                    header=rec.obj("topic").text("value"),
                    purpose=rec.obj("purpose").text("value"),
                )
                self._channel_names[rec.text("id", required=True)] = name
                out.append(self._conversation(rec, channel, name))
        for file, folder_key in (("mpims.json", "name"), ("dms.json", "id")):
            for rec in _items(self._export, file, required=False):
                folder = rec.text(folder_key, required=True)
                members = [self._user(u) for u in rec.strings("members")]
                if not members:
                    rec.fail("members", "a direct or group message needs members")
                kind, name = direct_channel_name(members)
                usernames = sorted({self._username(u) for u in rec.strings("members")})
                channel = Channel(
                    self._ids.channel("", name), "", name, ", ".join(usernames)[:255], kind
                )
                out.append(self._conversation(rec, channel, folder))
        return out

    def _username(self, slack_id: str) -> str:
        self._user(slack_id)
        return self._users[slack_id][1]

    def _conversation(self, rec: Record, channel: Channel, folder: str) -> _Conversation:
        channel.create_at = rec.number("created") * 1000
        if rec.flag("is_archived"):
            # The export does not say when a channel was archived; any nonzero time archives.
            channel.delete_at = max(channel.create_at, 1)
        self._batch.add(channel)
        for slack_id in rec.strings("members"):
            self._batch.add(ChannelMember(channel.id, self._user(slack_id), 0, channel.create_at))
        return _Conversation(channel.id, folder)

    def messages(self, conversation: _Conversation, file: str) -> None:
        """Queue the posts of one day file."""
        data = self._export.read(file)
        fail = _fail_in(file)
        if not isinstance(data, list):
            fail("", "expected a list of messages")
        for i, item in enumerate(data):
            self._report.records += 1
            post = self._post(Record(item, f"[{i}]", fail), conversation.channel_id)
            if post is not None:
                self._batch.add(post)

    def _post(self, rec: Record, channel_id: str) -> Post | None:
        if rec.text("type") not in ("", "message"):
            return None
        subtype = rec.text("subtype")
        ts = rec.text("ts", required=True)
        create_at = _ts_ms(rec, "ts", required=True)
        props: dict[str, Any] = {}
        if slack_user := rec.text("user"):
            user_id = self._user(slack_user, rec.obj("user_profile"))
        elif bot_id := rec.text("bot_id"):
            user_id = self._bot(bot_id, rec.text("username") or rec.obj("bot_profile").text("name"))
            props["from_bot"] = "true"
        else:
            rec.fail("user", "missing (and no bot_id)")
        thread_ts = rec.text("thread_ts")
        if thread_ts:
            _ts_ms(rec, "thread_ts")
        post = Post(
            id=stable_id("slack-post", channel_id, ts),
            channel_id=channel_id,
            user_id=user_id,
            message=self._markdown(rec.text("text")),
            create_at=create_at,
            root_id=stable_id("slack-post", channel_id, thread_ts)
            if thread_ts and thread_ts != ts
            else "",
            type=self._post_type(subtype),
            props=props,
            edit_at=_ts_ms(rec.obj("edited"), "ts"),
            # A tombstone stands in for a deleted thread root that still has replies.
            delete_at=create_at if subtype == "tombstone" else 0,
        )
        for reaction in rec.records("reactions"):
            emoji = reaction.text("name", required=True, max_len=64)
            for slack_id in reaction.strings("users"):
                post.reactions.append(Reaction(self._user(slack_id), emoji, create_at))
        return post

    @staticmethod
    def _post_type(subtype: str) -> str:
        if subtype in _SYSTEM_SUBTYPES:
            return _SYSTEM_SUBTYPES[subtype]
        if subtype == "me_message":
            return "me"
        if subtype.startswith(("channel_", "group_")):
            return f"system_slack_{subtype}"
        return ""

    def _markdown(self, text: str) -> str:
        """Slack's markup as Mattermost markdown: @user, ~channel, @here, [label](url)."""
        return html.unescape(_MARKUP.sub(self._markup, text))

    def _markup(self, m: re.Match[str]) -> str:
        target, _, label = m.group(1).partition("|")
        if target.startswith("@"):
            user = self._users.get(target[1:])
            return "@" + (user[1] if user else label or target[1:])
        if target.startswith("#"):
            return "~" + (self._channel_names.get(target[1:]) or label or target[1:])
        if target.startswith("!"):
            name = target[1:].split("^", 1)[0]
            return _SPECIAL_MENTIONS.get(name) or label or target
        return f"[{label}]({target})" if label else target

    def finish(self) -> None:
        """Write what is still queued."""
        self._batch.flush()
