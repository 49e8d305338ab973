"""Import a Mattermost bulk export (`import.jsonl`, bare or in a zip) into the local workspace."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, NoReturn

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
from recapd.store.workspace_store import WorkspaceStore

SOURCE = "mattermost"
JSONL_NAME = "import.jsonl"
# Line types recapd has no use for; Mattermost's importer knows them, so they are not errors.
_IGNORED_TYPES = frozenset({"scheme", "role", "emoji", "bot"})
_TEAM_CHANNEL_TYPES = frozenset({ChannelType.OPEN.value, ChannelType.PRIVATE.value})


def import_mattermost(store: Store, path: str | Path, *, progress: bool = True) -> ImportReport:
    """Import a bulk export: a `.zip` with `import.jsonl`, or a bare `.jsonl` file.

    One transaction: bad input raises ImportFailed naming the line and field, and nothing is
    written. Importing the same export again changes nothing.
    """
    path = Path(path)
    report = ImportReport(SOURCE, str(path))
    with (
        _open_jsonl(path) as (name, stream, size),
        store.transaction() as conn,
        progress_bar(f"Importing {path.name}", size, enabled=progress, in_bytes=True) as advance,
    ):
        reader = _Reader(store.workspace, conn, name, report)
        for lineno, raw in enumerate(stream, 1):
            advance(len(raw))
            reader.line(lineno, raw)
        if report.records == 0:
            raise ImportFailed(SOURCE, name, "empty file: no version line", reason="empty")
        reader.finish()
    return report


@contextmanager
def _open_jsonl(path: Path) -> Iterator[tuple[str, IO[bytes], int]]:
    """(name for messages, binary stream read line by line, size in bytes)."""
    if not path.exists():
        raise ImportFailed(SOURCE, str(path), "no such file", reason="open")
    if not zipfile.is_zipfile(path):
        with path.open("rb") as f:
            yield path.name, f, path.stat().st_size
        return
    with zipfile.ZipFile(path) as zf:
        member = _find_jsonl(zf, path)
        with zf.open(member) as f:
            yield f"{path.name}:{member.filename}", f, member.file_size


def _find_jsonl(zf: zipfile.ZipFile, path: Path) -> zipfile.ZipInfo:
    """The root `import.jsonl`, else the one in a single top-level folder (a zipped folder).

    Other `.jsonl` files (attachments under `data/`) are never read, as in Mattermost.
    """
    infos = [i for i in zf.infolist() if not i.is_dir()]
    for info in infos:
        if info.filename == JSONL_NAME:
            return info
    nested = [
        i
        for i in infos
        if PurePosixPath(i.filename).name == JSONL_NAME
        and len(PurePosixPath(i.filename).parts) == 2
        and PurePosixPath(i.filename).parts[0] != "data"
    ]
    if len(nested) == 1:
        return nested[0]
    raise ImportFailed(SOURCE, path.name, f"no {JSONL_NAME} at the root of the zip", reason="open")


class _Reader:
    """Turns lines into rows; keeps only the names it has seen (never the posts)."""

    def __init__(
        self, ws: WorkspaceStore, conn: Connection, name: str, report: ImportReport
    ) -> None:
        self._name = name
        self._report = report
        self._ids = Ids(ws, conn)
        self._batch = Batch(ws, conn, report)
        self._line = 0
        # Names defined by this file: team name -> id, (team name, channel name) -> id,
        # username -> id, sorted direct-channel usernames -> id.
        self._teams: dict[str, str] = {}
        self._channels: dict[tuple[str, str], str] = {}
        self._users: dict[str, str] = {}
        self._directs: dict[tuple[str, ...], str] = {}
        self._handlers: dict[str, Callable[[Record], None]] = {
            "team": self._team,
            "channel": self._channel,
            "user": self._user,
            "post": self._post,
            "direct_channel": self._direct_channel,
            "direct_post": self._direct_post,
        }

    def _fail(self, field: str, message: str) -> NoReturn:
        raise ImportFailed(SOURCE, self._name, message, line=self._line, field=field)

    def line(self, lineno: int, raw: bytes) -> None:
        """Read one line."""
        self._line = lineno
        self._report.records += 1
        if not raw.strip():
            return
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            self._fail("", f"not valid JSON ({err})")
        line = Record(data, "", self._fail)
        kind = line.text("type", required=True)
        if lineno == 1 or kind == "version":
            self._version(line, kind, lineno)
            return
        handler = self._handlers.get(kind)
        if handler is None:
            if kind in _IGNORED_TYPES:
                return
            line.fail("type", f"unknown line type {kind!r}")
        if kind not in line.data:
            line.fail(kind, "missing")
        handler(line.obj(kind))

    def finish(self) -> None:
        """Write what is still queued."""
        self._batch.flush()

    def _version(self, line: Record, kind: str, lineno: int) -> None:
        if kind != "version" or lineno != 1:
            line.fail("type", "the first line must be the version line, and only the first")
        if line.number("version", required=True) != 1:
            line.fail("version", f"unsupported version {line.data['version']!r} (expected 1)")

    # ----------------------------------------------------------------- names

    def _team_id(self, rec: Record, key: str) -> str:
        name = rec.text(key, required=True)
        found = self._teams.get(name) or self._ids.existing_team(name)
        if found is None:
            rec.fail(key, f"unknown team {name!r}")
        return found

    def _channel_id(self, rec: Record, team_key: str, key: str) -> str:
        team_name = rec.text(team_key, required=True)
        team_id = self._team_id(rec, team_key)
        name = rec.text(key, required=True)
        found = self._channels.get((team_name, name)) or self._ids.existing_channel(team_id, name)
        if found is None:
            rec.fail(key, f"unknown channel {name!r} in team {team_name!r}")
        return found

    def _user_id(self, rec: Record, key: str) -> str:
        username = rec.text(key, required=True)
        return self._username_id(rec, key, username)

    def _username_id(self, rec: Record, field: str, username: str) -> str:
        found = self._users.get(username) or self._ids.existing_user(username)
        if found is None:
            rec.fail(field, f"unknown user {username!r}")
        return found

    # ----------------------------------------------------------------- lines

    def _team(self, rec: Record) -> None:
        name = rec.text("name", required=True, max_len=64)
        team_id = self._ids.team(name)
        self._teams[name] = team_id
        display = rec.text("display_name", max_len=255) or name
        self._batch.add(Team(team_id, name, display, delete_at=rec.number("delete_at")))

    def _channel(self, rec: Record) -> None:
        team_name = rec.text("team", required=True)
        team_id = self._team_id(rec, "team")
        name = rec.text("name", required=True, max_len=128)
        kind = rec.text("type") or ChannelType.OPEN.value
        if kind not in _TEAM_CHANNEL_TYPES:
            rec.fail("type", f"expected 'O' or 'P', got {kind!r}")
        channel_id = self._ids.channel(team_id, name)
        self._channels[(team_name, name)] = channel_id
        self._batch.add(
            Channel(
                channel_id,
                team_id,
                name,
                display_name=rec.text("display_name", max_len=255) or name,
                type=kind,
                header=rec.text("header"),
                purpose=rec.text("purpose"),
                delete_at=rec.number("deleted_at"),
            )
        )

    def _user(self, rec: Record) -> None:
        username = rec.text("username", required=True, max_len=64)
        user_id = self._ids.user(username)
        self._users[username] = user_id
        full_name = f"{rec.text('first_name')} {rec.text('last_name')}".strip()
        self._batch.add(
            User(
                user_id,
                username,
                display_name=(full_name or rec.text("nickname") or username)[:255],
                email=rec.text("email", max_len=255),
                locale=rec.text("locale", max_len=32) or "en",
                delete_at=rec.number("delete_at"),
            )
        )
        for team in rec.records("teams"):
            team_name = team.text("name", required=True)
            team_id = self._team_id(team, "name")
            for membership in team.records("channels"):
                name = membership.text("name", required=True)
                channel_id = self._channels.get((team_name, name)) or self._ids.existing_channel(
                    team_id, name
                )
                if channel_id is None:
                    membership.fail("name", f"unknown channel {name!r} in team {team_name!r}")
                viewed = membership.number("last_viewed_at")
                self._batch.add(ChannelMember(channel_id, user_id, last_viewed_at=viewed))

    def _direct_channel_id(self, rec: Record, key: str, header: str | None) -> str:
        """The id of a direct or group channel, queueing it and its members when first seen.

        `header` is None for a direct_post, which creates its channel only when missing, so a
        header imported earlier is never reset.
        """
        usernames = rec.strings(key)
        if not 2 <= len(usernames) <= 8:
            rec.fail(key, f"a direct channel has 2 to 8 members, got {len(usernames)}")
        user_ids = sorted(
            {
                self._username_id(rec, f"{rec.field_path(key)}[{i}]", u)
                for i, u in enumerate(usernames)
            }
        )
        names = tuple(sorted(set(usernames)))
        kind, name = direct_channel_name(user_ids)
        channel_id = self._directs.get(names)
        if channel_id is not None and header is None:
            return channel_id
        existing = self._ids.existing_channel("", name)
        if channel_id is None:
            channel_id = existing or stable_id("channel", "", name)
            self._directs[names] = channel_id
            for uid in user_ids:
                self._batch.add(ChannelMember(channel_id, uid))
        if header is not None or existing is None:
            channel = Channel(
                channel_id, "", name, ", ".join(names)[:255], kind, header=header or ""
            )
            self._batch.add(channel)
        return channel_id

    def _direct_channel(self, rec: Record) -> None:
        self._direct_channel_id(rec, "members", rec.text("header"))

    def _post(self, rec: Record) -> None:
        channel_id = self._channel_id(rec, "team", "channel")
        self._thread(rec, channel_id)

    def _direct_post(self, rec: Record) -> None:
        channel_id = self._direct_channel_id(rec, "channel_members", None)
        self._thread(rec, channel_id)

    def _thread(self, rec: Record, channel_id: str) -> None:
        """A root post and its nested replies (replies carry no root id in the export)."""
        root = self._one_post(rec, channel_id, "")
        for reply in rec.records("replies"):
            self._one_post(reply, channel_id, root.id)

    def _one_post(self, rec: Record, channel_id: str, root_id: str) -> Post:
        user_id = self._user_id(rec, "user")
        create_at = rec.number("create_at", required=True, minimum=1)
        # The export has no post ids; Mattermost itself matches posts on channel, author and
        # creation time when re-importing, and so does this key.
        post = Post(
            id=stable_id("mattermost-post", channel_id, user_id, str(create_at)),
            channel_id=channel_id,
            user_id=user_id,
            message=rec.text("message"),
            create_at=create_at,
            root_id=root_id,
            type=rec.text("type", max_len=64),
            props=rec.mapping("props"),
            edit_at=rec.number("edit_at"),
        )
        for reaction in rec.records("reactions"):
            post.reactions.append(
                Reaction(
                    self._user_id(reaction, "user"),
                    reaction.text("emoji_name", required=True, max_len=64),
                    reaction.number("create_at"),
                )
            )
        self._batch.add(post)
        return post
