"""Import a plain IRC-style chat log (one channel per file) into the local workspace.

Two line formats, as in the irc-disentanglement corpus:
  `mediawiki 2019-02-18 [04:20:28] <nick> text`  (channel, date and time on every line)
  `[14:02] <nick> text`                          (times only: the date of line 1 is given)
Bodies: `<nick> text`, `* nick action`, `-nick- notice`, and `=== ...` system lines (joins,
parts, quits, nick and mode changes, topics; otherwise an old-style action). Lines without a
time take the previous line's.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from sqlalchemy.engine import Connection

from recapd.chat.importers.common import (
    Batch,
    Ids,
    ImportFailed,
    ImportReport,
    progress_bar,
)
from recapd.model.chat import Channel, ChannelMember, ChannelType, Post, Team, User
from recapd.model.ids import stable_id
from recapd.store.store import Store

SOURCE = "log"

# Post types. Joins and leaves use Mattermost's; IRC-only events get their own system_ types.
TYPE_JOIN = "system_join_channel"
TYPE_LEAVE = "system_leave_channel"
TYPE_TOPIC = "system_header_change"
TYPE_NICK = "system_irc_nick_change"
TYPE_MODE = "system_irc_mode"
TYPE_ACTION = "me"

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS

_DATED = re.compile(r"(?P<chan>[^\s\[<=*-]\S*) (?P<date>\d{4}-\d{2}-\d{2}) (?P<rest>.*)")
_TIME = re.compile(r"\[?(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?\]?(?:\s+(?P<body>.*))?")
_MESSAGE = re.compile(r"<[@+%&~]?\s*(?P<nick>[^>\s](?:[^>]*[^>\s])?)\s*>\s?(?P<text>.*)")
_ACTION = re.compile(r"\*\s*(?P<nick>[^\s*]+)\s+(?P<text>.*)")
_NOTICE = re.compile(r"-(?P<nick>[^\s-]\S*?)-\s(?P<text>.*)")
_SYSTEM = re.compile(r"===\s+(?P<text>.*)")
# Nicks in system lines may hold spaces ("[JAPS] ph1L"): they end at the last token before the
# [user@host] of a join or part, or before "is now known as".
_JOIN_PART = re.compile(r"(?P<nick>.+?)\s+\[[^\]]*\]\s+has (?P<what>joined|left|quit)\b.*")
_NICK = re.compile(r"(?P<nick>.+?)\s+is now known as\s+(?P<new>\S+)")
_MODE = re.compile(r"mode/\S+ \[[^\]]*\]\s+by (?P<nick>\S+)")
_TOPIC = re.compile(r"\.\.\[topic/[^:\]]+:(?P<nick>[^\]]+)\]\s*:\s*(?P<text>.*)")
_OLD_ACTION = re.compile(r"(?P<nick>[^\s\[]\S*) (?P<text>.+)")
_ANNOTATION = re.compile(r"(?P<a>\d+) (?P<b>\d+)(?: .*)?")
_LOG_SUFFIXES = (".ascii.txt", ".raw.txt", ".txt", ".log")


@dataclass(slots=True)
class _Line:
    """One parsed log line before it gets its timestamp."""

    index: int  # 0-based, as annotation files count
    date: dt.date | None
    seconds: int | None  # time of day
    nick: str
    text: str
    type: str
    other_nick: str = ""  # the new nick of a nick change


def import_log(
    store: Store,
    path: str | Path,
    *,
    channel: str | None = None,
    team: str = "irc",
    date: str | None = None,
    progress: bool = True,
) -> ImportReport:
    """Import one log file as one channel of `team` (created if missing).

    The channel is `channel` or the file name up to its first dot (lowercased, without "#";
    an existing team, channel or user is reused as it is). `date` (YYYY-MM-DD) is the
    date of the first line, needed only by logs whose lines carry no date. Every nick becomes
    a user and a member of the channel. A companion `<stem>.annotation.txt` of reply-to links
    (`<earlier line> <later line> -`, 0-based), when present, turns replies into threads.
    One transaction; bad input raises ImportFailed and writes nothing.
    """
    path = Path(path)
    if not path.is_file():
        raise ImportFailed(SOURCE, str(path), "no such file", reason="open")
    start_date = _parse_date(path.name, date)
    team_name = team.strip()
    channel_name = (channel or path.name.split(".", 1)[0]).strip().lstrip("#").lower()
    for field, value, limit in (("team", team_name, 64), ("channel", channel_name, 128)):
        if not value or len(value) > limit:
            raise ImportFailed(SOURCE, path.name, f"must be 1 to {limit} characters", field=field)
    parents = _read_annotations(path)
    report = ImportReport(SOURCE, str(path))
    size = path.stat().st_size
    with (
        store.transaction() as conn,
        progress_bar(f"Importing {path.name}", size, enabled=progress, in_bytes=True) as advance,
    ):
        writer = _Writer(store, conn, path.name, team_name, channel_name, parents, report)
        lines = _parse(path, start_date, report, advance)
        for line, create_at, base_ms in _timestamps(path, lines, start_date):
            writer.add(line, create_at, base_ms)
        writer.finish()
    return report


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a log as the importer reads it (for tools that measure on logs)."""

    index: int  # 0-based, as annotation files count
    nick: str
    text: str
    type: str  # "" for a message, TYPE_ACTION, or a system_ type
    create_at: int


def read_log(path: str | Path, *, date: str | None = None) -> list[LogLine]:
    """Every line of a log, parsed and timed exactly as `import_log` would store it."""
    path = Path(path)
    start_date = _parse_date(path.name, date)
    report = ImportReport(SOURCE, str(path))
    lines = _parse(path, start_date, report, lambda _n: None)
    return [
        LogLine(line.index, line.nick, line.text, line.type, create_at)
        for line, create_at, _base in _timestamps(path, lines, start_date)
    ]


def read_reply_links(path: str | Path) -> dict[int, set[int]]:
    """A log's companion annotation: later line -> every earlier line it replies to (a
    self-link, the line itself, starts a conversation); empty when there is none."""
    ann = _annotation_path(Path(path))
    links: dict[int, set[int]] = {}
    if ann is None:
        return links
    for lineno, text in enumerate(ann.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        m = _ANNOTATION.fullmatch(text.strip())
        if m is None:
            _fail(ann.name, lineno, "expected '<earlier line> <later line> -'")
        a, b = int(m["a"]), int(m["b"])
        links.setdefault(max(a, b), set()).add(min(a, b))
    return links


def _parse_date(file: str, date: str | None) -> dt.date | None:
    if date is None:
        return None
    try:
        return dt.date.fromisoformat(date)
    except ValueError:
        raise ImportFailed(
            SOURCE, file, f"expected YYYY-MM-DD, got {date!r}", field="date"
        ) from None


def _fail(file: str, lineno: int, message: str, field: str = "") -> NoReturn:
    raise ImportFailed(SOURCE, file, message, line=lineno, field=field)


def _parse(
    path: Path,
    start_date: dt.date | None,
    report: ImportReport,
    advance: Callable[[int], None],
) -> Iterator[_Line]:
    """The log's lines, parsed one at a time."""
    dated: bool | None = None
    with path.open("rb") as f:
        for index, raw in enumerate(f):
            lineno = index + 1
            report.records += 1
            advance(len(raw))
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                # Old logs are often Latin-1; every byte string decodes as it.
                text = raw.decode("latin-1")
            text = text.rstrip()
            if not text:
                continue
            m = _DATED.fullmatch(text)
            if dated is None:
                dated = m is not None
                if not dated and start_date is None:
                    _fail(
                        path.name,
                        lineno,
                        "this log's lines carry no date: give the date of its first line "
                        "(date=YYYY-MM-DD)",
                        "date",
                    )
            if dated:
                if m is None:
                    _fail(path.name, lineno, "expected 'CHANNEL YYYY-MM-DD ...' like line 1")
                try:
                    day: dt.date | None = dt.date.fromisoformat(m["date"])
                except ValueError:
                    _fail(path.name, lineno, f"invalid date {m['date']!r}", "date")
                text = m["rest"]
            else:
                day = None
            yield _parse_body(path.name, lineno, index, day, text)


def _parse_body(file: str, lineno: int, index: int, day: dt.date | None, text: str) -> _Line:
    seconds: int | None = None
    tm = _TIME.fullmatch(text)
    if tm is not None and not text.startswith("==="):
        h, mi, s = int(tm["h"]), int(tm["m"]), int(tm["s"] or 0)
        if h > 23 or mi > 59 or s > 59:
            _fail(file, lineno, f"invalid time {h:02}:{mi:02}:{s:02}", "time")
        seconds = h * 3600 + mi * 60 + s
        text = tm["body"] or ""
    if m := _MESSAGE.fullmatch(text):
        return _Line(index, day, seconds, m["nick"], m["text"].strip(), "")
    if m := _ACTION.fullmatch(text):
        return _Line(index, day, seconds, m["nick"], m["text"].strip(), TYPE_ACTION)
    if m := _NOTICE.fullmatch(text):
        return _Line(index, day, seconds, m["nick"], m["text"].strip(), "")
    if m := _SYSTEM.fullmatch(text):
        body = m["text"].strip()
        if sm := _JOIN_PART.fullmatch(body):
            kind = TYPE_JOIN if sm["what"] == "joined" else TYPE_LEAVE
            return _Line(index, day, seconds, sm["nick"], body, kind)
        if sm := _NICK.fullmatch(body):
            return _Line(index, day, seconds, sm["nick"], body, TYPE_NICK, sm["new"])
        if sm := _MODE.fullmatch(body):
            return _Line(index, day, seconds, sm["nick"], body, TYPE_MODE)
        if sm := _TOPIC.fullmatch(body):
            return _Line(index, day, seconds, sm["nick"], sm["text"], TYPE_TOPIC)
        if sm := _OLD_ACTION.fullmatch(body):
            return _Line(index, day, seconds, sm["nick"], sm["text"].strip(), TYPE_ACTION)
    _fail(file, lineno, f"not a chat line: {text[:80]!r}")


def _twelve_hour_clock(path: Path) -> bool:
    """Whether a log without dates uses a 12-hour clock without AM/PM (no hour above 12).

    Such logs run 11, 12, 01, ...: a wrap then means +12 hours, not a new day.
    """
    with path.open("rb") as f:
        for raw in f:
            m = re.match(rb"\[?(\d{1,2}):\d{2}", raw)
            if m is not None and int(m.group(1)) > 12:
                return False
    return True


def _timestamps(
    path: Path, lines: Iterator[_Line], start_date: dt.date | None
) -> Iterator[tuple[_Line, int, int]]:
    """(line, create_at, base) with create_at strictly increasing in file order.

    `base` is the time the line states (or inherits); create_at adds a millisecond where
    lines share a minute or a second, so order survives the (create_at, id) sort.
    """
    twelve: bool | None = None
    offset_ms = 0  # days (or half days) passed since the first line, for logs without dates
    last_seconds: int | None = None
    last_date: dt.date | None = None
    last_create = 0
    waiting: list[_Line] = []  # lines before the first time in the file
    for line in lines:
        if line.seconds is None and last_seconds is None:
            waiting.append(line)
            continue
        seconds = line.seconds
        if seconds is None:
            # The previous line's time; a line opening a new date without one sits at 0:00.
            assert last_seconds is not None
            seconds = last_seconds if line.date == last_date else 0
        if line.date is None:
            if twelve is None:
                twelve = _twelve_hour_clock(path)
            if last_seconds is not None and seconds < last_seconds - 3600:
                offset_ms += _DAY_MS // 2 if twelve else _DAY_MS
        last_seconds, last_date = seconds, line.date
        day = line.date or start_date
        assert day is not None  # _parse demands a date for logs without one per line
        midnight = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)
        base = midnight + (0 if line.date else offset_ms) + seconds * 1000
        for early in [*waiting, line]:
            last_create = max(base, last_create + 1)
            yield early, last_create, base
        waiting.clear()
    # A log with no time at all: its lines sit at midnight of their date.
    for line in waiting:
        day = line.date or start_date
        assert day is not None
        base = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)
        last_create = max(base, last_create + 1)
        yield line, last_create, base


def _annotation_path(path: Path) -> Path | None:
    for suffix in _LOG_SUFFIXES:
        if path.name.endswith(suffix):
            candidate = path.with_name(path.name[: -len(suffix)] + ".annotation.txt")
            return candidate if candidate.is_file() and candidate != path else None
    return None


def _read_annotations(path: Path) -> dict[int, int]:
    """later line -> earliest earlier line it replies to (self-links start a conversation)."""
    return {
        child: min(parents)
        for child, parents in read_reply_links(path).items()
        if min(parents) < child
    }


class _Writer:
    """Queues the rows of one log: its posts as they come, users and members at the end."""

    def __init__(
        self,
        store: Store,
        conn: Connection,
        file: str,
        team_name: str,
        channel_name: str,
        parents: dict[int, int],
        report: ImportReport,
    ) -> None:
        self._file = file
        self._ids = Ids(store.workspace, conn)
        self._batch = Batch(store.workspace, conn, report)
        self._team = Team(self._ids.team(team_name), team_name, team_name)
        self._channel = Channel(
            self._ids.channel(self._team.id, channel_name),
            self._team.id,
            channel_name,
            channel_name,
            ChannelType.OPEN,
        )
        self._parents = parents
        self._wanted = set(parents.values())
        # line index -> (post id, root id) of the lines that replies point to.
        self._threads: dict[int, tuple[str, str]] = {}
        # username -> (display nick, first seen ms).
        self._users: dict[str, tuple[str, int]] = {}
        self._seen_base = -1
        self._seen: dict[tuple[str, str, str], int] = {}

    def _user(self, nick: str, at: int, lineno: int) -> str:
        nick = nick.strip()
        username = nick.lower()
        if len(username) > 64:
            _fail(self._file, lineno, f"nick longer than 64 characters: {nick[:70]!r}", "nick")
        if username not in self._users:
            self._users[username] = (nick, at)
        return self._ids.user(username)

    def add(self, line: _Line, create_at: int, base_ms: int) -> None:
        lineno = line.index + 1
        user_id = self._user(line.nick, create_at, lineno)
        if line.other_nick:
            self._user(line.other_nick, create_at, lineno)
        if self._channel.create_at == 0:
            self._channel.create_at = create_at
        # Identical lines in one second are told apart by their rank, so the ids stay stable
        # without depending on line numbers (a log imported again after growing keeps them).
        if base_ms != self._seen_base:
            self._seen_base, self._seen = base_ms, {}
        key = (user_id, line.type, line.text)
        rank = self._seen.get(key, 0)
        self._seen[key] = rank + 1
        post_id = stable_id(
            "log-post", self._channel.id, str(base_ms), user_id, line.type, line.text, str(rank)
        )
        root_id = ""
        parent = self._parents.get(line.index)
        conversation = not line.type.startswith("system_")
        if conversation and parent is not None and parent in self._threads:
            parent_id, parent_root = self._threads[parent]
            root_id = parent_root or parent_id
        if conversation and line.index in self._wanted:
            self._threads[line.index] = (post_id, root_id)
        post = Post(post_id, self._channel.id, user_id, line.text, create_at, root_id, line.type)
        self._batch.add(post)

    def finish(self) -> None:
        """Queue the memberships and whatever did not exist yet, then write everything.

        A log knows only names: an existing team, channel or user (say from a Mattermost
        import, with a display name, email and locale) is left as it is.
        """
        if self._ids.existing_team(self._team.name) is None:
            self._batch.add(self._team)
        if self._ids.existing_channel(self._team.id, self._channel.name) is None:
            self._batch.add(self._channel)
        for username, (nick, first_seen) in sorted(self._users.items()):
            user_id = self._ids.user(username)
            if self._ids.existing_user(username) is None:
                self._batch.add(User(user_id, username, nick, create_at=first_seen))
            self._batch.add(ChannelMember(self._channel.id, user_id, 0, first_seen))
        self._batch.flush()
