"""The recap of one channel: permission re-check, window, budgets, map-reduce, citations."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from recapd.agents.base import (
    Agent,
    AgentError,
    AgentPost,
    AgentResult,
    MergeRequest,
    SummarizeRequest,
    TokenUsage,
    estimate_tokens,
)
from recapd.chat.source import ChatSource
from recapd.model.app_error import AppError
from recapd.model.chat import DEFAULT_BOT_NAMES, Channel, Post, User
from recapd.model.recap import ActionItem, ChannelStatus, Highlight, RecapChannel
from recapd.model.tz import load_zone
from recapd.summarize.budget import PostBudget
from recapd.summarize.chunking import split_parts
from recapd.summarize.conversations import annotate
from recapd.summarize.window import FALLBACK_LATEST_POSTS, window_start

# Tokens kept free in every call for the instructions around the posts and for the answer.
PROMPT_RESERVE_TOKENS = 1_500
# How many partial results one merge call takes at most.
MERGE_FAN_IN = 8


@dataclass
class ChannelJob:
    """What to summarize for whom."""

    channel_id: str
    reader: User
    time_period: str
    now_ms: int
    custom_instructions: str = ""
    # Manual recaps fall back to the latest posts when nothing is unread.
    fallback_to_latest: bool = False


@dataclass
class ChannelSummary:
    """The outcome of one channel, with what it cost."""

    channel: RecapChannel
    message_count: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)
    calls: int = 0
    parts: int = 0


class ChannelSummarizer:
    """Summarizes channels through one agent, under a node-wide limit on agent calls."""

    def __init__(
        self,
        chat: ChatSource,
        agent: Agent,
        agent_calls: asyncio.Semaphore,
        *,
        max_tokens_per_call: int = -1,
        bot_names: Collection[str] = DEFAULT_BOT_NAMES,
    ) -> None:
        self.chat = chat
        self.agent = agent
        self.agent_calls = agent_calls
        self.bot_names = tuple(bot_names)
        budget = agent.context_tokens - PROMPT_RESERVE_TOKENS
        if max_tokens_per_call > 0:
            budget = min(budget, max_tokens_per_call)
        self.part_budget = max(256, budget)

    async def summarize(self, job: ChannelJob, budget: PostBudget) -> ChannelSummary:
        """Summarize one channel; failures come back as a failed RecapChannel with a reason."""
        result = RecapChannel(channel_id=job.channel_id, create_at=job.now_ms)
        try:
            channel = await self.chat.get_channel(job.channel_id)
            result.channel_name = channel.display_name or channel.name
            if not await self.chat.can_read(job.reader.id, job.channel_id):
                # Membership is checked at run time: a channel left since scheduling is
                # not read, whatever the schedule says.
                result.status = ChannelStatus.FAILED
                result.error = "You can no longer read this channel."
                return ChannelSummary(result)
            posts = await self._window_posts(job)
            granted = await budget.take(job.channel_id, len(posts))
            if granted < len(posts):
                # Over the post budget, the newest posts are kept (the limit is the admin's),
                # and the card says what was left out.
                cut = posts[: len(posts) - granted]
                result.notice = _cut_notice(cut, budget.limit, job.reader)
                posts = posts[len(posts) - granted :]
            return await self._summarize_posts(job, channel, posts, result)
        except Exception as exc:  # one channel failing never fails the others
            result.status = ChannelStatus.FAILED
            result.error = _reason(exc)
            return ChannelSummary(result)
        finally:
            budget.withdraw(job.channel_id)  # a channel that never asked frees its share

    async def _window_posts(self, job: ChannelJob) -> list[Post]:
        last_viewed = await self.chat.last_viewed_at(job.reader.id, job.channel_id)
        start = window_start(job.time_period, job.now_ms, last_viewed)
        posts = [p async for p in self.chat.iter_posts(job.channel_id, start, job.now_ms + 1)]
        if not posts and job.fallback_to_latest:
            posts = await self.chat.latest_posts(job.channel_id, FALLBACK_LATEST_POSTS)
        return posts

    async def _agent_posts(self, posts: Sequence[Post]) -> list[AgentPost]:
        in_window = {p.id for p in posts}
        # Replies whose thread started before the window get their root as context.
        missing_roots = {p.root_id for p in posts if p.root_id and p.root_id not in in_window}
        roots = await self.chat.get_posts(sorted(missing_roots)) if missing_roots else {}
        authors = {p.user_id for p in posts} | {r.user_id for r in roots.values()}
        users = await self.chat.get_users(sorted(authors))
        replies: dict[str, int] = {}
        for p in posts:
            if p.root_id:
                replies[p.root_id] = replies.get(p.root_id, 0) + 1
        out = [self._agent_post(r, users, replies, context_only=True) for r in roots.values()]
        out += [self._agent_post(p, users, replies, context_only=False) for p in posts]
        # Who replied to whom, bots and noise marked: the structure every agent reads.
        return annotate(out, self.bot_names)

    def _agent_post(
        self, p: Post, users: dict[str, User], replies: dict[str, int], *, context_only: bool
    ) -> AgentPost:
        user = users.get(p.user_id)
        message = p.message
        # A single post larger than half a part is cut so it still fits one call.
        limit = self.part_budget // 2
        if estimate_tokens(message) > limit:
            message = message.encode()[: limit * 4].decode(errors="ignore") + " [...]"
        return AgentPost(
            id=p.id,
            author=user.username if user else p.user_id,
            create_at=p.create_at,
            message=message,
            root_id=p.root_id,
            reply_count=replies.get(p.id, 0),
            reaction_count=len(p.reactions),
            context_only=context_only,
            is_bot=bool(user and user.is_bot) or _posted_by_a_bot(p),
        )

    async def _summarize_posts(
        self, job: ChannelJob, channel: Channel, posts: list[Post], result: RecapChannel
    ) -> ChannelSummary:
        summary = ChannelSummary(result, message_count=len(posts))
        result.source_post_ids = [p.id for p in posts]
        if not posts:
            return summary
        agent_posts = await self._agent_posts(posts)
        parts = split_parts(agent_posts, self.part_budget)
        summary.parts = len(parts)
        name = result.channel_name or channel.name
        requests = [
            SummarizeRequest(
                channel_id=channel.id,
                channel_name=name,
                posts=part,
                reader_id=job.reader.id,
                reader_username=job.reader.username,
                custom_instructions=job.custom_instructions,
                language=job.reader.locale or "en",
                part=i + 1,
                parts=len(parts),
            )
            for i, part in enumerate(parts)
        ]
        partials = await asyncio.gather(*(self._call_summarize(r, summary) for r in requests))
        merged = await self._reduce(list(partials), job, name, summary)
        allowed = {p.id for p in agent_posts}
        highlights = (_cited_highlight(h, allowed) for h in merged.highlights)
        actions = (_cited_action(a, allowed) for a in merged.action_items)
        questions = (_cited_highlight(q, allowed) for q in merged.open_questions)
        result.highlights = [h for h in highlights if h.text]
        result.action_items = [a for a in actions if a.text]
        result.open_questions = [q for q in questions if q.text]
        result.status = ChannelStatus.SUCCESS
        return summary

    async def _call_summarize(self, req: SummarizeRequest, s: ChannelSummary) -> AgentResult:
        async with self.agent_calls:
            res = await self.agent.summarize(req)
        s.calls += 1
        s.usage = s.usage + res.usage
        return res

    async def _reduce(
        self, partials: list[AgentResult], job: ChannelJob, name: str, s: ChannelSummary
    ) -> AgentResult:
        # Merge in rounds of MERGE_FAN_IN so no merge call outgrows the context. One part is
        # merged too: the reader's stage (what concerns them first) lives in the merge.
        if len(partials) == 1:
            return await self._call_merge(partials, job, name, s, single=True)
        while len(partials) > 1:
            groups = [partials[i : i + MERGE_FAN_IN] for i in range(0, len(partials), MERGE_FAN_IN)]
            partials = list(
                await asyncio.gather(*(self._call_merge(g, job, name, s) for g in groups))
            )
        return partials[0]

    async def _call_merge(
        self,
        group: list[AgentResult],
        job: ChannelJob,
        name: str,
        s: ChannelSummary,
        *,
        single: bool = False,
    ) -> AgentResult:
        if len(group) == 1 and not single:
            return group[0]
        req = MergeRequest(
            channel_id=job.channel_id,
            channel_name=name,
            partials=group,
            reader_id=job.reader.id,
            reader_username=job.reader.username,
            custom_instructions=job.custom_instructions,
            language=job.reader.locale or "en",
        )
        async with self.agent_calls:
            res = await self.agent.merge(req)
        if res.usage.total_tokens or not single:
            s.calls += 1
        s.usage = s.usage + res.usage
        return res


def _posted_by_a_bot(post: Post) -> bool:
    """Mattermost marks posts of bots and incoming webhooks in their props."""
    return any(
        str(post.props.get(key, "")).lower() == "true" for key in ("from_bot", "from_webhook")
    )


def _cut_notice(cut: Sequence[Post], limit: int, reader: User) -> str:
    """What a post limit left unread, in the reader's zone: "The 670 oldest messages
    (09:12-13:40 UTC) were not read: a recap reads at most 500." """
    zone: tzinfo = UTC
    if reader.timezone:
        try:
            zone = load_zone(reader.timezone)
        except Exception:  # an unknown zone on the profile: UTC, said as such
            zone = UTC
    first = datetime.fromtimestamp(cut[0].create_at / 1000, zone)
    last = datetime.fromtimestamp(cut[-1].create_at / 1000, zone)
    fmt = "%H:%M" if first.date() == last.date() else "%a %H:%M"
    span = f"{first.strftime(fmt)}-{last.strftime(fmt)} {first.tzname() or 'UTC'}"
    what = "The oldest message" if len(cut) == 1 else f"The {len(cut)} oldest messages"
    verb = "was" if len(cut) == 1 else "were"
    return f"{what} ({span}) {verb} not read: the limit for this recap is {limit} messages."


def _cited_highlight(h: Highlight, allowed: set[str]) -> Highlight:
    """The highlight citing only posts that were in the input (no invented ids)."""
    return Highlight(h.text.strip(), [i for i in dict.fromkeys(h.post_ids) if i in allowed])


def _cited_action(a: ActionItem, allowed: set[str]) -> ActionItem:
    """The action item citing only posts that were in the input, owner without "@"."""
    ids = [i for i in dict.fromkeys(a.post_ids) if i in allowed]
    return ActionItem(a.text.strip(), a.owner.strip().lstrip("@"), ids, explicit=a.explicit)


def _reason(exc: Exception) -> str:
    """Why a channel failed, in words the reader can act on."""
    if isinstance(exc, AgentError):
        return f"The AI agent failed: {exc}"
    if isinstance(exc, AppError):
        return exc.message
    return f"Unexpected error: {type(exc).__name__}: {exc}"
