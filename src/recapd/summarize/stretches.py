"""Cutting a reader's window into stretches with stable bounds, so readers share them.

A stretch is a span of one channel's time whose summary (the map stage) serves every reader
whose window covers it. Its bounds must not depend on the reader, so they are aligned to UTC:

- The window's whole hours are covered greedily by the largest aligned blocks that fit
  (8 h blocks start at 00, 08 and 16 UTC; 4, 2 and 1 h blocks likewise), so a daily recap at
  09:00 in any zone, a weekly recap and a manual one all meet the same 8 h blocks in the
  middle of their windows. Empty blocks are dropped.
- A block holding more than `max_posts` posts is halved (aligned halves) down to one hour; an
  hour still over the bound is cut into pieces along conversations (threads are kept whole
  unless one alone is over the bound). Both decisions depend only on the block's own posts,
  so every reader cuts it alike.
- The window's partial hours at each edge are summarized for this recap alone (`whole` is
  False: never cached), since no other window is likely to share them.

A thread that goes on across a boundary is the one split we cannot avoid with stable bounds:
the later stretch gets the thread's root as context (the pipeline adds it). Pieces are cut
along explicit threads here; the conversation step (summarize/conversations.py), which needs
the authors' names, runs afterwards on each stretch's posts (in the pipeline), so a stretch's
structure depends on its own posts only, as its cached summary must.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

HOUR_MS = 3_600_000
# Aligned block sizes, largest first.
BLOCK_HOURS: tuple[int, ...] = (8, 4, 2, 1)
# Posts in one stretch at most: a stretch's summary stays focused, and a busy hour of a big
# channel becomes several stretches instead of one huge call.
MAX_STRETCH_POSTS = 100


class Dated(Protocol):
    """What planning reads of a post: a Post read in full, or its PostStamp."""

    @property
    def id(self) -> str: ...

    @property
    def create_at(self) -> int: ...

    @property
    def thread_id(self) -> str: ...


P = TypeVar("P", bound=Dated)


@dataclass(slots=True)
class Stretch(Generic[P]):
    """One span of a channel's time and its posts; `piece`/`pieces` number the pieces of an
    hour cut along conversations ((1, 1) when it was not cut)."""

    start_ms: int
    end_ms: int
    whole: bool
    posts: list[P] = field(default_factory=list)
    piece: int = 1
    pieces: int = 1


def _floor_hour(ms: int) -> int:
    return ms - ms % HOUR_MS


def _ceil_hour(ms: int) -> int:
    return -(-ms // HOUR_MS) * HOUR_MS


def _blocks(start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) (whole hours) covered by the largest aligned blocks that fit."""
    out: list[tuple[int, int]] = []
    at = start
    while at < end:
        for hours in BLOCK_HOURS:
            size = hours * HOUR_MS
            if at % size == 0 and at + size <= end:
                out.append((at, at + size))
                at += size
                break
    return out


def _conversations(posts: Sequence[P]) -> list[list[P]]:
    """Posts grouped by thread (root_id), in order of each thread's first post."""
    groups: dict[str, list[P]] = {}
    for p in posts:
        groups.setdefault(p.thread_id, []).append(p)
    return list(groups.values())


def _pieces(posts: list[P], max_posts: int) -> list[list[P]]:
    """Posts packed into pieces of at most `max_posts`, whole conversations where they fit."""
    pieces: list[list[P]] = []
    current: list[P] = []
    for conversation in _conversations(posts):
        if len(current) + len(conversation) > max_posts and current:
            pieces.append(current)
            current = []
        while len(conversation) > max_posts:
            pieces.append(conversation[:max_posts])
            conversation = conversation[max_posts:]
        current.extend(conversation)
    if current:
        pieces.append(current)
    # Each piece in time order, as the prompt shows it.
    return [sorted(piece, key=lambda p: (p.create_at, p.id)) for piece in pieces]


def _split_block(start: int, end: int, posts: list[P], max_posts: int) -> list[Stretch[P]]:
    if len(posts) <= max_posts:
        return [Stretch(start, end, True, posts)]
    if end - start > HOUR_MS:
        middle = start + (end - start) // 2
        left = [p for p in posts if p.create_at < middle]
        right = [p for p in posts if p.create_at >= middle]
        out = _split_block(start, middle, left, max_posts) if left else []
        return out + (_split_block(middle, end, right, max_posts) if right else [])
    pieces = _pieces(posts, max_posts)
    return [Stretch(start, end, True, piece, i + 1, len(pieces)) for i, piece in enumerate(pieces)]


def plan_stretches(
    window_start: int, window_end: int, posts: Sequence[P], *, max_posts: int = MAX_STRETCH_POSTS
) -> list[Stretch[P]]:
    """The stretches of the window [window_start, window_end) holding `posts` (the window's
    posts, any order), oldest first; stretches without posts are left out."""
    if max_posts < 1:
        raise ValueError("max_posts must be positive")
    ordered = sorted(posts, key=lambda p: (p.create_at, p.id))
    first, last = _ceil_hour(window_start), _floor_hour(window_end)
    if first >= last:
        # Not one whole hour inside: the window is one partial stretch.
        return [Stretch(window_start, window_end, False, ordered)] if ordered else []
    out: list[Stretch[P]] = []
    lead = [p for p in ordered if p.create_at < first]
    if lead:
        out.append(Stretch(window_start, first, False, lead))
    by_block: dict[tuple[int, int], list[P]] = {}
    blocks = _blocks(first, last)
    index = 0
    for p in ordered:
        if not first <= p.create_at < last:
            continue
        while blocks[index][1] <= p.create_at:
            index += 1
        by_block.setdefault(blocks[index], []).append(p)
    for (start, end), block_posts in sorted(by_block.items()):
        out.extend(_split_block(start, end, block_posts, max_posts))
    tail = [p for p in ordered if p.create_at >= last]
    if tail:
        out.append(Stretch(last, window_end, False, tail))
    return out
