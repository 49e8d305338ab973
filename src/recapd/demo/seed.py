"""`recapd demo`: a demo workspace from the bundled logs, a demo user with a token, two
schedules and the first recaps. Running it again adds nothing and reports what is there."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from recapd.chat.importers.irc_log import import_log
from recapd.demo.bundled import DEMO_LOGS, write_shifted
from recapd.model.app_error import AppError
from recapd.model.chat import Channel, ChannelMember, User
from recapd.model.ids import new_id
from recapd.model.job import JobStatus, JobType
from recapd.model.scheduled_recap import ChannelMode, ScheduledRecap, TimePeriod
from recapd.model.tz import InvalidZoneError, load_zone, ms_to_local
from recapd.runtime import Runtime
from recapd.store.token_store import SYSTEM_ADMIN

DEMO_TEAM = "demo"
DEMO_USERNAME = "demo"
TOKEN_FILE_NAME = "recapd-demo-token.txt"
DAILY_TITLE = "Demo: daily recap"
WEEKLY_TITLE = "Demo: weekly recap"
EVERY_DAY = 127
MONDAY = 2


@dataclass
class DemoChannel:
    """A demo channel, its post count, and whether this run imported it."""

    channel: Channel
    posts: int
    imported: bool


@dataclass
class DemoSchedule:
    """A demo schedule and whether this run created it."""

    schedule: ScheduledRecap
    created: bool


@dataclass
class DemoResult:
    """What the demo workspace holds after `seed_demo`, and what this run added."""

    user: User
    token: str
    token_file: Path
    token_created: bool
    channels: list[DemoChannel] = field(default_factory=list)
    schedules: list[DemoSchedule] = field(default_factory=list)
    queued_job_ids: list[str] = field(default_factory=list)
    waiting_jobs: int = 0
    recap_count: int = 0

    def lines(self) -> list[str]:
        """A short report for the command line."""
        out = []
        for c in self.channels:
            how = "imported" if c.imported else "already there"
            out.append(f"channel {DEMO_TEAM}/{c.channel.name}: {c.posts} posts ({how})")
        out.append(f"user {self.user.username} (system administrator, zone {self.user.timezone})")
        for s in self.schedules:
            sr = s.schedule
            when = ms_to_local(sr.next_run_at, load_zone(sr.timezone)).strftime("%a %H:%M %Z")
            how = "created" if s.created else "already there"
            out.append(f"schedule {sr.title!r}: next run {when} ({how})")
        if self.queued_job_ids:
            out.append(f"{len(self.queued_job_ids)} first recaps queued; `recapd serve` makes them")
        else:
            waiting = f", {self.waiting_jobs} queued" if self.waiting_jobs else ""
            out.append(f"{self.recap_count} recaps made so far{waiting}")
        how = "new" if self.token_created else "unchanged"
        out.append(f"token ({how}, saved in {self.token_file}): {self.token}")
        return out


def token_file_for(database_url: str) -> Path:
    """Where the demo token is saved: next to a SQLite file, else in the working directory."""
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///").partition("?")[0]
        if path and path != ":memory:":
            return Path(path).resolve().parent / TOKEN_FILE_NAME
    return Path.cwd() / TOKEN_FILE_NAME


def machine_zone() -> str:
    """This machine's IANA zone ($TZ, /etc/localtime, /etc/timezone), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    target = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in target:
        candidates.append(target.split("zoneinfo/", 1)[1])
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    for name in candidates:
        try:
            load_zone(name)
        except InvalidZoneError:
            continue
        return name
    return "UTC"


def near_time(now_ms: int, zone: str) -> str:
    """HH:MM 10 to 15 minutes from now in `zone` (a multiple of 5 minutes)."""
    local = ms_to_local(now_ms, load_zone(zone)).replace(second=0, microsecond=0)
    later = local + dt.timedelta(minutes=10)
    return (later + dt.timedelta(minutes=5 - later.minute % 5)).strftime("%H:%M")


async def seed_demo(runtime: Runtime, token_file: Path, zone: str | None = None) -> DemoResult:
    """Make (or find) the demo workspace on `runtime`, relative to its clock's now."""
    now = runtime.recaps.clock.now_ms()
    zone = zone or machine_zone()
    channels = await asyncio.to_thread(_import_channels, runtime, now)
    user = await asyncio.to_thread(_demo_user, runtime, zone, now, [c.channel for c in channels])
    token, created = await asyncio.to_thread(_token, runtime, user, token_file, now)
    result = DemoResult(user, token, token_file, created, channels)
    existing = {sr.title: sr for sr in await runtime.schedules.list_for_user(user.id, 0, 200)}
    channel_ids = [c.channel.id for c in channels]
    wanted = (
        (DAILY_TITLE, EVERY_DAY, near_time(now, zone), TimePeriod.LAST_24H),
        (WEEKLY_TITLE, MONDAY, "09:00", TimePeriod.LAST_WEEK),
    )
    for title, days, time_of_day, period in wanted:
        sr = existing.get(title)
        if sr is not None:
            result.schedules.append(DemoSchedule(sr, created=False))
            continue
        sr = await runtime.schedules.create(
            user.id,
            {
                "title": title,
                "days_of_week": days,
                "time_of_day": time_of_day,
                "timezone": zone,
                "time_period": period,
                "channel_mode": ChannelMode.SPECIFIC,
                "channel_ids": channel_ids,
            },
        )
        result.schedules.append(DemoSchedule(sr, created=True))
        # The first recaps: one run of each new schedule, so the recaps page is not empty.
        job = await runtime.schedules.run_now(user.id, sr.id)
        result.queued_job_ids.append(job.id)
    result.recap_count = len(await runtime.recaps.list_for_user(user.id, 0, 200))
    result.waiting_jobs = await asyncio.to_thread(
        _waiting_runs, runtime, {s.schedule.id for s in result.schedules}
    )
    return result


def _waiting_runs(runtime: Runtime, schedule_ids: set[str]) -> int:
    """Runs of the demo schedules queued or running (not yet a recap)."""
    live = runtime.store.jobs.list_page(
        type=JobType.SCHEDULED_RECAP,
        statuses=[JobStatus.PENDING, JobStatus.IN_PROGRESS],
        per_page=200,
    )
    return sum(1 for j in live if j.data.get("scheduled_recap_id") in schedule_ids)


def _import_channels(runtime: Runtime, now: int) -> list[DemoChannel]:
    ws = runtime.store.workspace
    found: list[DemoChannel] = []
    for log in DEMO_LOGS:
        channel = _existing_channel(runtime, log.channel)
        imported = channel is None
        if channel is None:
            with tempfile.TemporaryDirectory(prefix="recapd-demo-") as folder:
                path = write_shifted(log, now, Path(folder))
                import_log(runtime.store, path, channel=log.channel, team=DEMO_TEAM, progress=False)
            channel = _existing_channel(runtime, log.channel)
            assert channel is not None  # just imported
        found.append(DemoChannel(channel, ws.count_posts(channel.id), imported))
    return found


def _existing_channel(runtime: Runtime, name: str) -> Channel | None:
    ws = runtime.store.workspace
    try:
        team = ws.get_team_by_name(DEMO_TEAM)
        return ws.get_channel_by_name(team.id, name)
    except AppError:
        return None


def _demo_user(runtime: Runtime, zone: str, now: int, channels: list[Channel]) -> User:
    ws = runtime.store.workspace
    with runtime.store.transaction() as conn:
        try:
            user = ws.get_user_by_username(DEMO_USERNAME, conn=conn)
        except AppError:
            user = User(new_id(), DEMO_USERNAME, "Demo User", timezone=zone, create_at=now)
            ws.upsert_users([user], conn=conn)
        runtime.store.tokens.set_roles(user.id, SYSTEM_ADMIN, conn=conn)
        # Never read: every demo channel is unread. An existing membership keeps its place.
        ws.upsert_members([ChannelMember(c.id, user.id, 0, now) for c in channels], conn=conn)
    return user


def _token(runtime: Runtime, user: User, path: Path, now: int) -> tuple[str, bool]:
    """The saved token when it still signs the demo user in, else a new one saved to `path`."""
    tokens = runtime.store.tokens
    try:
        saved = path.read_text(encoding="utf-8").strip()
    except OSError:
        saved = ""
    if saved and tokens.lookup(saved) == user.id:
        return saved, False
    token, _ = tokens.create(user.id, "recapd demo", now)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Owner-only: the token signs in as an administrator.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token, True
