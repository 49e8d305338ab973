"""Recap pipeline benchmark: channels summarized per second, agent-call concurrency against a
slow LLM server, and peak memory for one huge window.

    python3 bench/pipeline.py [--channels 200] [--posts 100] [--big 50000]

1. The extractive agent: `--channels` channels of `--posts` posts each in a SQLite workspace,
   summarized through ChannelSummarizer and LocalChatSource (the real path of a recap job);
   channels per second.
2. An LLM server on loopback that answers every call after 1 s (tests/fake_openai.py, the
   OpenAI wire format) and 64 channels at once under the node-wide limit of 16 calls: how busy
   the 16 slots were (target: at least 90 %).
3. Peak memory (RSS) of a fresh process summarizing one `--big`-post window with the
   extractive agent through map-reduce (target: under 300 MB).
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
import resource
import subprocess
import threading
import time

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(ROOT))
from tests.fake_openai import FakeOpenAI, RecordedRequest, Reply, echo_answer

from recapd.app.agents import AgentPool
from recapd.chat.local import LocalChatSource
from recapd.config import load_settings
from recapd.model.chat import Channel, ChannelMember, Post, Team, User
from recapd.model.ids import new_id
from recapd.store.migrate import upgrade
from recapd.store.store import Store
from recapd.summarize.budget import PostBudget
from recapd.summarize.pipeline import ChannelJob, ChannelSummarizer

T0 = 1_790_000_000_000
WORDS = (
    "deploy",
    "release",
    "review",
    "merge",
    "test",
    "flaky",
    "build",
    "cache",
    "database",
    "index",
    "migration",
    "schema",
    "ticket",
    "customer",
    "outage",
    "alert",
    "dashboard",
    "metric",
    "latency",
    "timeout",
    "retry",
    "queue",
    "worker",
    "owner",
    "decision",
    "agreed",
    "blocked",
    "tomorrow",
    "friday",
    "please",
    "could",
    "someone",
    "update",
    "docs",
)


def build_workspace(path: Path, channels: int, posts: int) -> tuple[Store, User, list[str]]:
    """A SQLite workspace: one reader, `channels` channels of `posts` posts each."""
    if path.exists():
        path.unlink()
    store = Store.open(f"sqlite:///{path}")
    upgrade(store.db)
    ws = store.workspace
    team = Team(id=new_id(), name="bench")
    users = [User(id=new_id(), username=f"user{i}", timezone="UTC") for i in range(20)]
    chans = [Channel(id=new_id(), team_id=team.id, name=f"c{i}") for i in range(channels)]
    ws.upsert_teams([team])
    ws.upsert_users(users)
    ws.upsert_channels(chans)
    ws.upsert_members([ChannelMember(c.id, u.id) for c in chans for u in users])
    batch: list[Post] = []
    for ci, ch in enumerate(chans):
        roots: list[str] = []
        for i in range(posts):
            words = [WORDS[(ci * 7 + i * 13 + k * 5) % len(WORDS)] for k in range(14)]
            text = " ".join(words)
            if i % 9 == 0:
                text = f"@user{(i + 1) % 20} can you {text}?"
            root = roots[-1] if roots and i % 4 == 3 else ""
            p = Post(
                id=new_id(),
                channel_id=ch.id,
                user_id=users[(i * 3 + ci) % 20].id,
                message=text,
                create_at=T0 + i * 1000,
                update_at=T0 + i * 1000,
                root_id=root,
            )
            if not root:
                roots.append(p.id)
            batch.append(p)
            if len(batch) >= 2000:
                ws.upsert_posts(batch)
                batch = []
    if batch:
        ws.upsert_posts(batch)
    return store, users[0], [c.id for c in chans]


async def summarize_all(
    store: Store, reader: User, channel_ids: list[str], agent_id: str, settings_kw: dict
) -> tuple[float, int]:
    settings = load_settings(database_url=store.db.url, **settings_kw)
    agent = AgentPool(settings).get(agent_id)
    chat = LocalChatSource(store, settings.site_url_or())
    summarizer = ChannelSummarizer(chat, agent, asyncio.Semaphore(settings.llm_concurrency))
    budget = PostBudget(-1)
    now = T0 + 6 * 86_400_000  # every post (1 s apart from T0) is inside the last week
    t0 = time.perf_counter()
    results = await asyncio.gather(
        *(
            summarizer.summarize(ChannelJob(c, reader, "last_week", now), budget)
            for c in channel_ids
        )
    )
    elapsed = time.perf_counter() - t0
    ok = sum(1 for r in results if r.channel.status == "success" and r.message_count)
    return elapsed, ok


def extractive_rate(args: argparse.Namespace) -> dict[str, float]:
    store, reader, chans = build_workspace(OUT / "pipeline.db", args.channels, args.posts)
    try:
        elapsed, ok = asyncio.run(summarize_all(store, reader, chans, "extractive", {}))
    finally:
        store.close()
    return {"channels": len(chans), "ok": ok, "seconds": elapsed, "per_s": ok / elapsed}


class Busy:
    """Counts calls in flight at the fake server, integrated over time."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.area = 0.0
        self.last = time.perf_counter()
        self.first_start = 0.0
        self.last_end = 0.0

    def _tick(self, delta: int) -> None:
        with self.lock:
            now = time.perf_counter()
            self.area += self.in_flight * (now - self.last)
            self.last = now
            self.in_flight += delta
            self.peak = max(self.peak, self.in_flight)
            if delta > 0 and not self.first_start:
                self.first_start = now
            if delta < 0:
                self.last_end = now

    def reply(self, request: RecordedRequest) -> Reply:
        self._tick(+1)
        time.sleep(self.delay_s)
        self._tick(-1)
        return echo_answer(request)


def llm_concurrency(args: argparse.Namespace) -> dict[str, float]:
    limit, n, delay = 16, 64, 1.0
    store, reader, chans = build_workspace(OUT / "pipeline-llm.db", n, 30)
    busy = Busy(delay)
    try:
        with FakeOpenAI(default=busy.reply) as server:
            kw = {
                "llm_concurrency": limit,
                "agents": {"llm": {"type": "openai", "model": "m", "base_url": server.base_url}},
            }
            elapsed, ok = asyncio.run(summarize_all(store, reader, chans, "llm", kw))
    finally:
        store.close()
    return {
        "channels": n,
        "ok": ok,
        "seconds": elapsed,
        "per_s": ok / elapsed,
        "peak_in_flight": busy.peak,
        "busy_share": busy.area / (limit * elapsed),
        # From the first call to the last answer: leaves out reading the 64 channels' posts.
        "busy_share_calls": busy.area / (limit * (busy.last_end - busy.first_start)),
        "ideal_seconds": n / limit * delay,
    }


def memory_child(big: int) -> None:
    """Runs in a fresh process: summarize one `big`-post window, print peak RSS (MB)."""
    path = OUT / "pipeline-big.db"
    store, reader, chans = build_workspace(path, 1, big)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        elapsed, ok = asyncio.run(summarize_all(store, reader, chans, "extractive", {}))
    finally:
        store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"posts": big, "ok": ok, "seconds": elapsed, "peak_mb": peak, "before_mb": base})
    )


def peak_memory(args: argparse.Namespace) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(args.big)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--channels", type=int, default=200)
    p.add_argument("--posts", type=int, default=100)
    p.add_argument("--big", type=int, default=50_000)
    p.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    OUT.mkdir(exist_ok=True)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    console = Console()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    console.print(f"{stamp}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ext = extractive_rate(args)
    llm = llm_concurrency(args)
    mem = peak_memory(args)
    table = Table(title="recap pipeline")
    for col in ("measure", "figure", "target"):
        table.add_column(col)
    table.add_row(
        f"extractive: {ext['channels']} channels x {args.posts} posts",
        f"{ext['per_s']:.1f} channels/s ({ext['seconds']:.1f} s)",
        "-",
    )
    table.add_row(
        f"LLM 1 s/call, {llm['channels']} channels, limit 16",
        f"{llm['busy_share_calls']:.0%} of the 16 slots busy from first call to last answer "
        f"({llm['busy_share']:.0%} of the whole run, reads included); peak "
        f"{llm['peak_in_flight']} in flight; {llm['seconds']:.1f} s (ideal "
        f"{llm['ideal_seconds']:.1f} s)",
        ">= 90 % " + ("OK" if llm["busy_share_calls"] >= 0.9 else "MISS"),
    )
    table.add_row(
        f"peak RSS, one {mem['posts']:,}-post window (map-reduce)",
        f"{mem['peak_mb']:.0f} MB ({mem['seconds']:.1f} s)",
        "< 300 MB " + ("OK" if mem["peak_mb"] < 300 else "MISS"),
    )
    console.print(table)
    for name in ("pipeline.db", "pipeline-llm.db", "pipeline-big.db"):
        for suffix in ("", "-wal", "-shm"):
            (OUT / (name + suffix)).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
