"""Splitting a window into parts that fit one agent call, on thread boundaries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from recapd.agents.base import AgentPost, estimate_tokens
from recapd.agents.prompt import format_post_line

# Besides its line, each post costs its id in the prompt's list of allowed ids.
ALLOWED_ID_TOKENS = 8


def post_tokens(post: AgentPost) -> int:
    """Estimated tokens of one post as it appears in a prompt: its line (time, author, id,
    conversation label, parent id, text) and its allowed id."""
    return estimate_tokens(format_post_line(post, "conv 99999")) + ALLOWED_ID_TOKENS


def group_threads(posts: Sequence[AgentPost]) -> list[list[AgentPost]]:
    """Posts grouped by conversation (the conversation step's, else the explicit thread),
    ordered by their first post, posts by time."""
    threads: dict[str, list[AgentPost]] = {}
    for p in sorted(posts, key=lambda p: (p.create_at, p.id)):
        threads.setdefault(p.conversation_id or p.root_id or p.id, []).append(p)
    return list(threads.values())


def split_parts(posts: Sequence[AgentPost], budget_tokens: int) -> list[list[AgentPost]]:
    """Pack whole threads into parts of at most `budget_tokens`; a thread too big for one
    part is cut into consecutive pieces, each repeating the thread's first post for context.

    Every input post lands in exactly one part (context repeats are marked context_only).
    """
    if budget_tokens <= 0:
        raise ValueError("budget_tokens must be positive")
    parts: list[list[AgentPost]] = []
    current: list[AgentPost] = []
    used = 0

    def flush() -> None:
        nonlocal current, used
        if current:
            parts.append(current)
        current, used = [], 0

    for thread in group_threads(posts):
        size = sum(post_tokens(p) for p in thread)
        if size <= budget_tokens:
            if used + size > budget_tokens:
                flush()
            current.extend(thread)
            used += size
            continue
        flush()
        for piece in _cut_thread(thread, budget_tokens):
            parts.append(piece)
    flush()
    return parts


def _cut_thread(thread: list[AgentPost], budget_tokens: int) -> list[list[AgentPost]]:
    root_ctx = replace(thread[0], context_only=True)
    pieces: list[list[AgentPost]] = []
    piece: list[AgentPost] = []
    used = 0
    for p in thread:
        t = post_tokens(p)
        if piece and used + t > budget_tokens:
            pieces.append(piece)
            piece, used = [], 0
            if post_tokens(root_ctx) + t <= budget_tokens:
                piece, used = [root_ctx], post_tokens(root_ctx)
        piece.append(p)
        used += t
    if piece:
        pieces.append(piece)
    return pieces
