"""The offline merge of parts for a reader (extractive.merge_results), once per set of parts
for every reader the parts do not name.

The merge ranks first what concerns the reader: an item that @mentions them or an action
item they own. For a reader whose username appears nowhere in the parts' items, nothing
does, so the merge is the same for all such readers: the dozens of readers of a channel at
09:00 share one merge of its parts instead of each paying for it (cosine similarity of every
pair of items). A reader named anywhere in the parts (as a plain substring, wider than a
mention) gets a merge of their own. tests/test_agents_openai.py checks the equality against
merge_results.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from recapd.agents.base import AgentResult, MergeRequest, TokenUsage
from recapd.agents.extractive import merge_results


class OfflineMerges:
    """merge_results, remembered by parts for the readers they do not name (bounded)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._memo: OrderedDict[str, AgentResult] = OrderedDict()

    def merge(self, request: MergeRequest) -> AgentResult:
        """The request's parts merged for its reader, without usage (no model was called)."""
        reader = request.reader_username.lstrip("@").lower()
        if reader and _names(request.partials, reader):
            merged = merge_results(request)
            merged.usage = TokenUsage()
            return merged
        key = _key(request)
        found = self._memo.get(key)
        if found is None:
            # Computed for nobody in particular: equal to the merge for any reader not named.
            neutral = MergeRequest(
                channel_id=request.channel_id,
                channel_name=request.channel_name,
                partials=request.partials,
                reader_id="",
                reader_username="",
            )
            found = merge_results(neutral)
            found.usage = TokenUsage()
            self._memo[key] = found
            while len(self._memo) > self.size:
                self._memo.popitem(last=False)
        self._memo.move_to_end(key)
        return found.copy()


def _names(partials: list[AgentResult], reader: str) -> bool:
    """Whether `reader` (lowercase) appears in any item's text or owner."""
    for p in partials:
        for h in (*p.highlights, *p.open_questions, *p.mentions):
            if reader in h.text.lower():
                return True
        for a in p.action_items:
            if reader in a.text.lower() or reader in a.owner.lower():
                return True
    return False


def _key(request: MergeRequest) -> str:
    """SHA-256 of everything but the reader: channel and the parts' items, in order."""
    h = hashlib.sha256()
    h.update(f"{len(request.channel_id)}:{request.channel_id}".encode())
    h.update(f"{len(request.channel_name)}:{request.channel_name}".encode())
    for p in request.partials:
        h.update(b"\x1d")
        for kind, items in (
            ("h", p.highlights),
            ("q", p.open_questions),
            ("m", p.mentions),
        ):
            for item in items:
                h.update(f"{kind}{len(item.text)}:{item.text}|{','.join(item.post_ids)}".encode())
        for a in p.action_items:
            text = f"a{len(a.text)}:{a.text}|{len(a.owner)}:{a.owner}|{','.join(a.post_ids)}"
            h.update(f"{text}|{int(a.explicit)}".encode())
    return h.hexdigest()
