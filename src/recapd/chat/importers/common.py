"""What the importers share: stable ids, errors, the report, batched writes and progress."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from sqlalchemy.engine import Connection

from recapd.model.app_error import AppError
from recapd.model.chat import Channel, ChannelMember, Post, Team, User
from recapd.model.ids import stable_id
from recapd.store.workspace_store import UpsertCounts, WorkspaceStore

# Rows per upsert statement: large enough to amortize round trips, small enough to stay flat.
BATCH_SIZE = 1000


class ImportFailed(AppError):
    """Bad input: names the file, line (or element) and field; nothing was imported."""

    def __init__(
        self,
        source: str,
        file: str,
        message: str,
        *,
        line: int | None = None,
        field: str = "",
        reason: str = "invalid_line",
    ) -> None:
        where = file + (f" line {line}" if line is not None else "")
        text = f"{where}: {field}: {message}" if field else f"{where}: {message}"
        super().__init__(
            f"import.{source}.{reason}.app_error",
            text,
            status_code=400,
            params={"file": file, "line": line, "field": field},
        )
        self.file = file
        self.line = line
        self.field = field


@dataclass(slots=True)
class ImportReport:
    """What an import created and changed; all zero when importing the same data again."""

    source: str
    path: str
    users: UpsertCounts = field(default_factory=UpsertCounts)
    teams: UpsertCounts = field(default_factory=UpsertCounts)
    channels: UpsertCounts = field(default_factory=UpsertCounts)
    members: UpsertCounts = field(default_factory=UpsertCounts)
    posts: UpsertCounts = field(default_factory=UpsertCounts)
    reactions: UpsertCounts = field(default_factory=UpsertCounts)
    # Lines (JSONL, logs) or messages (Slack) read.
    records: int = 0

    @property
    def changed(self) -> bool:
        """Whether the import wrote anything."""
        return any(c.created or c.updated for c in self._counts().values())

    def _counts(self) -> dict[str, UpsertCounts]:
        return {
            "users": self.users,
            "teams": self.teams,
            "channels": self.channels,
            "members": self.members,
            "posts": self.posts,
            "reactions": self.reactions,
        }

    def summary(self) -> str:
        """One line for the command line: created (+) and updated (~) per kind."""
        parts = [f"{k} +{c.created} ~{c.updated}" for k, c in self._counts().items()]
        return f"{self.path}: {self.records} records read; " + ", ".join(parts)


class Batch:
    """Rows waiting to be written, about BATCH_SIZE at a time, in the import's transaction."""

    def __init__(self, ws: WorkspaceStore, conn: Connection, report: ImportReport) -> None:
        self._ws = ws
        self._conn = conn
        self._report = report
        self.users: list[User] = []
        self.teams: list[Team] = []
        self.channels: list[Channel] = []
        self.members: list[ChannelMember] = []
        self.posts: list[Post] = []
        self._size = 0

    def add(self, item: User | Team | Channel | ChannelMember | Post) -> None:
        """Queue one row (a post carries its reactions); flush when the batch is full."""
        if isinstance(item, User):
            self.users.append(item)
        elif isinstance(item, Team):
            self.teams.append(item)
        elif isinstance(item, Channel):
            self.channels.append(item)
        elif isinstance(item, ChannelMember):
            self.members.append(item)
        else:
            self._size += len(item.reactions)
            self.posts.append(item)
        self._size += 1
        if self._size >= BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        """Write everything queued."""
        ws, c, r = self._ws, self._conn, self._report
        r.teams.add(ws.upsert_teams(self.teams, conn=c))
        r.channels.add(ws.upsert_channels(self.channels, conn=c))
        r.users.add(ws.upsert_users(self.users, conn=c))
        r.members.add(ws.upsert_members(self.members, conn=c))
        post_counts, reaction_counts = ws.upsert_posts(self.posts, conn=c)
        r.posts.add(post_counts)
        r.reactions.add(reaction_counts)
        self.users, self.teams, self.channels, self.members, self.posts = [], [], [], [], []
        self._size = 0


class Ids:
    """Ids for natural keys: the id a row with that key already has, else a stable derived one.

    So a user created before the import (say through the API, with a random id) is reused
    rather than duplicated, and a fresh workspace gets the same ids on every import.
    """

    def __init__(self, ws: WorkspaceStore, conn: Connection) -> None:
        self._ws = ws
        self._conn = conn
        self._users: dict[str, str | None] = {}
        self._user_ids: dict[str, str] = {}
        self._teams: dict[str, str | None] = {}
        self._channels: dict[tuple[str, str], str | None] = {}

    def existing_user(self, username: str) -> str | None:
        """The id of an existing user, or None."""
        if username not in self._users:
            found = self._ws.user_ids_by_username([username], conn=self._conn)
            self._users[username] = found.get(username)
        return self._users[username]

    def existing_team(self, name: str) -> str | None:
        """The id of an existing team, or None."""
        if name not in self._teams:
            try:
                self._teams[name] = self._ws.get_team_by_name(name, conn=self._conn).id
            except AppError as err:
                if err.status_code != 404:
                    raise
                self._teams[name] = None
        return self._teams[name]

    def existing_channel(self, team_id: str, name: str) -> str | None:
        """The id of an existing channel, or None."""
        key = (team_id, name)
        if key not in self._channels:
            try:
                found = self._ws.get_channel_by_name(team_id, name, conn=self._conn)
                self._channels[key] = found.id
            except AppError as err:
                if err.status_code != 404:
                    raise
                self._channels[key] = None
        return self._channels[key]

    def user(self, username: str) -> str:
        """The id for `username`."""
        found = self._user_ids.get(username)
        if found is None:
            found = self.existing_user(username) or stable_id("user", username)
            self._user_ids[username] = found
        return found

    def team(self, name: str) -> str:
        """The id for team `name`."""
        return self.existing_team(name) or stable_id("team", name)

    def channel(self, team_id: str, name: str) -> str:
        """The id for channel `name` of a team ("" for direct and group channels)."""
        return self.existing_channel(team_id, name) or stable_id("channel", team_id, name)


def direct_channel_name(user_ids: list[str]) -> tuple[str, str]:
    """(type, name) of the direct (one or two people) or group channel of these users.

    Mattermost's names: "<idA>__<idB>" for direct, the SHA-1 of the sorted ids for group.
    """
    ids = sorted(set(user_ids))
    if len(ids) <= 2:
        pair = ids if len(ids) == 2 else ids * 2
        return "D", "__".join(pair)
    return "G", hashlib.sha1("".join(ids).encode("ascii"), usedforsecurity=False).hexdigest()


class Record:
    """Typed access to one JSON object of an import, failing with the field's full path."""

    def __init__(self, data: Any, path: str, fail: Callable[[str, str], NoReturn]) -> None:
        if not isinstance(data, dict):
            fail(path, f"expected an object, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.path = path
        self._fail = fail

    def field_path(self, key: str) -> str:
        """The dotted path of a field, for messages."""
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, message: str) -> NoReturn:
        """Reject field `key` of this object."""
        self._fail(self.field_path(key), message)

    def text(self, key: str, *, required: bool = False, max_len: int | None = None) -> str:
        """A string field ("" when absent or null, unless required)."""
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                self.fail(key, "missing")
            return ""
        if not isinstance(value, str):
            self.fail(key, f"expected a string, got {type(value).__name__}")
        if max_len is not None and len(value) > max_len:
            self.fail(key, f"longer than {max_len} characters")
        return value

    def number(self, key: str, *, required: bool = False, minimum: int = 0) -> int:
        """An integer field (0 when absent or null, unless required)."""
        value = self.data.get(key)
        if value is None:
            if required:
                self.fail(key, "missing")
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer, got {value!r}")
        if value < minimum:
            self.fail(key, f"must be at least {minimum}, got {value}")
        return value

    def flag(self, key: str) -> bool:
        """A boolean field (False when absent or null)."""
        value = self.data.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {value!r}")
        return value

    def obj(self, key: str) -> Record:
        """A nested object ({} when absent or null)."""
        value = self.data.get(key)
        return Record({} if value is None else value, self.field_path(key), self._fail)

    def mapping(self, key: str) -> dict[str, Any]:
        """A free-form object such as props ({} when absent or null)."""
        return dict(self.obj(key).data)

    def array(self, key: str) -> list[Any]:
        """A list field ([] when absent or null)."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(key, f"expected a list, got {type(value).__name__}")
        return value

    def records(self, key: str) -> Iterator[Record]:
        """The objects of a list field, each with its indexed path."""
        for i, item in enumerate(self.array(key)):
            yield Record(item, f"{self.field_path(key)}[{i}]", self._fail)

    def strings(self, key: str) -> list[str]:
        """A list of non-empty strings."""
        out = []
        for i, item in enumerate(self.array(key)):
            if not isinstance(item, str) or not item:
                self._fail(f"{self.field_path(key)}[{i}]", "expected a non-empty string")
            out.append(item)
        return out


class _Advance:
    """Advances a rich task, but redraws at most every `step` units (per-line calls are hot)."""

    def __init__(self, progress: Progress | None, task: Any, step: int) -> None:
        self._progress = progress
        self._task = task
        self._step = step
        self._pending = 0

    def __call__(self, amount: int = 1) -> None:
        if self._progress is None:
            return
        self._pending += amount
        if self._pending >= self._step:
            self.flush()

    def flush(self) -> None:
        if self._progress is not None and self._pending:
            self._progress.advance(self._task, self._pending)
            self._pending = 0


@contextmanager
def progress_bar(
    description: str, total: int | None, *, enabled: bool, in_bytes: bool = False
) -> Iterator[Callable[[int], None]]:
    """A rich progress bar; yields `advance(amount)`, a no-op when disabled."""
    if not enabled:
        yield _Advance(None, None, 1)
        return
    count = DownloadColumn() if in_bytes else MofNCompleteColumn()
    columns = (TextColumn("{task.description}"), BarColumn(), count, TimeRemainingColumn())
    with Progress(*columns) as progress:
        task = progress.add_task(description, total=total)
        advance = _Advance(progress, task, 1 << 16 if in_bytes else 1)
        try:
            yield advance
        finally:
            advance.flush()
