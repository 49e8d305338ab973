"""LLM tokens and time of a day of scheduled recaps, with the part cache off and on.

    python3 bench/tokens.py [--small] [--db postgres|sqlite]

A workspace of 200 channels filled from the bundled IRC logs (each channel one of the three
excerpts, its times stretched threefold and moved to a channel-specific hour, once a day for
the eight days before the measured day), 1,000 users with Zipf-distributed memberships of
5 to 30 channels (popular channels by Zipf too), a daily recap at 09:00 in one of five time
zones per user and a weekly recap (at the same time) for one user in five. Each run goes
through the real job system (scheduler, scheduled_recap and recap jobs, one node) and the
openai agent against the loopback fake (tests/fake_openai.py, in its own process: 300 ms per
answer, tokens counted as recapd estimates them, one per 4 bytes), with recapd's node-wide
limit of 32 agent calls at once.

The clock runs in real time, jumped to each zone's 09:00 in turn (00:00, 08:00, 09:00, 14:00
and 17:00 UTC): each wave is timed from its due instant to its last recap finished.

Cache off: every recap summarizes its own windows (the pipeline as before issue 14).
Cache on: before the measured day the cache holds what the previous days' recaps left in it
(the aligned stretches up to the last wave of the day before, made here by one replay per
channel, not counted), as it would in steady state; then the measured day runs as above.
Mattermost's design (one call per user and channel with at most its 100 latest posts) is
computed from the same windows with recapd's prompt, not run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchenv import OUT, ROOT, enter

if __name__ == "__main__":
    enter(__file__)

import asyncio
import datetime as dt
import json
import os
import random
import re
import subprocess
import time
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import psycopg
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(ROOT))

from recapd.agents.base import AgentPost, SummarizeRequest, estimate_tokens
from recapd.agents.openai_agent import OpenAIAgent
from recapd.agents.prompt import summarize_prompt
from recapd.app.part_cache import DatabasePartCache
from recapd.chat.local import LocalChatSource
from recapd.config import Settings, load_settings
from recapd.jobs.leader import StaticLeadership
from recapd.model.chat import Channel, ChannelMember, Post, Team, User
from recapd.model.ids import new_id
from recapd.model.recap import RecapStatus
from recapd.model.scheduled_recap import ScheduledRecap
from recapd.runtime import Runtime
from recapd.store.database import Database, to_sqlalchemy_url
from recapd.store.migrate import upgrade
from recapd.store.store import Store
from recapd.store.tables import jobs, part_cache, recap_channels, recaps, scheduled_recaps
from recapd.summarize.budget import PostBudget
from recapd.summarize.pipeline import ChannelJob, ChannelSummarizer

HOUR = 3_600_000
DAY = 24 * HOUR
# The measured day: Monday 2026-12-07, 00:00 UTC.
D = int(dt.datetime(2026, 12, 7, tzinfo=dt.UTC).timestamp() * 1000)
# Five zones with whole-hour offsets in December, and 09:00 local in UTC hours.
ZONES = {
    "Asia/Tokyo": 0,
    "Europe/Berlin": 8,
    "Europe/London": 9,
    "America/New_York": 14,
    "America/Los_Angeles": 17,
}
DB_NAME = "recapd_bench_tokens"
LOGS = ("rust", "stripe", "ubuntu-meeting")
LINE_RE = re.compile(r"^\S+ \d{4}-\d\d-\d\d \[(\d+):(\d\d)(?::(\d\d))?\] <([^>]+)> (.*)$")
MONDAY_BIT = 2  # Sunday=1, Monday=2, ...


class OffsetClock:
    """Real time moved by an offset, so a wave runs at its due instant in real time."""

    def __init__(self, start_ms: int) -> None:
        self.offset = 0
        self.jump(start_ms)

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset

    def jump(self, to_ms: int) -> None:
        self.offset = to_ms - time.time_ns() // 1_000_000


@dataclass
class Workload:
    channels: list[Channel]
    users: list[User]
    zone_of: dict[str, str]
    members: dict[str, list[str]]  # user id -> channel ids
    weekly: set[str]
    # A member of every channel who reads no recap: replays the previous days (prewarm).
    replay: User = field(default_factory=lambda: User(id=new_id(), username="replay"))
    posts: dict[str, list[Post]] = field(default_factory=dict)  # channel id -> posts by time
    authors: dict[str, str] = field(default_factory=dict)  # user id -> username


def excerpt(name: str) -> list[tuple[int, str, str]]:
    """(seconds from the first line, nick, text) of a bundled log's chat lines."""
    raw = resources.files("recapd.demo").joinpath("data", f"{name}.ascii.txt").read_text()
    out: list[tuple[int, str, str]] = []
    first = None
    for line in raw.splitlines():
        m = LINE_RE.match(line.strip())
        if not m or not m[5].strip():
            continue
        secs = int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3] or 0)
        first = secs if first is None else first
        out.append((secs - first if secs >= first else secs + 86400 - first, m[4], m[5]))
    return out


def zipf_weights(n: int, s: float = 1.0) -> list[float]:
    return [1.0 / (k + 1) ** s for k in range(n)]


def build_workload(store: Store, n_channels: int, n_users: int, rng: random.Random) -> Workload:
    team = Team(id=new_id(), name="bench", display_name="Bench")
    channels = [
        Channel(id=new_id(), team_id=team.id, name=f"chan-{i:03d}", display_name=f"Chan {i}")
        for i in range(n_channels)
    ]
    zones = list(ZONES)
    users = [
        User(id=new_id(), username=f"user{i:04d}", timezone=zones[i % len(zones)])
        for i in range(n_users)
    ]
    # Memberships: how many channels a user is in is Zipf over 5..30; which channels, Zipf by
    # popularity (channel 0 is #general-like).
    size_w = zipf_weights(26, 1.1)
    pop_w = zipf_weights(n_channels, 0.8)
    members: dict[str, list[str]] = {}
    for u in users:
        k = 5 + rng.choices(range(26), size_w)[0]
        chosen: set[int] = set()
        while len(chosen) < min(k, n_channels):
            chosen.add(rng.choices(range(n_channels), pop_w)[0])
        members[u.id] = [channels[i].id for i in sorted(chosen)]
    # One user in five, spread over the zones (user i lives in zone i % 5).
    weekly = {u.id for i, u in enumerate(users) if (i // 5) % 5 == i % 5}
    wl = Workload(channels, users, {u.id: u.timezone for u in users}, members, weekly)
    # Authors: the logs' nicks become users of their own (not recap readers).
    logs = {name: excerpt(name) for name in LOGS}
    nicks = sorted({nick for lines in logs.values() for _, nick, _ in lines})
    authors = {nick: User(id=new_id(), username=f"irc-{i}") for i, nick in enumerate(nicks)}
    wl.authors = {a.id: a.username for a in authors.values()}
    store.workspace.upsert_teams([team])
    store.workspace.upsert_users([*users, wl.replay, *authors.values()])
    store.workspace.upsert_channels(channels)
    store.workspace.upsert_members(
        [ChannelMember(c, u, create_at=D - 30 * DAY) for u, cs in members.items() for c in cs]
        + [ChannelMember(c.id, wl.replay.id) for c in channels]
    )
    batch: list[Post] = []
    for i, ch in enumerate(channels):
        lines = logs[LOGS[i % len(LOGS)]]
        start_hour = (i * 5) % 24
        made: list[Post] = []
        for day in range(-8, 1):
            base = D + day * DAY + start_hour * HOUR + (i * 7919) % 600_000
            for j, (secs, nick, text) in enumerate(lines):
                t = base + secs * 3000 + j  # times stretched threefold: ~8 hours a day
                made.append(
                    Post(
                        id=new_id(),
                        channel_id=ch.id,
                        user_id=authors[nick].id,
                        message=text,
                        create_at=t,
                        update_at=t,
                    )
                )
        wl.posts[ch.id] = made
        batch.extend(made)
        if len(batch) >= 20_000:
            store.workspace.upsert_posts(batch)
            batch = []
    if batch:
        store.workspace.upsert_posts(batch)
    return wl


def schedules(wl: Workload) -> list[ScheduledRecap]:
    out = []
    for u in wl.users:
        kinds = [("daily", 127, "last_24h")]
        if u.id in wl.weekly:
            kinds.append(("weekly", MONDAY_BIT, "last_week"))
        for title, days, period in kinds:
            sr = ScheduledRecap(
                id=new_id(),
                user_id=u.id,
                title=title,
                days_of_week=days,
                time_of_day="09:00",
                timezone=wl.zone_of[u.id],
                time_period=period,
                channel_mode="specific",
                channel_ids=wl.members[u.id],
                agent_id="llm",
                create_at=D - DAY,
                update_at=D - DAY,
            )
            sr.next_run_at = sr.compute_next_run_at(D - 1)
            out.append(sr)
    return out


def settings_for(url: str, base_url: str, cache_hours: float, concurrency: int) -> Settings:
    return load_settings(
        database_url=url,
        llm_concurrency=concurrency,
        agents={
            "llm": {
                "type": "openai",
                "base_url": base_url,
                "model": "bench",
                "max_retries": 3,
                "timeout_seconds": 120,
            }
        },
        default_agent="llm",
        ai_recaps={
            # The whole cost is measured: no administrator's limit cuts a window.
            "max_posts_per_recap": -1,
            "max_posts_per_day": -1,
            "max_tokens_per_recap": -1,
            "max_recaps_per_day": -1,
            "part_cache_hours": cache_hours,
        },
        jobs={
            "poll_interval_seconds": 0.2,
            "scheduler_poll_interval_seconds": 0.2,
            # Enough recaps at once that the 32 agent slots, not the job pool, are the limit.
            "worker_concurrency": 64,
            "heartbeat_interval_seconds": 5,
            # The clock jumps hours between waves: nothing may look wedged across a jump.
            "wedged_job_timeout_seconds": 3 * 86_400,
        },
        # Recaps are announced by a job of their own (not timed here); no direct messages.
        delivery={"direct_message": False},
    )


def fake_call(port: int, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}{path}"
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as resp:
        out: dict[str, Any] = json.loads(resp.read() or b"{}")
        return out


def reset(store: Store, srs: list[ScheduledRecap]) -> None:
    with store.db.transaction() as conn:
        for table in (recap_channels, recaps, jobs, part_cache, scheduled_recaps):
            conn.execute(table.delete())
    for i in range(0, len(srs), 500):
        with store.db.transaction() as conn:
            for sr in srs[i : i + 500]:
                store.scheduled_recaps.save(sr, conn=conn)


async def prewarm(store: Store, settings: Settings, clock: OffsetClock, wl: Workload) -> int:
    """The stretches the previous days' recaps left in the cache: one replay per channel of
    the window from a week before to the last wave of the day before (17:00 UTC)."""
    chat = LocalChatSource(store, settings.site_url)
    agent = OpenAIAgent("llm", settings.agents["llm"])
    cache = DatabasePartCache(store, settings, clock)
    summarizer = ChannelSummarizer(chat, agent, asyncio.Semaphore(32), cache=cache)
    reader = wl.replay
    end = D - DAY + 17 * HOUR
    clock.jump(end)
    limit = asyncio.Semaphore(16)

    async def one(ch: Channel) -> None:
        async with limit:
            job = ChannelJob(ch.id, reader, "last_week", end)
            job.now_ms = end - 1
            # The week before the measured day's windows, as the previous days saw it.
            await summarizer.summarize(job, PostBudget(-1, [ch.id]))

    await asyncio.gather(*(one(c) for c in wl.channels))
    await agent.aclose()
    return store.part_cache.count()


async def run_day(
    store: Store, settings: Settings, clock: OffsetClock, expected: dict[int, int]
) -> tuple[list[tuple[int, float]], Counter[str], dict[str, int]]:
    clock.jump(D - 60_000)
    rt = Runtime.build(settings, store=store, clock=clock, node_id="bench")
    rt.jobs.set_leadership(StaticLeadership(term=1))
    stop = asyncio.Event()
    task = asyncio.create_task(rt.jobs.run(stop))
    waves: list[tuple[int, float]] = []
    try:
        for due in sorted(expected):
            clock.jump(due)
            t0 = time.perf_counter()
            rt.jobs.wake_scheduler("scheduled_recap", due)
            while True:
                done = await asyncio.to_thread(finished_count, store, due)
                if done >= expected[due]:
                    break
                await asyncio.sleep(0.1)
            waves.append((due, time.perf_counter() - t0))
            # Deliveries and the like finish before the clock jumps (not timed).
            while await asyncio.to_thread(live_jobs, store):
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    statuses: Counter[str] = Counter()
    cost = {"calls": 0, "parts": 0, "reused": 0, "prompt": 0, "completion": 0}
    with store.db.transaction() as conn:
        q = sa.select(
            recaps.c.status,
            recaps.c.agent_calls,
            recaps.c.parts_total,
            recaps.c.parts_reused,
            recaps.c.prompt_tokens,
            recaps.c.completion_tokens,
        ).where(recaps.c.scheduled_recap_id != "")
        for status, calls, parts, reused, prompt, completion in conn.execute(q):
            statuses[status] += 1
            cost["calls"] += calls
            cost["parts"] += parts
            cost["reused"] += reused
            cost["prompt"] += prompt
            cost["completion"] += completion
    return waves, statuses, cost


def live_jobs(store: Store) -> int:
    with store.db.transaction() as conn:
        q = (
            sa.select(sa.func.count())
            .select_from(jobs)
            .where(jobs.c.status.in_(["pending", "in_progress", "cancel_requested"]))
        )
        return int(conn.execute(q).scalar_one())


def finished_count(store: Store, due: int) -> int:
    with store.db.transaction() as conn:
        q = (
            sa.select(sa.func.count())
            .select_from(recaps)
            .where(
                recaps.c.scheduled_for == due,
                recaps.c.status.in_(
                    [RecapStatus.COMPLETED.value, RecapStatus.FAILED.value, "skipped"]
                ),
            )
        )
        return int(conn.execute(q).scalar_one())


def mattermost_design(
    wl: Workload, expected_pairs: list[tuple[str, str, int, str]]
) -> dict[str, float]:
    """One call per (user, channel) with the window's latest 100 posts: recapd's map prompt
    (without the reader's lines, so a slight undercount) estimated at 4 bytes a token."""
    cache: dict[tuple[str, int, str], int] = {}
    calls = prompt = 0
    for channel_id, _user, due, period in expected_pairs:
        key = (channel_id, due, period)
        if key not in cache:
            start = due - (7 * DAY if period == "last_week" else DAY)
            window = [p for p in wl.posts[channel_id] if start <= p.create_at <= due]
            latest = window[-100:]
            if not latest:
                cache[key] = 0
            else:
                req = SummarizeRequest(
                    channel_id,
                    "chan",
                    [
                        AgentPost(p.id, wl.authors.get(p.user_id, "u"), p.create_at, p.message)
                        for p in latest
                    ],
                )
                rendered = summarize_prompt(req, json_in_prompt=False)
                cache[key] = estimate_tokens(rendered.system) + estimate_tokens(rendered.user)
        if cache[key]:
            calls += 1
            prompt += cache[key]
    return {"calls": calls, "prompt": prompt}


def pairs_of(wl: Workload) -> tuple[dict[int, int], list[tuple[str, str, int, str]]]:
    expected: dict[int, int] = defaultdict(int)
    pairs: list[tuple[str, str, int, str]] = []
    for u in wl.users:
        due = D + ZONES[wl.zone_of[u.id]] * HOUR
        periods = ["last_24h"] + (["last_week"] if u.id in wl.weekly else [])
        for period in periods:
            expected[due] += 1
            pairs.extend((c, u.id, due, period) for c in wl.members[u.id])
    return dict(expected), pairs


def open_db(kind: str, pg_url: str) -> str:
    OUT.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        path = OUT / "tokens.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        conninfo = to_sqlalchemy_url(pg_url).replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
        url = (
            sa.make_url(to_sqlalchemy_url(pg_url))
            .set(database=DB_NAME)
            .render_as_string(hide_password=False)
            .replace("postgresql+psycopg://", "postgresql://")
        )
    upgrade(Database(url))
    return url


async def main(args: argparse.Namespace) -> None:
    console = Console()
    if args.threads:
        # Store calls run in the loop's default executor (asyncio.to_thread).
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(args.threads))
    rng = random.Random(14)
    n_channels, n_users = (40, 200) if args.small else (args.channels, args.users)
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--delay", "0", "--count-tokens"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fake.stdout is not None
    port = int(fake.stdout.readline())
    base_url = f"http://127.0.0.1:{port}/v1"
    url = open_db(args.db, args.pg_url)
    store = Store.open(url)
    try:
        t0 = time.perf_counter()
        wl = build_workload(store, n_channels, n_users, rng)
        srs = schedules(wl)
        expected, pairs = pairs_of(wl)
        posts = sum(len(p) for p in wl.posts.values())
        console.print(
            f"workspace: {n_channels} channels, {n_users} users, {posts:,} posts, "
            f"{len(pairs):,} (user, channel) pairs in {sum(expected.values())} recaps "
            f"({time.perf_counter() - t0:.0f} s to build)"
        )
        results: dict[str, dict[str, Any]] = {}
        modes = [("cache off", 0.0), ("cache on", 192.0)]
        if args.only:
            # One mode alone, to profile it (no comparison is printed).
            modes = [m for m in modes if m[0] == f"cache {args.only}"]
        for mode, hours in modes:
            reset(store, srs)
            settings = settings_for(url, base_url, hours, args.concurrency)
            clock = OffsetClock(D - DAY)
            warm = 0
            if hours:
                fake_call(port, "/control", {"delay_s": 0})
                warm = await prewarm(store, settings, clock, wl)
            fake_call(port, "/control", {"delay_s": args.delay})
            fake_call(port, "/stats/reset", {})
            console.print(f"{mode}: measuring the day (pid {os.getpid()})")
            waves, statuses, cost = await run_day(store, settings, clock, expected)
            stats = fake_call(port, "/stats")
            wall = sum(w for _, w in waves)
            results[mode] = {
                "waves": waves,
                "wall": wall,
                "statuses": dict(statuses),
                "cost": cost,
                "stats": stats,
                "prewarmed_parts": warm,
                "busy_share": stats["busy_seconds"] / (args.concurrency * wall) if wall else 0,
            }
            console.print(f"{mode}: {dict(statuses)} in {wall:.1f} s; {stats}")
            console.print(f"{mode} waves: " + ", ".join(f"{w:.1f} s" for _, w in waves))
        fake_call(port, "/control", {"delay_s": 0})
        if args.only:
            return
        identical = await cold_warm_identical(store, url, base_url, wl)
        mm = mattermost_design(wl, pairs)
        report(console, args, results, mm, identical, n_channels, n_users, posts, len(pairs))
    finally:
        store.close()
        if fake.stdin:
            fake.stdin.close()
        fake.wait(10)


async def cold_warm_identical(store: Store, url: str, base_url: str, wl: Workload) -> bool:
    """One reader's recap of their channels, with an empty cache and then a warm one."""
    settings = settings_for(url, base_url, 192.0, 32)
    with store.db.transaction() as conn:
        conn.execute(part_cache.delete())
    reader = wl.users[1]
    now = D + ZONES[wl.zone_of[reader.id]] * HOUR + 1500
    clock = OffsetClock(now)
    out = []
    for _ in range(2):
        agent = OpenAIAgent("llm", settings.agents["llm"])
        s = ChannelSummarizer(
            LocalChatSource(store, settings.site_url),
            agent,
            asyncio.Semaphore(32),
            cache=DatabasePartCache(store, settings, clock),
        )
        shown = []
        for cid in wl.members[reader.id]:
            job = ChannelJob(cid, reader, "last_24h", now)
            r = await s.summarize(job, PostBudget(-1, [cid]))
            shown.append(
                (
                    [h.to_dict() for h in r.channel.highlights],
                    [a.to_dict() for a in r.channel.action_items],
                    r.parts_reused,
                )
            )
        await agent.aclose()
        out.append(shown)
    cold, warm = out
    reused = sum(x[2] for x in warm)
    return reused > 0 and [x[:2] for x in cold] == [x[:2] for x in warm]


def report(
    console: Console,
    args: argparse.Namespace,
    results: dict[str, dict[str, Any]],
    mm: dict[str, float],
    identical: bool,
    n_channels: int,
    n_users: int,
    posts: int,
    pairs: int,
) -> None:
    off, on = results["cache off"], results["cache on"]
    avg_completion = off["stats"]["completion_tokens"] / max(1, off["stats"]["calls"])
    mm_wall = mm["calls"] * args.delay / args.concurrency
    table = Table(title=f"A day of scheduled recaps ({n_channels} channels, {n_users} users)")
    for col in ("", "LLM calls", "input tokens", "output tokens", "wall time", "busy share"):
        table.add_column(col, justify="right")
    rows = []
    for name, r in (("cache off", off), ("cache on", on)):
        s = r["stats"]
        rows.append(
            (
                name,
                f"{s['calls']:,}",
                f"{s['prompt_tokens']:,}",
                f"{s['completion_tokens']:,}",
                f"{r['wall']:.1f} s",
                f"{100 * r['busy_share']:.0f} %",
            )
        )
    rows.append(
        (
            "Mattermost (computed)",
            f"{mm['calls']:,}",
            f"{mm['prompt']:,}",
            f"~{int(mm['calls'] * avg_completion):,}",
            f"≥ {mm_wall:.1f} s",
            "",
        )
    )
    for row in rows:
        table.add_row(*row)
    console.print(table)
    ratio = on["stats"]["prompt_tokens"] / max(1, off["stats"]["prompt_tokens"])
    speed = off["wall"] / max(1e-9, on["wall"])
    # What the calls alone take at this concurrency: the wall time of an idle machine whose
    # recapd work is small beside the model's (this one is shared and often loaded).
    bound_off = off["stats"]["calls"] * args.delay / args.concurrency
    bound_on = on["stats"]["calls"] * args.delay / args.concurrency
    console.print(
        f"LLM-bound time (calls x {args.delay} s / {args.concurrency}): cache off "
        f"{bound_off:.1f} s, cache on {bound_on:.1f} s ({bound_off / max(1e-9, bound_on):.1f}x); "
        f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    goals = [
        f"input tokens with the cache: {100 * ratio:.1f} % of cache-off (goal <= 20 %): "
        f"{'met' if ratio <= 0.2 else 'NOT met'}",
        f"the 09:00 herd: {speed:.1f}x sooner (goal >= 3x): {'met' if speed >= 3 else 'NOT met'}",
        "one reader's recap identical with a cold and a warm cache: "
        + ("yes" if identical else "NO"),
    ]
    for g in goals:
        console.print(g)
    waves = " | ".join(
        f"{dt.datetime.fromtimestamp(d / 1000, dt.UTC):%H:%M} {w_off:.1f}/{w_on:.1f} s"
        for (d, w_off), (_, w_on) in zip(off["waves"], on["waves"], strict=True)
    )
    console.print(f"waves (UTC, off/on): {waves}")
    console.print(
        f"cache on: {on['cost']['reused']:,} of {on['cost']['parts']:,} parts reused; "
        f"{on['prewarmed_parts']:,} parts left by the previous days (replayed, not counted)"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "tokens-results.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "posts": posts,
                "pairs": pairs,
                "results": results,
                "mattermost": mm,
                "identical": identical,
            },
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="40 channels, 200 users")
    parser.add_argument("--channels", type=int, default=200)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument(
        "--pg-url", default="postgresql://postgres@127.0.0.1:5432/test", help="admin URL"
    )
    parser.add_argument("--delay", type=float, default=0.3, help="seconds per LLM answer")
    parser.add_argument("--concurrency", type=int, default=32, help="agent calls at once")
    parser.add_argument(
        "--threads", type=int, default=0, help="threads for store calls (0: asyncio's default)"
    )
    parser.add_argument(
        "--only", choices=("off", "on"), help="run one mode alone (to profile it; no report)"
    )
    asyncio.run(main(parser.parse_args()))
