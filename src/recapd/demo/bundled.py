"""The demo's bundled IRC logs (package data, CC-BY-4.0, see data/ATTRIBUTION.md) and their
copies with every line moved into the last day, ready for the log importer."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

_MINUTE_MS = 60_000

# `chan YYYY-MM-DD [HH:MM(:SS)] rest`; system lines (`=== ...`) may carry no time.
_LINE = re.compile(
    rb"(?P<chan>\S+) (?P<date>\d{4}-\d{2}-\d{2}) "
    rb"(?:\[(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?\] ?)?(?P<rest>.*)",
    re.DOTALL,
)


@dataclass(frozen=True)
class DemoLog:
    """One bundled log: the channel it becomes and how long before "now" its last line falls."""

    channel: str
    ends_minutes_ago: int

    @property
    def log_file(self) -> str:
        return f"{self.channel}.ascii.txt"

    @property
    def annotation_file(self) -> str:
        return f"{self.channel}.annotation.txt"


# Staggered ends so the channels read like a live workspace: one active minutes ago, one that
# met this morning. Each log spans under 3 hours, so all of it is in the last 24.
DEMO_LOGS = (
    DemoLog("stripe", 4),
    DemoLog("rust", 50),
    DemoLog("ubuntu-meeting", 180),
)


def _read(name: str) -> bytes:
    return resources.files("recapd.demo").joinpath("data", name).read_bytes()


def _stamp(m: re.Match[bytes], last: dt.datetime | None) -> dt.datetime | None:
    """The line's own date and time (UTC); a line without a time keeps the previous one's."""
    day = dt.date.fromisoformat(m["date"].decode())
    if m["h"] is None:
        if last is not None and last.date() == day:
            return last
        return None
    t = dt.time(int(m["h"]), int(m["m"]), int(m["s"] or 0))
    return dt.datetime.combine(day, t, dt.UTC)


def shifted_log(log: DemoLog, now_ms: int) -> bytes:
    """The log's bytes with every line's date and time moved by one amount, so that its last
    line falls `log.ends_minutes_ago` before `now_ms`; every line then carries its time."""
    lines = _read(log.log_file).splitlines()
    parsed: list[tuple[re.Match[bytes], dt.datetime | None]] = []
    last: dt.datetime | None = None
    for number, raw in enumerate(lines, 1):
        m = _LINE.fullmatch(raw)
        if m is None:
            raise ValueError(f"{log.log_file}:{number}: not a dated log line")
        last = _stamp(m, last)
        parsed.append((m, last))
    known = [t for _, t in parsed if t is not None]
    if not known:
        raise ValueError(f"{log.log_file}: no line carries a time")
    end = dt.datetime.fromtimestamp((now_ms - log.ends_minutes_ago * _MINUTE_MS) / 1000, dt.UTC)
    delta = end.replace(microsecond=0) - known[-1]
    first = known[0]
    out: list[bytes] = []
    for m, stamp in parsed:
        at = (stamp or first) + delta
        out.append(
            b"%s %s [%s] %s"
            % (
                m["chan"],
                at.strftime("%Y-%m-%d").encode(),
                at.strftime("%H:%M:%S").encode(),
                m["rest"],
            )
        )
    return b"\n".join(out) + b"\n"


def write_shifted(log: DemoLog, now_ms: int, folder: Path) -> Path:
    """Write the shifted log and its reply-to annotations into `folder`; the log's path."""
    path = folder / log.log_file
    path.write_bytes(shifted_log(log, now_ms))
    (folder / log.annotation_file).write_bytes(_read(log.annotation_file))
    return path
