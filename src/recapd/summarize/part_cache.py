"""The part cache's interface to the pipeline: the key of a stretch's summary, the digest of
its content, and how a summary is stored.

A part's key names everything its summary depends on: the channel, the agent and its version
(backend, model, prompt), the stretch's bounds and piece, and a digest of exactly what the
agent was shown (post ids, authors, times, text, edit times, thread and reply links,
reactions, context roots). An edited, deleted or late post changes the digest, so the old
entry is never served again; it just expires. The implementation (app/part_cache.py) keeps
entries in the database and computes each one once in the cluster.

Privacy is the pipeline's duty: it asks the cache only after it checked, in this run, that the
reader may read the channel, and a key never spans two channels.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from recapd.agents.base import AgentPost, AgentResult, TokenUsage
from recapd.model.recap import ActionItem, Highlight


@dataclass(frozen=True, slots=True)
class PartKey:
    """What one cached part summary depends on."""

    channel_id: str
    agent_id: str
    agent_version: str
    start_ms: int
    end_ms: int
    piece: int
    part: int
    parts: int
    digest: str

    @property
    def cache_key(self) -> str:
        """The key as stored: SHA-256 of every field (hex)."""
        text = "\x1f".join(
            str(v)
            for v in (
                self.channel_id,
                self.agent_id,
                self.agent_version,
                self.start_ms,
                self.end_ms,
                self.piece,
                self.part,
                self.parts,
                self.digest,
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()


def content_digest(
    channel_name: str, posts: Sequence[AgentPost], edit_at: Mapping[str, int]
) -> str:
    """SHA-256 over everything an agent is shown of these posts, plus their edit times."""
    h = hashlib.sha256()
    h.update(channel_name.encode())
    for p in posts:
        fields = (
            p.id,
            p.author,
            p.create_at,
            edit_at.get(p.id, 0),
            p.message,
            p.root_id,
            p.reply_to,
            p.conversation_id,
            p.is_bot,
            p.is_noise,
            p.reply_count,
            p.reaction_count,
            p.context_only,
        )
        h.update(b"\x1e")
        h.update(json.dumps(fields, ensure_ascii=False).encode())
    return h.hexdigest()


@dataclass(slots=True)
class CacheOutcome:
    """A part's summary and whether it was reused (made by an earlier or concurrent run)."""

    result: AgentResult
    reused: bool


@dataclass(slots=True)
class StretchLookup:
    """What the cache holds of a window's whole stretches."""

    # Fingerprint -> the stretch's parts, in order.
    found: dict[str, list[AgentResult]]
    # Fingerprints the caller makes while other runs wait for it: release them when done.
    leading: list[str]


class PartCache(Protocol):
    """Stored part summaries, each computed once in the cluster."""

    @property
    def enabled(self) -> bool:
        """False when the cache is switched off (nothing is stored or read)."""
        ...

    async def get_or_compute(
        self,
        key: PartKey,
        compute: Callable[[], Awaitable[AgentResult]],
        *,
        fingerprint: str = "",
    ) -> CacheOutcome:
        """The stored summary of `key`, else `compute()`'s (stored for the others); when
        another run is computing it right now, wait for that one instead of computing twice.
        `fingerprint` (summarize/fingerprint.py) is the part's stretch's, when known: the
        row is found by it later."""
        ...

    async def lookup_stretches(
        self, channel_id: str, fingerprints: Collection[str]
    ) -> StretchLookup:
        """The parts of the stretches with these fingerprints that are stored whole (every
        part ready and live), in order, by fingerprint; the others are the caller's to make,
        and those it `leads` it hands back with release_stretches when done (always)."""
        ...

    def release_stretches(self, fingerprints: Collection[str]) -> None:
        """The caller is done making these stretches (stored, or failed)."""
        ...


def result_to_json(result: AgentResult) -> dict[str, Any]:
    """A part summary as stored (usage is stored beside it)."""
    return {
        "highlights": [h.to_dict() for h in result.highlights],
        "action_items": [a.to_dict() for a in result.action_items],
        "open_questions": [q.to_dict() for q in result.open_questions],
        "mentions": [m.to_dict() for m in result.mentions],
    }


def result_from_json(data: Mapping[str, Any], usage: TokenUsage | None = None) -> AgentResult:
    """The stored form back into an AgentResult."""
    return AgentResult(
        highlights=[Highlight.from_dict(h) for h in data.get("highlights", [])],
        action_items=[ActionItem.from_dict(a) for a in data.get("action_items", [])],
        usage=usage or TokenUsage(),
        open_questions=[Highlight.from_dict(q) for q in data.get("open_questions", [])],
        mentions=[Highlight.from_dict(m) for m in data.get("mentions", [])],
    )
