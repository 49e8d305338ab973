"""Scheduled-recap use cases: create, read, update, pause, resume, delete, run now, and the
one outcome of each occurrence (what the scheduled_recap job runs)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from recapd.app.agents import AgentPool
from recapd.app.permissions import ensure_can_read
from recapd.app.recaps import RecapService, ensure_enabled
from recapd.chat.source import ChatSource
from recapd.clock import Clock
from recapd.config import Settings
from recapd.jobs.scheduled_recap.scheduler import occurrence_key
from recapd.jobs.scheduled_recap.worker import ProgressFn
from recapd.jobs.server import JobServer
from recapd.metrics import SCHEDULE_OUTCOMES, SCHEDULE_START_DELAY
from recapd.model.app_error import AppError
from recapd.model.ids import new_id
from recapd.model.job import Job, JobType
from recapd.model.recap import Recap, RecapStatus, SkipReason, outcome_kind, skipped_outcome
from recapd.model.scheduled_recap import ChannelMode, ScheduledRecap
from recapd.model.tz import InvalidZoneError, load_zone, local_day_bounds
from recapd.store.store import Store

log = logging.getLogger(__name__)

# What a client may set; everything else (owner, run bookkeeping, enabled) is the server's.
EDITABLE_FIELDS = (
    "title",
    "days_of_week",
    "time_of_day",
    "timezone",
    "time_period",
    "channel_mode",
    "channel_ids",
    "custom_instructions",
    "agent_id",
    "is_recurring",
)

# A skipped record's reason in words, when it carries none of its own.
_SKIP_WORDS: dict[str, str] = {
    SkipReason.MISSED: "missed while recapd was not running",
    SkipReason.DAILY_LIMIT: "the daily limit of recaps was reached",
    SkipReason.NO_CHANNELS: "no unread channels",
    SkipReason.DISABLED: "the schedule was paused",
    SkipReason.DELETED: "the schedule was deleted",
}


@dataclass(frozen=True, slots=True)
class ScheduleRun:
    """One occurrence of a schedule and its outcome, as the CLI and the schedule's page show it."""

    scheduled_for: int  # the occurrence (ms); a run-now's is when it was asked for
    recap_id: str
    status: str  # completed | failed | skipped, or pending | processing while it is made
    reason: str  # why it failed or was skipped, in words; "" otherwise
    skip_reason: str  # a SkipReason for skipped runs, else ""
    finished_at: int  # when it completed, failed or was skipped (ms); 0 while it is made
    has_recap: bool  # a recap the user can open (not skipped, not deleted)

    @property
    def outcome(self) -> str:
        """The outcome in a few words: `completed`, `failed: <why>`, `skipped: <why>`."""
        if self.status in (RecapStatus.PENDING, RecapStatus.PROCESSING):
            return "in progress"
        return f"{self.status}: {self.reason}" if self.reason else str(self.status)

    @classmethod
    def of(cls, recap: Recap) -> ScheduleRun:
        """The run a recorded outcome stands for."""
        skipped = recap.status == RecapStatus.SKIPPED
        reason = ""
        if skipped:
            reason = recap.error or _SKIP_WORDS.get(recap.skip_reason, "")
        elif recap.status == RecapStatus.FAILED:
            reason = recap.error
        finished = recap.create_at if skipped else recap.finish_at
        return cls(
            scheduled_for=recap.scheduled_for,
            recap_id=recap.id,
            status=str(recap.status),
            reason=reason,
            skip_reason=recap.skip_reason if skipped else "",
            finished_at=finished,
            has_recap=not skipped and not recap.delete_at,
        )


class ScheduledRecapService:
    """Schedules of recaps, and their occurrences turned into recaps."""

    def __init__(
        self,
        store: Store,
        jobs: JobServer,
        chat: ChatSource,
        agents: AgentPool,
        recaps: RecapService,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.chat = chat
        self.agents = agents
        self.recaps = recaps
        self.settings = settings
        self.clock = clock

    # -- reading -------------------------------------------------------------------------------

    async def get(self, user_id: str, sr_id: str) -> ScheduledRecap:
        """The user's schedule; someone else's answers exactly like a missing one (404)."""
        ensure_enabled(self.settings)
        sr = await asyncio.to_thread(self.store.scheduled_recaps.get, sr_id)
        if sr.user_id != user_id:
            raise _not_found(sr_id)
        return sr

    async def list_for_user(
        self, user_id: str, page: int = 0, per_page: int = 60
    ) -> list[ScheduledRecap]:
        """The user's schedules, newest first."""
        ensure_enabled(self.settings)
        return await asyncio.to_thread(
            self.store.scheduled_recaps.list_for_user, user_id, page, per_page
        )

    async def last_runs(self, user_id: str, sr_id: str, limit: int = 10) -> list[ScheduleRun]:
        """The user's schedule's latest runs with their outcomes, latest first (404 as get)."""
        await self.get(user_id, sr_id)
        found = await asyncio.to_thread(self.store.recaps.list_for_schedule, sr_id, limit)
        return [ScheduleRun.of(r) for r in found]

    # -- changing ------------------------------------------------------------------------------

    async def _check(self, sr: ScheduledRecap) -> None:
        sr.is_valid()
        self.agents.get(sr.agent_id)  # unknown agent: 400
        max_channels = self.settings.ai_recaps.effective_limit("max_channels_per_recap")
        if 0 <= max_channels < len(sr.channel_ids):
            raise AppError(
                "app.scheduled_recap.max_channels.app_error",
                f"a recap can cover at most {max_channels} channels",
                status_code=400,
            )
        await ensure_can_read(
            self.chat, sr.user_id, sr.channel_ids, "app.scheduled_recap.permission_denied.app_error"
        )

    async def create(self, user_id: str, fields: dict[str, Any]) -> ScheduledRecap:
        """A new schedule for the user (enabled), within their limit of live schedules."""
        ensure_enabled(self.settings)
        unknown = set(fields) - set(EDITABLE_FIELDS)
        if unknown:
            raise AppError(
                "app.scheduled_recap.create.unknown_field.app_error",
                f"unknown field(s): {', '.join(sorted(unknown))}",
                status_code=400,
            )
        values = {"agent_id": self.settings.default_agent, **fields}
        if values.get("timezone") in (None, ""):
            zone = await self.default_timezone(user_id)
            if zone:
                values["timezone"] = zone
        sr = ScheduledRecap.from_dict({**values, "user_id": user_id})
        now = self.clock.now_ms()
        sr.pre_save(now)
        sr.enabled = True
        await self._check(sr)
        sr.next_run_at = sr.compute_next_run_at(now)
        limit = self.settings.ai_recaps.effective_limit("max_scheduled_recaps")
        saved = await asyncio.to_thread(self.store.scheduled_recaps.save_if_under_limit, sr, limit)
        self.jobs.wake_scheduler(JobType.SCHEDULED_RECAP, saved.next_run_at)
        return saved

    async def default_timezone(self, user_id: str) -> str:
        """The zone of the user's chat profile (Mattermost: automatic or manual, as set), or
        "" when it has none that loads; a schedule created without a zone gets it."""
        try:
            zone = (await self.chat.get_user(user_id)).timezone
            load_zone(zone)
        except (AppError, InvalidZoneError):
            return ""
        return zone

    async def update(
        self, user_id: str, sr_id: str, fields: dict[str, Any], expected_update_at: int = 0
    ) -> ScheduledRecap:
        """Change the editable fields (PUT); the next run is recomputed, the rest kept.

        `expected_update_at` (0: the current one) guards against lost updates (409).
        """
        current = await self.get(user_id, sr_id)
        unknown = set(fields) - set(EDITABLE_FIELDS)
        if unknown:
            raise AppError(
                "app.scheduled_recap.update.unknown_field.app_error",
                f"unknown field(s): {', '.join(sorted(unknown))}",
                status_code=400,
            )
        sr = ScheduledRecap.from_dict({**current.to_dict(), **fields})
        now = self.clock.now_ms()
        sr.pre_save(now)
        await self._check(sr)
        sr.next_run_at = sr.compute_next_run_at(now)
        saved = await asyncio.to_thread(
            self.store.scheduled_recaps.update, sr, expected_update_at or current.update_at
        )
        self.jobs.wake_scheduler(JobType.SCHEDULED_RECAP, saved.next_run_at)
        return saved

    async def pause(self, user_id: str, sr_id: str) -> ScheduledRecap:
        """Stop running the schedule until resumed."""
        await self.get(user_id, sr_id)
        await asyncio.to_thread(
            self.store.scheduled_recaps.set_enabled, sr_id, False, self.clock.now_ms()
        )
        return await self.get(user_id, sr_id)

    async def resume(self, user_id: str, sr_id: str) -> ScheduledRecap:
        """Run the schedule again from its next occurrence after now, within the user's limit
        of live schedules (the original's resume skips that check)."""
        sr = await self.get(user_id, sr_id)
        now = self.clock.now_ms()
        limit = self.settings.ai_recaps.effective_limit("max_scheduled_recaps")
        resumed = await asyncio.to_thread(
            self.store.scheduled_recaps.enable_if_under_limit,
            sr_id,
            limit,
            sr.compute_next_run_at(now),
            now,
        )
        self.jobs.wake_scheduler(JobType.SCHEDULED_RECAP, resumed.next_run_at)
        return resumed

    async def delete(self, user_id: str, sr_id: str) -> None:
        """Soft delete; a job already queued for it records a skipped outcome."""
        await self.get(user_id, sr_id)
        await asyncio.to_thread(self.store.scheduled_recaps.delete, sr_id, self.clock.now_ms())

    async def run_now(self, user_id: str, sr_id: str) -> Job:
        """An extra occurrence now; the timetable (next_run_at) is not disturbed."""
        sr = await self.get(user_id, sr_id)
        now = self.clock.now_ms()
        data = {
            "scheduled_recap_id": sr.id,
            "user_id": sr.user_id,
            "channel_ids": ",".join(sr.channel_ids),
            "agent_id": sr.agent_id,
            "scheduled_for": now,
            "run_now": True,
        }
        job, _ = await asyncio.to_thread(
            self.jobs.create_job_once,
            JobType.SCHEDULED_RECAP,
            data,
            occurrence_key(sr.id, now),
        )
        return job

    # -- one occurrence ------------------------------------------------------------------------

    def _skipped(
        self, sr: ScheduledRecap, scheduled_for: int, reason: SkipReason, why: str
    ) -> Recap:
        record = skipped_outcome(sr, scheduled_for, reason, why, self.clock.now_ms())
        if self.store.recaps.save_outcome_once(record):
            SCHEDULE_OUTCOMES.labels(outcome_kind(record.status, record.skip_reason)).inc()
        found = self.store.recaps.get_by_occurrence(sr.id, scheduled_for)
        assert found is not None  # just inserted, or an earlier outcome that won
        return found

    async def create_recap_from_schedule(self, sr: ScheduledRecap, scheduled_for: int) -> Recap:
        """The recap of one occurrence, made once: a retried job finds the one it made.

        No channels to read -> skipped (no_channels); over the daily limit, counted in the
        schedule's zone -> skipped (daily_limit).
        """
        recaps = self.store.recaps
        existing = await asyncio.to_thread(recaps.get_by_occurrence, sr.id, scheduled_for)
        if existing is not None:
            return existing
        if sr.channel_mode == ChannelMode.ALL_UNREADS:
            channel_ids = [c.id for c in await self.chat.unread_channels(sr.user_id)]
        else:
            channel_ids = list(sr.channel_ids)
        if not channel_ids:
            return await asyncio.to_thread(
                self._skipped, sr, scheduled_for, SkipReason.NO_CHANNELS, "No unread channels."
            )
        now = self.clock.now_ms()
        start, end = local_day_bounds(now, load_zone(sr.timezone))
        recap = Recap(
            id=new_id(),
            user_id=sr.user_id,
            title=sr.title,
            create_at=now,
            update_at=now,
            status=RecapStatus.PENDING,
            bot_id=sr.agent_id,
            scheduled_recap_id=sr.id,
            scheduled_for=scheduled_for,
            channel_ids=channel_ids,
            time_period=sr.time_period,
            custom_instructions=sr.custom_instructions,
        )
        limit = self.settings.ai_recaps.effective_limit("max_recaps_per_day")
        try:
            return await asyncio.to_thread(
                recaps.save_if_under_daily_limit, recap, limit, start, end
            )
        except AppError as exc:
            if exc.id == "app.recap.daily_limit_reached.app_error":
                return await asyncio.to_thread(
                    self._skipped, sr, scheduled_for, SkipReason.DAILY_LIMIT, exc.message
                )
            if exc.id == "store.sql_recap.save.occurrence_exists.app_error":
                found = await asyncio.to_thread(recaps.get_by_occurrence, sr.id, scheduled_for)
                if found is not None:
                    return found
            raise

    async def run_scheduled_occurrence(
        self,
        scheduled_recap_id: str,
        scheduled_for: int,
        *,
        run_now: bool,
        last_attempt: bool,
        progress: ProgressFn,
    ) -> None:
        """Record the one outcome of an occurrence, then the schedule's bookkeeping."""
        store = self.store
        try:
            sr = await asyncio.to_thread(
                store.scheduled_recaps.get, scheduled_recap_id, include_deleted=True
            )
        except AppError:
            log.warning("scheduled recap %s vanished; nothing to record", scheduled_recap_id)
            return
        if sr.delete_at:
            await asyncio.to_thread(
                self._skipped, sr, scheduled_for, SkipReason.DELETED, "The schedule was deleted."
            )
            return
        if not sr.enabled and not run_now:
            existing = await asyncio.to_thread(store.recaps.get_by_occurrence, sr.id, scheduled_for)
            if existing is None:  # a retried one-shot job finds its recap instead
                await asyncio.to_thread(
                    self._skipped, sr, scheduled_for, SkipReason.DISABLED, "The schedule is paused."
                )
                return
        recap = await self.create_recap_from_schedule(sr, scheduled_for)
        if recap.status == RecapStatus.PENDING:
            SCHEDULE_START_DELAY.observe(max(0, self.clock.now_ms() - scheduled_for) / 1000)
        if recap.status in (RecapStatus.PENDING, RecapStatus.PROCESSING):
            try:
                await self.recaps.process_recap(recap.id, progress)
            except Exception as exc:
                if not last_attempt:
                    raise  # the job retries with backoff; the recap continues where it stopped
                await self.recaps.fail_recap(recap.id, f"The recap could not be made: {exc}")
            recap = await asyncio.to_thread(store.recaps.get, recap.id, include_deleted=True)
        if recap.status in (RecapStatus.PENDING, RecapStatus.PROCESSING):
            raise RuntimeError(f"recap {recap.id} is still {recap.status}; retrying")
        failed = None if recap.status == RecapStatus.SKIPPED else recap.status == "failed"
        await asyncio.to_thread(self._bookkeeping, sr, scheduled_for, run_now, failed)
        if recap.status != RecapStatus.SKIPPED:  # skipped records count when they are made
            SCHEDULE_OUTCOMES.labels(outcome_kind(recap.status, recap.skip_reason)).inc()

    def _bookkeeping(
        self, sr: ScheduledRecap, scheduled_for: int, run_now: bool, failed: bool | None
    ) -> None:
        """mark_executed, one-shot disable and the pause after repeated failures, together."""
        now = self.clock.now_ms()
        max_failures = self.settings.ai_recaps.max_consecutive_failures
        with self.store.transaction() as conn:
            updated = self.store.scheduled_recaps.mark_executed(
                sr.id,
                now,
                scheduled_for=scheduled_for,
                failed=failed,
                conn=conn,
            )
            if updated is None:
                return  # this occurrence was recorded by an earlier attempt
            if not sr.is_recurring and not run_now:
                self.store.scheduled_recaps.set_enabled(sr.id, False, now, conn=conn)
            elif updated.consecutive_failures >= max_failures and updated.enabled:
                self.store.scheduled_recaps.pause(
                    sr.id,
                    f"Paused after {updated.consecutive_failures} failed recaps in a row; "
                    "resume it when the problem is fixed.",
                    now,
                    conn=conn,
                )


def _not_found(sr_id: str) -> AppError:
    return AppError(
        "store.sql_scheduled_recap.get.not_found.app_error",
        "scheduled recap not found",
        detailed_error=f"id={sr_id}",
        status_code=404,
    )
