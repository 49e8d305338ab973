"""Recap use cases: create a manual recap, read, mark read/viewed, regenerate, delete, limit
status, and making a recap (what the recap job runs)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from recapd.app.agents import AgentPool
from recapd.app.delivery import enqueue_delivery
from recapd.app.permissions import ensure_can_read
from recapd.chat.source import ChatSource
from recapd.clock import Clock
from recapd.config import Settings
from recapd.jobs.recap.worker import ProgressFn
from recapd.jobs.server import JobServer
from recapd.model.app_error import AppError
from recapd.model.ids import is_valid_id, new_id
from recapd.model.job import JobType
from recapd.model.recap import (
    MAX_CHANNELS_EXCEEDED,
    RECAP_NOT_FOUND,
    RECAP_PERMISSION_DENIED,
    ChannelStatus,
    Recap,
    RecapChannel,
    RecapStatus,
)
from recapd.model.tz import InvalidZoneError, load_zone, local_day_bounds
from recapd.store.store import Store
from recapd.summarize.budget import PostBudget, effective_post_limit
from recapd.summarize.part_cache import PartCache
from recapd.summarize.pipeline import ChannelJob, ChannelSummarizer, ChannelSummary

TITLE_MAX_BYTES = 255
# Channel names a default title spells out before it counts the rest.
TITLE_NAMES_CHARS = 60


def default_title(names: list[str], count: int = 0) -> str:
    """A recap's title when the user gave none: "Recap of dev", "Recap of dev and ops",
    "Recap of dev, ops and 4 more channels"; "Recap of 3 channels" without names."""
    count = max(count, len(names))
    if not names:
        return f"Recap of {count} channel{'s' if count != 1 else ''}"
    shown = [names[0]]
    for name in names[1:]:
        if len(", ".join([*shown, name])) > TITLE_NAMES_CHARS:
            break
        shown.append(name)
    rest = count - len(shown)
    if rest:
        text = f"{', '.join(shown)} and {rest} more channel{'s' if rest != 1 else ''}"
    elif len(shown) == 1:
        text = shown[0]
    else:
        text = f"{', '.join(shown[:-1])} and {shown[-1]}"
    title = f"Recap of {text}"
    if len(title.encode()) > TITLE_MAX_BYTES:  # one very long name
        title = title.encode()[: TITLE_MAX_BYTES - 3].decode(errors="ignore") + "\u2026"
    return title


def ensure_enabled(settings: Settings) -> None:
    """AppError 501 when AI recaps are switched off (feature flag or AIRecapSettings.Enable)."""
    if not (settings.enable_ai_recaps and settings.ai_recaps.enable):
        raise AppError(
            "api.recap.disabled.app_error",
            "AI recaps are turned off on this server",
            status_code=501,
        )


def recap_job_key(recap_id: str) -> str:
    """The dedupe key that keeps one live job per recap (two regenerates never interleave)."""
    return f"recap:{recap_id}"


@dataclass(frozen=True)
class LimitStatus:
    """The limits in force for a user and how much of today's allowance is used."""

    max_recaps_per_day: int
    recaps_used_today: int
    max_posts_per_day: int
    posts_used_today: int
    day_resets_at: int
    cooldown_minutes: int
    cooldown_remaining_seconds: int
    max_channels_per_recap: int
    max_scheduled_recaps: int
    max_posts_per_recap: int = -1
    max_tokens_per_recap: int = -1
    # When the cooldown ends (ms; 0 when no cooldown is running).
    cooldown_available_at: int = 0


class RecapService:
    """Recaps for users of a chat source, generated through agents by the job server."""

    def __init__(
        self,
        store: Store,
        jobs: JobServer,
        chat: ChatSource,
        agents: AgentPool,
        settings: Settings,
        clock: Clock,
        agent_calls: asyncio.Semaphore,
        part_cache: PartCache | None = None,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.chat = chat
        self.agents = agents
        self.settings = settings
        self.clock = clock
        self.agent_calls = agent_calls
        # Stretch summaries shared between recaps (None: each recap makes its own).
        self.part_cache = part_cache

    # -- reading and simple changes --------------------------------------------------------

    async def get(self, user_id: str, recap_id: str) -> Recap:
        """The user's recap with its channels; someone else's answers exactly like a missing one."""
        ensure_enabled(self.settings)
        try:
            recap = await asyncio.to_thread(self.store.recaps.get, recap_id)
        except AppError as exc:
            if exc.status_code == 404:
                raise _not_found(recap_id) from exc
            raise
        if recap.user_id != user_id or recap.status == RecapStatus.SKIPPED:
            raise _not_found(recap_id)
        return recap

    async def list_for_user(self, user_id: str, page: int = 0, per_page: int = 60) -> list[Recap]:
        """The user's recaps, newest first, without channels (skipped and deleted hidden)."""
        ensure_enabled(self.settings)
        return await asyncio.to_thread(self.store.recaps.list_for_user, user_id, page, per_page)

    async def mark_read(self, user_id: str, recap_id: str) -> Recap:
        """Set read_at once."""
        await self.get(user_id, recap_id)
        return await asyncio.to_thread(self.store.recaps.mark_read, recap_id, self.clock.now_ms())

    async def mark_all_viewed(self, user_id: str) -> list[str]:
        """Mark the user's finished recaps viewed; return the ids of those that changed."""
        ensure_enabled(self.settings)
        return await asyncio.to_thread(self.store.recaps.mark_viewed, user_id, self.clock.now_ms())

    async def delete(self, user_id: str, recap_id: str) -> None:
        """Soft delete."""
        await self.get(user_id, recap_id)
        await asyncio.to_thread(self.store.recaps.delete, recap_id, self.clock.now_ms())

    # -- limits --------------------------------------------------------------------------------

    async def _user_day(self, user_id: str, now: int) -> tuple[int, int]:
        user = await self.chat.get_user(user_id)
        try:
            zone = load_zone(user.timezone)
        except InvalidZoneError:
            zone = load_zone("UTC")
        return local_day_bounds(now, zone)

    async def limit_status(self, user_id: str) -> LimitStatus:
        """Effective limits, today's use, when the day resets, the cooldown left."""
        ensure_enabled(self.settings)
        lim = self.settings.ai_recaps
        now = self.clock.now_ms()
        start, end = await self._user_day(user_id, now)
        recaps = self.store.recaps
        used = await asyncio.to_thread(recaps.count_for_day, user_id, start, end)
        posts = await asyncio.to_thread(recaps.posts_used, user_id, start, end)
        last = await asyncio.to_thread(recaps.last_manual_create_at, user_id)
        cooldown = lim.effective_limit("cooldown_minutes")
        ends = last + cooldown * 60_000 if last and cooldown > 0 else 0
        remaining = max(0, (ends - now) // 1000) if ends > now else 0
        return LimitStatus(
            max_recaps_per_day=lim.effective_limit("max_recaps_per_day"),
            recaps_used_today=used,
            max_posts_per_day=lim.effective_limit("max_posts_per_day"),
            posts_used_today=posts,
            day_resets_at=end,
            cooldown_minutes=cooldown,
            cooldown_remaining_seconds=remaining,
            max_channels_per_recap=lim.effective_limit("max_channels_per_recap"),
            max_scheduled_recaps=lim.effective_limit("max_scheduled_recaps"),
            max_posts_per_recap=lim.effective_limit("max_posts_per_recap"),
            max_tokens_per_recap=lim.effective_limit("max_tokens_per_recap"),
            cooldown_available_at=ends if ends > now else 0,
        )

    # -- creating ------------------------------------------------------------------------------

    async def create(
        self, user_id: str, *, title: str, channel_ids: list[str], agent_id: str = ""
    ) -> Recap:
        """A manual recap of channels the user can read; queued at once.

        Checks: channels (valid, readable, within the per-recap maximum), the agent, the
        cooldown and the daily limit, the last two atomically with the insert.
        """
        ensure_enabled(self.settings)
        lim = self.settings.ai_recaps
        agent_id = agent_id or self.settings.default_agent
        channels = list(dict.fromkeys(channel_ids))
        if not channels:
            raise _invalid("channel_ids", "choose at least one channel")
        bad = [c for c in channels if not is_valid_id(c)]
        if bad:
            raise _invalid("channel_ids", f"not a channel id: {bad[0]!r}")
        max_channels = lim.effective_limit("max_channels_per_recap")
        if 0 <= max_channels < len(channels):
            raise AppError(
                MAX_CHANNELS_EXCEEDED,
                f"a recap can cover at most {max_channels} channels",
                detailed_error=f"got {len(channels)}",
                status_code=400,
            )
        title = title.strip()
        if len(title.encode()) > TITLE_MAX_BYTES:
            raise _invalid("title", f"must be at most {TITLE_MAX_BYTES} bytes")
        self.agents.get(agent_id)  # unknown agent: 400 before anything is stored
        await ensure_can_read(self.chat, user_id, channels, RECAP_PERMISSION_DENIED)
        title = title or default_title(await self._channel_names(channels), len(channels))
        now = self.clock.now_ms()
        start, end = await self._user_day(user_id, now)
        recap = Recap(
            id=new_id(),
            user_id=user_id,
            title=title,
            create_at=now,
            update_at=now,
            status=RecapStatus.PENDING,
            bot_id=agent_id,
            channel_ids=channels,
        )
        cooldown_ms = lim.effective_limit("cooldown_minutes") * 60_000

        def save() -> Recap:
            with self.store.transaction() as conn:
                saved = self.store.recaps.save_if_under_daily_limit(
                    recap,
                    lim.effective_limit("max_recaps_per_day"),
                    start,
                    end,
                    cooldown_ms=cooldown_ms,
                    now_ms=now,
                    conn=conn,
                )
                # The recap and its job commit together: no recap without a job.
                self.jobs.create_job_once(
                    JobType.RECAP, {"recap_id": saved.id}, recap_job_key(saved.id), conn=conn
                )
                return saved

        return await asyncio.to_thread(save)

    async def _channel_names(self, channel_ids: list[str]) -> list[str]:
        names = []
        for channel_id in channel_ids:
            try:
                channel = await self.chat.get_channel(channel_id)
            except AppError:
                return []  # a count then, rather than some of the names
            names.append(channel.display_name or channel.name)
        return names

    async def regenerate(self, user_id: str, recap_id: str) -> Recap:
        """Make a finished recap again. One that is still being made answers 409."""
        recap = await self.get(user_id, recap_id)
        now = self.clock.now_ms()

        def reset() -> None:
            with self.store.transaction() as conn:
                finished = [RecapStatus.COMPLETED, RecapStatus.FAILED]
                if not self.store.recaps.update_status(
                    recap.id, RecapStatus.PENDING, finished, now, error="", conn=conn
                ):
                    raise AppError(
                        "app.recap.regenerate.in_progress.app_error",
                        "this recap is being made right now; try again when it is done",
                        status_code=409,
                    )
                self.store.recaps.delete_channels(recap.id, conn=conn)
                self.jobs.create_job_once(
                    JobType.RECAP, {"recap_id": recap.id}, recap_job_key(recap.id), conn=conn
                )

        await asyncio.to_thread(reset)
        return await self.get(user_id, recap_id)

    # -- making a recap (the recap job) -------------------------------------------------------

    async def process_recap(self, recap_id: str, progress: ProgressFn) -> None:
        """Make the recap: every channel concurrently, each result saved when it is ready, so a
        retried job continues with the channels still missing. Status changes are
        compare-and-set, so a concurrent delete or regenerate is never overwritten."""
        recaps = self.store.recaps
        recap = await asyncio.to_thread(recaps.get, recap_id, include_deleted=True)
        if recap.delete_at or recap.status not in (RecapStatus.PENDING, RecapStatus.PROCESSING):
            return  # deleted, or already finished by an earlier attempt
        now = self.clock.now_ms()
        if recap.status == RecapStatus.PENDING and not await asyncio.to_thread(
            recaps.update_status,
            recap.id,
            RecapStatus.PROCESSING,
            [RecapStatus.PENDING],
            now,
        ):
            return
        reader = await self.chat.get_user(recap.user_id)
        try:
            agent = self.agents.get(recap.bot_id)
        except AppError as exc:
            await self.fail_recap(recap.id, exc.message)
            return
        lim = self.settings.ai_recaps
        summarizer = ChannelSummarizer(
            self.chat,
            agent,
            self.agent_calls,
            max_tokens_per_call=lim.effective_limit("max_tokens_per_recap"),
            # The recap bot's own announcements are never recapped as news.
            bot_names=(*lim.bot_usernames, self.settings.delivery.bot_username),
            cache=self.part_cache,
        )
        done = {c.channel_id: c for c in recap.channels if c.status == ChannelStatus.SUCCESS}
        todo = [c for c in recap.channel_ids if c not in done]
        start, end = await self._user_day(recap.user_id, recap.create_at)
        used_today = await asyncio.to_thread(recaps.posts_used, recap.user_id, start, end)
        already = sum(len(c.source_post_ids) for c in done.values())
        limit = effective_post_limit(
            lim.effective_limit("max_posts_per_recap"),
            lim.effective_limit("max_posts_per_day"),
            used_today - recap.total_message_count,
        )
        budget = PostBudget(limit if limit < 0 else max(0, limit - already), todo)
        finished = len(done)

        async def one(channel_id: str) -> ChannelSummary:
            nonlocal finished
            job = ChannelJob(
                channel_id=channel_id,
                reader=reader,
                time_period=recap.time_period,
                now_ms=now,
                custom_instructions=recap.custom_instructions,
                fallback_to_latest=not recap.scheduled_recap_id,
            )
            summary = await summarizer.summarize(job, budget)
            summary.channel.id = new_id()
            summary.channel.recap_id = recap.id
            await asyncio.to_thread(recaps.save_channel, summary.channel)
            finished += 1
            await progress(int(100 * finished / max(1, len(recap.channel_ids))))
            return summary

        summaries = await asyncio.gather(*(one(c) for c in todo))
        channels: list[RecapChannel] = [*done.values(), *(s.channel for s in summaries)]
        messages = sum(len(c.source_post_ids) for c in channels)
        prompt = recap.prompt_tokens + sum(s.usage.prompt_tokens for s in summaries)
        completion = recap.completion_tokens + sum(s.usage.completion_tokens for s in summaries)
        # A retried job adds to what the earlier attempts spent.
        cost = (
            recap.agent_calls + sum(s.calls for s in summaries),
            recap.parts_total + sum(s.parts for s in summaries),
            recap.parts_reused + sum(s.parts_reused for s in summaries),
        )
        ok = any(c.status == ChannelStatus.SUCCESS for c in channels)
        failed_reasons = "; ".join(
            f"{c.channel_name or c.channel_id}: {c.error}" for c in channels if c.error
        )
        await asyncio.to_thread(
            self._finish,
            recap.id,
            RecapStatus.COMPLETED if ok else RecapStatus.FAILED,
            [RecapStatus.PROCESSING],
            error="" if ok else f"Every channel failed. {failed_reasons}",
            total_message_count=messages,
            tokens=(prompt, completion),
            cost=cost,
        )

    async def fail_recap(self, recap_id: str, reason: str) -> None:
        """Record a recap as failed with a reason, unless it finished or changed meanwhile."""
        await asyncio.to_thread(
            self._finish,
            recap_id,
            RecapStatus.FAILED,
            [RecapStatus.PENDING, RecapStatus.PROCESSING],
            error=reason,
        )

    def _finish(
        self,
        recap_id: str,
        status: RecapStatus,
        expected: list[RecapStatus],
        *,
        error: str,
        total_message_count: int | None = None,
        tokens: tuple[int, int] | None = None,
        cost: tuple[int, int, int] | None = None,
    ) -> bool:
        """Set the final status (compare-and-set) and queue the delivery job in ONE
        transaction: only the writer that finishes the recap announces it, exactly once."""
        now = self.clock.now_ms()
        with self.store.transaction() as conn:
            changed = self.store.recaps.update_status(
                recap_id,
                status,
                expected,
                now,
                error=error,
                total_message_count=total_message_count,
                tokens=tokens,
                cost=cost,
                conn=conn,
            )
            if changed:
                enqueue_delivery(self.jobs, recap_id, status, now, conn)
        return changed


def _not_found(recap_id: str) -> AppError:
    return AppError(
        RECAP_NOT_FOUND,
        "recap not found",
        detailed_error=f"id={recap_id}",
        status_code=404,
    )


def _invalid(field: str, message: str) -> AppError:
    return AppError(f"app.recap.create.{field}.app_error", f"{field}: {message}", status_code=400)
