"""The recap of one channel: permission re-check, window, budgets, map-reduce, citations.

Map: the window is cut into stretches with stable bounds (summarize/stretches.py); each whole
stretch's summary depends on the channel's posts only, so it comes from the part cache when
another recap made it (or is making it right now). Reduce: the parts are merged for this
reader (mentions of the reader, custom instructions, language), always, even one part.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection, Sequence
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
from recapd.chat.source import ChatSource, StampSource
from recapd.model.app_error import AppError
from recapd.model.chat import DEFAULT_BOT_NAMES, Channel, Post, PostStamp, User, stamp_of
from recapd.model.recap import ActionItem, ChannelStatus, Highlight, RecapChannel
from recapd.model.tz import load_zone
from recapd.summarize.budget import PostBudget
from recapd.summarize.chunking import split_parts
from recapd.summarize.conversations import annotate
from recapd.summarize.fingerprint import stretch_fingerprint, summarizer_prefix
from recapd.summarize.part_cache import PartCache, PartKey, StretchLookup, content_digest
from recapd.summarize.stretches import BLOCK_HOURS, HOUR_MS, Stretch, plan_stretches
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
    # Agent calls made (summarize and merge; parts from the cache cost none).
    calls: int = 0
    # Parts (map-stage summaries) the window needed, and how many came from the cache.
    parts: int = 0
    parts_reused: int = 0
    # Tokens the reused parts cost when they were made.
    tokens_saved: int = 0


class ChannelSummarizer:
    """Summarizes channels through one agent, under a node-wide limit on agent calls."""

    def __init__(
        self,
        chat: ChatSource,
        agent: Agent,
        agent_calls: asyncio.Semaphore,
        *,
        max_tokens_per_call: int = -1,
        cache: PartCache | None = None,
        bot_names: Collection[str] = DEFAULT_BOT_NAMES,
    ) -> None:
        self.chat = chat
        self.agent = agent
        self.agent_calls = agent_calls
        self.bot_names = tuple(bot_names)
        # None: every part is computed for this recap (the cache is off).
        self.cache = cache
        budget = agent.context_tokens - PROMPT_RESERVE_TOKENS
        if max_tokens_per_call > 0:
            budget = min(budget, max_tokens_per_call)
        self.part_budget = max(256, budget)
        # What every stretch fingerprint of this summarizer shares.
        self._prefix = summarizer_prefix(
            agent.id, agent.cache_version, self.part_budget, self.bot_names
        )

    def _cache(self) -> PartCache | None:
        """The part cache when it is on (a cache of 0 hours is off)."""
        return self.cache if self.cache is not None and self.cache.enabled else None

    async def summarize(self, job: ChannelJob, budget: PostBudget) -> ChannelSummary:
        """Summarize one channel; failures come back as a failed RecapChannel with a reason."""
        result = RecapChannel(channel_id=job.channel_id, create_at=job.now_ms)
        try:
            last_viewed: int | None = None
            if isinstance(self.chat, StampSource):
                channel, readable, last_viewed = await self.chat.channel_for_reader(
                    job.reader.id, job.channel_id
                )
            else:
                channel = await self.chat.get_channel(job.channel_id)
                readable = await self.chat.can_read(job.reader.id, job.channel_id)
            result.channel_name = channel.display_name or channel.name
            if not readable:
                # Membership is checked at run time: a channel left since scheduling is
                # not read, whatever the schedule says.
                result.status = ChannelStatus.FAILED
                result.error = "You can no longer read this channel."
                return ChannelSummary(result)
            if last_viewed is None:
                last_viewed = await self.chat.last_viewed_at(job.reader.id, job.channel_id)
            start, window = await self._window(job, last_viewed)
            stamps = window.stamps
            granted = await budget.take(job.channel_id, len(stamps))
            # Over the post budget, the newest posts are kept (the limit is the admin's), and
            # the card says what was left out.
            if granted < len(stamps):
                result.notice = _cut_notice(
                    stamps[: len(stamps) - granted], budget.limit, job.reader
                )
                window.stamps = stamps[len(stamps) - granted :]
                window.hour_start = False
                # The window now starts at its first kept post: whole stretches after it hold
                # every post of their bounds.
                start = min((p.create_at for p in window.stamps), default=start)
            return await self._summarize_posts(job, channel, start, window, result)
        except Exception as exc:  # one channel failing never fails the others
            result.status = ChannelStatus.FAILED
            result.error = _reason(exc)
            return ChannelSummary(result)
        finally:
            budget.withdraw(job.channel_id)  # a channel that never asked frees its share

    async def _window(self, job: ChannelJob, last_viewed: int) -> tuple[int, _Window]:
        """The window's start and posts. With the cache on and a source that gives stamps,
        only the stamps are read here: posts are read in full only for the stretches the
        cache does not hold (_summarize_posts)."""
        start = window_start(job.time_period, job.now_ms, last_viewed)
        caching = self._cache() is not None
        if caching and isinstance(self.chat, StampSource):
            # Read from the hour's start: when no post lies between it and the window's
            # start, the window's first hour holds every post of that hour, and is a whole
            # stretch other readers share instead of a partial edge made for this recap.
            hour = start - start % HOUR_MS
            stamps = await self.chat.post_stamps(job.channel_id, hour, job.now_ms + 1)
            inside = [p for p in stamps if p.create_at >= start]
            if inside or not job.fallback_to_latest:
                return start, _Window(inside, light=True, hour_start=len(inside) == len(stamps))
        posts = [p async for p in self.chat.iter_posts(job.channel_id, start, job.now_ms + 1)]
        if not posts and job.fallback_to_latest:
            posts = await self.chat.latest_posts(job.channel_id, FALLBACK_LATEST_POSTS)
        window = _Window([], light=False, posts={p.id: p for p in posts})
        await self._read_full(window, [p.id for p in posts])
        window.stamps = [stamp_of(p, window.users.get(p.user_id)) for p in posts]
        return start, window

    async def _read_full(self, window: _Window, post_ids: Sequence[str]) -> None:
        """Read these posts in full (those not read yet; deleted ones stay missing) and
        their authors."""
        missing = [i for i in dict.fromkeys(post_ids) if i not in window.posts]
        if missing and isinstance(self.chat, StampSource):
            found, users = await self.chat.posts_and_authors(missing)
            window.posts.update(found)
            window.users.update(users)
            window.asked_users.update(p.user_id for p in found.values())
        elif missing:
            window.posts.update(await self.chat.get_posts(missing))
        authors = {window.posts[i].user_id for i in post_ids if i in window.posts}
        unknown = sorted(authors - window.asked_users)
        if unknown:
            window.users.update(await self.chat.get_users(unknown))
            window.asked_users.update(unknown)

    async def _roots(
        self, stretches: Sequence[Stretch[PostStamp]], window: _Window
    ) -> dict[str, PostStamp]:
        """The live roots of threads begun before a stretch, which it shows as context."""
        wanted: set[str] = set()
        for stretch in stretches:
            ids = {p.id for p in stretch.posts}
            wanted |= {p.root_id for p in stretch.posts if p.root_id and p.root_id not in ids}
        known = {p.id: p for p in window.stamps}
        missing = sorted(r for r in wanted if r not in known)
        fetched: dict[str, PostStamp] = {}
        if missing and window.light and isinstance(self.chat, StampSource):
            fetched = await self.chat.post_stamps_by_id(missing)
        elif missing:
            await self._read_full(window, missing)
            fetched = {
                r: stamp_of(p, window.users.get(p.user_id))
                for r in missing
                if (p := window.posts.get(r))
            }
        return {r: s for r in wanted if (s := known.get(r) or fetched.get(r))}

    def _stretch_input(
        self, stretch: Stretch[PostStamp], context: Sequence[PostStamp], window: _Window
    ) -> list[AgentPost]:
        """A stretch's posts as the agent sees them. Everything depends on the stretch alone
        (reply counts within it, roots of threads begun before it as context), never on the
        reader's window, so every reader sends the same request for the same stretch."""
        posts = [p for s in stretch.posts if (p := window.posts.get(s.id))]
        roots = [p for s in context if (p := window.posts.get(s.id))]
        replies: dict[str, int] = {}
        for p in posts:
            if p.root_id:
                replies[p.root_id] = replies.get(p.root_id, 0) + 1
        users = window.users
        agent_posts = [self._agent_post(r, users, replies, context_only=True) for r in roots]
        agent_posts += [self._agent_post(p, users, replies, context_only=False) for p in posts]
        # Who replied to whom within the stretch, bots and noise marked: the structure every
        # agent reads, and part of the stretch's content digest.
        return annotate(agent_posts, self.bot_names)

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

    def _fingerprint(
        self,
        channel_id: str,
        name: str,
        stretch: Stretch[PostStamp],
        posts: Sequence[PostStamp],
        context: Sequence[PostStamp],
    ) -> str:
        bounds = (stretch.start_ms, stretch.end_ms, stretch.piece, stretch.pieces)
        return stretch_fingerprint(self._prefix, channel_id, name, bounds, posts, context)

    async def _summarize_posts(
        self,
        job: ChannelJob,
        channel: Channel,
        start: int,
        window: _Window,
        result: RecapChannel,
    ) -> ChannelSummary:
        stamps = window.stamps
        summary = ChannelSummary(result, message_count=len(stamps))
        result.source_post_ids = [p.id for p in stamps]
        if not stamps:
            return summary
        name = result.channel_name or channel.name
        cache = self._cache()
        stretches: list[Stretch[PostStamp]]
        if cache is not None:
            begin = _effective_start(start, stamps)
            if begin == start and window.hour_start:
                begin = start - start % HOUR_MS  # no post between the hour's start and ours
            stretches = plan_stretches(begin, job.now_ms + 1, stamps)
        else:
            # Without the cache nothing is shared, so stable bounds buy nothing: the window
            # is one stretch of its own, cut only to fit the agent's context (as before).
            stretches = [Stretch(start, job.now_ms + 1, False, list(stamps))]
        roots = await self._roots(stretches, window)
        contexts = [_context(stretch, roots) for stretch in stretches]
        # A whole stretch whose fingerprint the cache holds is served without reading its
        # posts; the fingerprint needs stamps that come from the source's light read.
        fingerprints: dict[int, str] = {}
        if cache is not None and window.light:
            fingerprints = {
                i: self._fingerprint(channel.id, name, stretch, stretch.posts, context)
                for i, (stretch, context) in enumerate(zip(stretches, contexts, strict=True))
                if stretch.whole
            }
        lookup = StretchLookup({}, [])
        if cache is not None and fingerprints:
            lookup = await cache.lookup_stretches(channel.id, fingerprints.values())
        try:
            partials, allowed = await self._map_stretches(
                channel, name, stretches, contexts, fingerprints, lookup.found, window, summary
            )
        finally:
            if cache is not None:
                cache.release_stretches(lookup.leading)
        merged = await self._reduce(partials, job, name, summary)
        highlights = (_cited_highlight(h, allowed) for h in merged.highlights)
        actions = (_cited_action(a, allowed) for a in merged.action_items)
        questions = (_cited_highlight(q, allowed) for q in merged.open_questions)
        result.highlights = [h for h in highlights if h.text]
        result.action_items = [a for a in actions if a.text]
        result.open_questions = [q for q in questions if q.text]
        result.status = ChannelStatus.SUCCESS
        return summary

    async def _map_stretches(
        self,
        channel: Channel,
        name: str,
        stretches: Sequence[Stretch[PostStamp]],
        contexts: Sequence[Sequence[PostStamp]],
        fingerprints: dict[int, str],
        found: dict[str, list[AgentResult]],
        window: _Window,
        summary: ChannelSummary,
    ) -> tuple[list[AgentResult], set[str]]:
        """Every stretch's parts, oldest first, and the ids of the posts they were made from
        (the only ones a recap may cite): stored stretches from the cache, the others read in
        full and summarized (through the cache when whole)."""
        cache = self._cache()
        todo = [i for i in range(len(stretches)) if fingerprints.get(i, "") not in found]
        await self._read_full(
            window,
            [p.id for i in todo for p in (*stretches[i].posts, *contexts[i])],
        )
        edit_at = {p.id: p.edit_at for p in window.posts.values()}
        parts: list[AgentResult | Awaitable[AgentResult]] = []
        allowed: set[str] = set()
        for i, (stretch, context) in enumerate(zip(stretches, contexts, strict=True)):
            stored = found.get(fingerprints.get(i, ""))
            if stored is not None:
                summary.parts_reused += len(stored)
                summary.tokens_saved += sum(r.usage.total_tokens for r in stored)
                parts.extend(stored)
                allowed |= {p.id for p in (*stretch.posts, *context)}
                continue
            agent_posts = self._stretch_input(stretch, context, window)
            allowed |= {p.id for p in agent_posts}
            fingerprint = ""
            if i in fingerprints:
                # Named from the posts as read in full, so a row's fingerprint and its content
                # always come from the same read.
                fingerprint = self._fingerprint(
                    channel.id,
                    name,
                    stretch,
                    _stamps(window, stretch.posts),
                    _stamps(window, context),
                )
            pieces = split_parts(agent_posts, self.part_budget)
            for n, piece in enumerate(pieces):
                req = SummarizeRequest(
                    channel_id=channel.id,
                    channel_name=name,
                    posts=piece,
                    part=n + 1,
                    parts=len(pieces),
                )
                key = None
                if stretch.whole and cache is not None:
                    key = PartKey(
                        channel_id=channel.id,
                        agent_id=self.agent.id,
                        agent_version=self.agent.cache_version,
                        start_ms=stretch.start_ms,
                        end_ms=stretch.end_ms,
                        piece=stretch.piece,
                        part=n + 1,
                        parts=len(pieces),
                        digest=content_digest(name, piece, edit_at),
                    )
                parts.append(self._map(req, key, summary, fingerprint))
        summary.parts = len(parts)
        made = iter(await asyncio.gather(*(p for p in parts if not isinstance(p, AgentResult))))
        return [p if isinstance(p, AgentResult) else next(made) for p in parts], allowed

    async def _map(
        self, req: SummarizeRequest, key: PartKey | None, s: ChannelSummary, fingerprint: str
    ) -> AgentResult:
        """One part's summary: from the cache when its stretch is whole, else computed."""
        if key is None or self.cache is None:
            return await self._call_summarize(req, s)
        outcome = await self.cache.get_or_compute(
            key, lambda: self._call_summarize(req, s), fingerprint=fingerprint
        )
        if outcome.reused:
            s.parts_reused += 1
            s.tokens_saved += outcome.result.usage.total_tokens
        return outcome.result

    async def _call_summarize(self, req: SummarizeRequest, s: ChannelSummary) -> AgentResult:
        async with self.agent_calls:
            res = await self.agent.summarize(req)
        s.calls += 1
        s.usage = s.usage + res.usage
        return res

    async def _reduce(
        self, partials: list[AgentResult], job: ChannelJob, name: str, s: ChannelSummary
    ) -> AgentResult:
        # Merge in rounds of MERGE_FAN_IN so no merge call outgrows the context. Even one
        # part is merged: the reduce stage is where the reader's ranking, instructions and
        # language apply (the parts know no reader).
        while True:
            groups = [partials[i : i + MERGE_FAN_IN] for i in range(0, len(partials), MERGE_FAN_IN)]
            partials = list(
                await asyncio.gather(*(self._call_merge(g, job, name, s) for g in groups))
            )
            if len(partials) == 1:
                return partials[0]

    async def _call_merge(
        self, group: list[AgentResult], job: ChannelJob, name: str, s: ChannelSummary
    ) -> AgentResult:
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
        s.calls += 1
        s.usage = s.usage + res.usage
        return res


@dataclass(slots=True)
class _Window:
    """A window's posts: their stamps (after the budget's cut), and what was read in full so
    far (every post when the source gives no stamps or the cache is off)."""

    stamps: list[PostStamp]
    # True when the stamps come from the source's light read (StampSource).
    light: bool
    # True when no post lies between the start of the window's first hour and the window's
    # start (read, not assumed), so the window may be planned from the hour's start.
    hour_start: bool = False
    posts: dict[str, Post] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    asked_users: set[str] = field(default_factory=set)


def _context(stretch: Stretch[PostStamp], roots: dict[str, PostStamp]) -> list[PostStamp]:
    """The roots of threads begun before the stretch that it shows as context, by time."""
    ids = {p.id for p in stretch.posts}
    found = {
        r.id: r
        for p in stretch.posts
        if p.root_id and p.root_id not in ids and (r := roots.get(p.root_id))
    }
    return sorted(found.values(), key=lambda r: (r.create_at, r.id))


def _stamps(window: _Window, stamps: Sequence[PostStamp]) -> list[PostStamp]:
    """The stamps of these posts as read in full (those still there)."""
    return [
        stamp_of(p, window.users.get(p.user_id)) for s in stamps if (p := window.posts.get(s.id))
    ]


def _effective_start(start: int, posts: Sequence[PostStamp]) -> int:
    """Where the window's stretches start. The channel has no post between `start` and the
    first post, so the window may begin at the latest aligned boundary (8, 4, 2 or 1 h) at or
    before that post and after `start`: fewer partial edges, the same aligned blocks as other
    readers. The latest-posts fallback reaches back before `start`: then its first post."""
    first = min(p.create_at for p in posts)
    if first < start:
        return first
    for hours in BLOCK_HOURS:
        boundary = first - first % (hours * HOUR_MS)
        if boundary >= start:
            return boundary
    return start


def _posted_by_a_bot(post: Post) -> bool:
    """Mattermost marks posts of bots and incoming webhooks in their props."""
    return any(
        str(post.props.get(key, "")).lower() == "true" for key in ("from_bot", "from_webhook")
    )


def _cut_notice(cut: Sequence[PostStamp], limit: int, reader: User) -> str:
    """What a post limit left unread, in the reader's zone: "The 670 oldest messages
    (09:12-13:40 UTC) were not read: the limit for this recap is 500 messages." """
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
