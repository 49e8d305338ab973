"""Measuring the conversation step on hand-annotated logs (irc-disentanglement format).

An annotated log gives, for each annotated line, every earlier line it replies to; a
self-link starts a conversation. Two measures, as in the disentanglement literature:
- link accuracy: a line's inferred parent is among its annotated parents (a start counts
  when it is inferred as a start);
- cluster F1: conversations (connected components of the links, restricted to the
  annotated lines) that match a gold conversation exactly, as an F1 of precision and recall.
System lines (joins, parts) are dropped before summarizing, so they count as starts.
Two baselines are computed on the same lines: "the previous message", and "the addressed
nick's last message, else the previous one".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from recapd.agents.base import AgentPost
from recapd.chat.importers.irc_log import LogLine, read_log, read_reply_links
from recapd.summarize.conversations import DEFAULT_BOT_NAMES, annotate

__all__ = [
    "AnnotatedLog",
    "LinkScore",
    "addressed_baseline",
    "load_annotated",
    "log_posts",
    "previous_baseline",
    "recapd_links",
    "score_links",
]

# line index -> inferred parent line index (itself for a start)
Parents = dict[int, int]
Linker = Callable[[Sequence[LogLine]], Parents]

_ADDRESS_RE = re.compile(r"^\s*@?([^\s:,]+)\s*[:,]")


@dataclass(frozen=True, slots=True)
class AnnotatedLog:
    """A log's lines and its gold links (child line -> parent lines)."""

    name: str
    lines: list[LogLine]
    gold: dict[int, set[int]]


def load_annotated(path: Path, *, date: str | None = None) -> AnnotatedLog:
    """Read a log (`*.ascii.txt` / `*.raw.txt`) and its `*.annotation.txt`."""
    if date is None and not path.name.endswith(".ascii.txt"):
        date = "2000-01-01"  # undated logs: only relative times matter here
    return AnnotatedLog(path.name, read_log(path, date=date), read_reply_links(path))


def _is_system(line: LogLine) -> bool:
    return line.type.startswith("system_")


def _previous_message(lines: Sequence[LogLine], i: int) -> int:
    j = i - 1
    while j >= 0 and _is_system(lines[j]):
        j -= 1
    return lines[j].index if j >= 0 else lines[i].index


def previous_baseline(lines: Sequence[LogLine]) -> Parents:
    """Every line answers the message before it."""
    return {line.index: _previous_message(lines, i) for i, line in enumerate(lines)}


def addressed_baseline(lines: Sequence[LogLine]) -> Parents:
    """A line addressed to a nick answers that nick's last message, else the previous one."""
    out: Parents = {}
    last_by: dict[str, int] = {}
    for i, line in enumerate(lines):
        parent = _previous_message(lines, i)
        if not _is_system(line):
            m = _ADDRESS_RE.match(line.text)
            if m is not None:
                parent = last_by.get(m.group(1).lstrip("@").lower(), parent)
            last_by[line.nick.lower()] = line.index
        out[line.index] = parent
    return out


def log_posts(lines: Sequence[LogLine]) -> list[AgentPost]:
    """A log's chat lines as posts, ids their line numbers (system lines dropped, as the
    pipeline drops them)."""
    return [
        AgentPost(id=str(line.index), author=line.nick, create_at=line.create_at, message=line.text)
        for line in lines
        if not _is_system(line)
    ]


def recapd_links(lines: Sequence[LogLine]) -> Parents:
    """recapd's conversation step on a log, as the pipeline runs it (system lines dropped)."""
    out: Parents = {line.index: line.index for line in lines}
    for post in annotate(log_posts(lines), DEFAULT_BOT_NAMES):
        out[int(post.id)] = int(post.reply_to or post.id)
    return out


@dataclass(slots=True)
class LinkScore:
    """Link accuracy and cluster F1 summed over logs."""

    links: int = 0
    correct: int = 0
    gold_clusters: int = 0
    predicted_clusters: int = 0
    matched_clusters: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.links if self.links else 0.0

    @property
    def cluster_f1(self) -> float:
        if not self.matched_clusters:
            return 0.0
        p = self.matched_clusters / self.predicted_clusters
        r = self.matched_clusters / self.gold_clusters
        return 2 * p * r / (p + r)

    def add(self, log: AnnotatedLog, parents: Mapping[int, int]) -> None:
        """Score one log's inferred parents against its gold links."""
        for child, gold in log.gold.items():
            self.links += 1
            self.correct += parents.get(child, child) in gold
        annotated = set(log.gold)
        gold_pairs = ((child, p) for child, ps in log.gold.items() for p in ps)
        gold_clusters = _clusters(annotated, gold_pairs)
        predicted = _clusters(annotated, ((c, parents.get(c, c)) for c in annotated))
        self.gold_clusters += len(gold_clusters)
        self.predicted_clusters += len(predicted)
        self.matched_clusters += len(gold_clusters & predicted)


def _clusters(members: set[int], pairs: Iterable[tuple[int, int]]) -> set[frozenset[int]]:
    """Connected components of the pairs, restricted to `members`."""
    up: dict[int, int] = {}

    def find(x: int) -> int:
        up.setdefault(x, x)
        while up[x] != x:
            up[x] = up[up[x]]
            x = up[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            up[max(ra, rb)] = min(ra, rb)
    groups: dict[int, set[int]] = {}
    for m in members:
        groups.setdefault(find(m), set()).add(m)
    return {frozenset(g) for g in groups.values()}


def score_links(logs: Iterable[AnnotatedLog], linker: Linker) -> LinkScore:
    """Link accuracy and cluster F1 of `linker` over the logs."""
    score = LinkScore()
    for log in logs:
        score.add(log, linker(log.lines))
    return score
