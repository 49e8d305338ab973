"""The Agent protocol and the data that crosses it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from recapd.model.recap import ActionItem, Highlight


def estimate_tokens(text: str) -> int:
    """A conservative token estimate: one token per 4 bytes of UTF-8, as the original."""
    return math.ceil(len(text.encode("utf-8")) / 4)


@dataclass(slots=True)
class AgentPost:
    """One post as an agent sees it: fenced, untrusted text plus the signals ranking uses."""

    id: str
    author: str  # username, without "@"
    create_at: int
    message: str
    root_id: str = ""
    reply_count: int = 0
    reaction_count: int = 0
    # True for a thread root included only to give context to replies in the window.
    context_only: bool = False
    # Conversation structure (summarize/conversations.py): the post this one answers ("" for
    # a conversation's start) and the id of the conversation's first post.
    reply_to: str = ""
    conversation_id: str = ""
    # A bot's post (flagged account, configured name): evidence, never a highlight or owner.
    is_bot: bool = False
    # A pure command or join/part line: never a highlight.
    is_noise: bool = False


@dataclass(slots=True)
class TokenUsage:
    """Tokens an agent call consumed."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class AgentResult:
    """Highlights, action items and open questions citing post ids, and what the call cost."""

    highlights: list[Highlight] = field(default_factory=list)
    action_items: list[ActionItem] = field(default_factory=list)
    usage: TokenUsage = field(default_factory=TokenUsage)
    # Questions nobody answered in the window.
    open_questions: list[Highlight] = field(default_factory=list)
    # Highlights left out of `highlights` that @mention someone: the reader's stage shows
    # them to the person they mention (the map stage does not know the reader).
    mentions: list[Highlight] = field(default_factory=list)

    def copy(self) -> AgentResult:
        """A copy whose items the caller may change (memos hand out copies)."""
        return AgentResult(
            [Highlight(h.text, list(h.post_ids)) for h in self.highlights],
            [ActionItem(a.text, a.owner, list(a.post_ids), a.explicit) for a in self.action_items],
            TokenUsage(self.usage.prompt_tokens, self.usage.completion_tokens),
            [Highlight(q.text, list(q.post_ids)) for q in self.open_questions],
            [Highlight(m.text, list(m.post_ids)) for m in self.mentions],
        )


@dataclass(slots=True)
class SummarizeRequest:
    """Summarize one stretch of a channel's posts (the map stage).

    Reader-independent on purpose: no reader, no custom instructions, no language, so one
    answer serves every reader of the channel and can be cached (summarize/part_cache.py).
    What is per reader goes in the MergeRequest.
    """

    channel_id: str
    channel_name: str
    posts: list[AgentPost]
    # 1-based piece number and count when the stretch was cut to fit one call; (1, 1) when
    # it was not.
    part: int = 1
    parts: int = 1


@dataclass(slots=True)
class MergeRequest:
    """Merge the partial results of a reader's window into one result for that reader (the
    reduce stage): ranking for the reader, custom instructions and language apply here."""

    channel_id: str
    channel_name: str
    partials: list[AgentResult]
    reader_id: str
    reader_username: str
    custom_instructions: str = ""
    language: str = "en"


class AgentError(Exception):
    """An agent call failed; `retryable` says whether trying again later may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Agent(Protocol):
    """A summarizer. `context_tokens` bounds the size of one request's posts; `cache_version`
    names everything besides the posts that shapes a summarize answer (backend, model, prompt
    version), so a cached part made by another version is never served."""

    id: str
    context_tokens: int
    cache_version: str

    async def summarize(self, request: SummarizeRequest) -> AgentResult: ...

    async def merge(self, request: MergeRequest) -> AgentResult: ...
