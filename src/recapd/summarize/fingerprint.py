"""A stretch's fingerprint: what its cached parts depend on, computed from post stamps
(model/chat.PostStamp) without reading a post's text.

The parts of a whole stretch are keyed by the digest of what the agent is shown
(summarize/part_cache.py), which needs every post read in full, its author, the conversation
step and the split into calls. The fingerprint names the inputs of all that instead: the
stretch's posts and the roots it shows as context (ids, times, thread links, edit and update
times, authors' names and bot flags, reaction counts), the channel's name, the agent and its
version, the summarizer's settings that shape the input (part budget, bot names), and the code
that turns posts into the agent's input. Every change of a post through the workspace store
moves its `update_at`, so equal fingerprints mean equal inputs, and the rows stored under a
fingerprint are the parts the full path would make. Stamps are computed alike from a light
read (WorkspaceStore.post_stamps) and from posts read in full (stamp_of), so a row's
fingerprint always comes from the same read as its content.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Collection, Sequence
from functools import cache, lru_cache

from recapd.model.chat import PostStamp

# The modules whose code turns a stretch's posts into what the agent is shown. A change to any
# of them (a new rule of the conversation step, another split) gives new fingerprints, as it
# may give new digests.
INPUT_MODULES = (
    "recapd.agents.base",
    "recapd.agents.prompt",
    "recapd.agents.words",
    "recapd.summarize.chunking",
    "recapd.summarize.conversations",
    "recapd.summarize.fingerprint",
    "recapd.summarize.pipeline",
    "recapd.summarize.stretches",
)


@cache
def code_version() -> str:
    """SHA-256 of the source of INPUT_MODULES (read once per process, not imported)."""
    h = hashlib.sha256()
    for name in INPUT_MODULES:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        h.update(name.encode())
        if origin:
            with open(origin, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def summarizer_prefix(
    agent_id: str, agent_version: str, part_budget: int, bot_names: Collection[str]
) -> str:
    """What every fingerprint of one summarizer shares: agent, version, input settings, code."""
    fields = (code_version(), agent_id, agent_version, part_budget, sorted(set(bot_names)))
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


def stretch_fingerprint(
    prefix: str,
    channel_id: str,
    channel_name: str,
    bounds: tuple[int, int, int, int],
    posts: Sequence[PostStamp],
    roots: Sequence[PostStamp],
) -> str:
    """SHA-256 of a whole stretch's inputs: `bounds` is (start, end, piece, pieces), `posts`
    the stretch's posts in time order, `roots` the thread roots it shows as context."""
    return _fingerprint(prefix, channel_id, channel_name, bounds, tuple(posts), tuple(roots))


# Every reader of a channel in a wave computes the same stretches' fingerprints: remembered by
# the stamps themselves (equal tuples, compared whole), which costs a fraction of the hashing.
@lru_cache(maxsize=8192)
def _fingerprint(
    prefix: str,
    channel_id: str,
    channel_name: str,
    bounds: tuple[int, int, int, int],
    posts: tuple[PostStamp, ...],
    roots: tuple[PostStamp, ...],
) -> str:
    head = json.dumps(
        (prefix, channel_id, channel_name, *bounds, len(posts), len(roots)), ensure_ascii=False
    )
    # Ids are fixed-size and times are numbers; the one free text, the username, carries its
    # length, so no two different stamps read alike.
    lines = [
        f"{s.id}|{s.create_at}|{s.root_id}|{s.update_at}|{s.edit_at}|{s.user_id}|"
        f"{len(s.username)}:{s.username}|{int(s.user_is_bot)}|{s.reaction_count}"
        for s in (*posts, *roots)
    ]
    return hashlib.sha256("\x1e".join([head, *lines]).encode()).hexdigest()
