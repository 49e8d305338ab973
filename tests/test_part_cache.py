"""The part cache: reuse, invalidation, expiry, single flight and privacy, on SQLite and
PostgreSQL, through the real pipeline, chat source and agents (the LLM over loopback)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from recapd import metrics
from recapd.agents.base import Agent, AgentResult, TokenUsage
from recapd.agents.extractive import ExtractiveAgent
from recapd.agents.openai_agent import OpenAIAgent
from recapd.app.part_cache import DatabasePartCache
from recapd.chat.local import LocalChatSource
from recapd.clock import FakeClock
from recapd.config import AgentSettings, Settings, load_settings
from recapd.jobs.housekeeping import PartCacheCleanup
from recapd.jobs.leader import StaticLeadership
from recapd.jobs.scheduler import SchedulerContext
from recapd.model.chat import Post
from recapd.model.recap import Highlight
from recapd.store.store import Store
from recapd.store.tables import channel_members, part_cache
from recapd.summarize.budget import PostBudget
from recapd.summarize.part_cache import PartKey
from recapd.summarize.pipeline import ChannelJob, ChannelSummarizer, ChannelSummary
from tests.fake_openai import FakeOpenAI
from tests.workspace import Workspace, add_posts, make_workspace

HOUR = 3_600_000
DAY = 24 * HOUR
D0 = 1_790_035_200_000 - 1_790_035_200_000 % DAY
NOW = D0 + DAY + 9 * HOUR + 30_000  # 09:00:30 UTC
LINES = [
    ("alice", "The release is blocked on the flaky payments test."),
    ("bob", "The sandbox API times out under load, I checked the logs."),
    ("carol", "We decided to mock the sandbox in CI and keep one nightly real run."),
    ("alice", "@dave can you update the CI config to use the mock by Friday?"),
    ("dave", "Sure, I will do it today."),
    ("bob", "Who owns the nightly job? Nobody answered last week."),
]


def settings(url: str, **ai: Any) -> Settings:
    return load_settings(database_url=url, ai_recaps={"cooldown_minutes": 0, **ai})


def workspace(store: Store) -> Workspace:
    ws = make_workspace(
        store,
        ["alice", "bob", "carol", "dave", "erin"],
        {"dev": ["alice", "bob", "carol", "dave"], "hr": ["erin"]},
    )
    # 36 posts, one every 40 minutes over the day before NOW: several whole stretches.
    add_posts(store, ws, "dev", LINES * 6, NOW - DAY + 20 * 60_000, step_ms=40 * 60_000)
    post_before_the_window(store, ws)
    return ws


def post_before_the_window(store: Store, ws: Workspace) -> None:
    """A post 20 s before the window's start (09:00:10 the day before): the window's first
    hour then stays a partial edge, made for each recap alone."""
    before = add_posts(store, ws, "dev", [("carol", "Morning all")], NOW - DAY - 20_000)
    ws.posts.remove(before[0])


def summarizer(
    store: Store, st: Settings, clock: FakeClock, agent: Agent | None = None, *, cache: bool = True
) -> ChannelSummarizer:
    chat = LocalChatSource(store, st.site_url)
    part_cache = DatabasePartCache(store, st, clock, poll_seconds=0.05) if cache else None
    return ChannelSummarizer(
        chat, agent or ExtractiveAgent(), asyncio.Semaphore(8), cache=part_cache
    )


def recap(s: ChannelSummarizer, ws: Workspace, reader: str, now: int = NOW) -> ChannelSummary:
    job = ChannelJob(ws.channels["dev"].id, ws.users[reader], "last_24h", now)
    return asyncio.run(s.summarize(job, PostBudget(-1, [job.channel_id])))


def shown(summary: ChannelSummary) -> tuple[Any, Any]:
    c = summary.channel
    return (
        [h.to_dict() for h in c.highlights],
        [a.to_dict() for a in c.action_items],
    )


def openai_agent(server: FakeOpenAI) -> OpenAIAgent:
    return OpenAIAgent(
        "llm",
        AgentSettings(type="openai", model="m", base_url=server.base_url, max_retries=0),
    )


def test_single_reader_recap_identical_cold_and_warm(store: Store) -> None:
    ws = workspace(store)
    st, clock = settings(store.db.url), FakeClock(NOW)
    off = recap(summarizer(store, st, clock, cache=False), ws, "alice")
    cold = recap(summarizer(store, st, clock), ws, "alice")
    warm = recap(summarizer(store, st, clock), ws, "alice")
    assert shown(cold) == shown(warm)
    # Without the cache the window is not cut into stretches: one part, as before.
    assert off.parts == 1 and off.channel.highlights
    assert cold.channel.highlights
    assert cold.parts == warm.parts > 2
    assert cold.parts_reused == 0
    # Every whole stretch came back from the cache; only the partial edges were made again.
    whole = store.part_cache.count()
    assert warm.parts_reused == whole > 0
    assert warm.calls == cold.calls - whole


def test_single_reader_identical_cold_and_warm_with_an_llm(store: Store) -> None:
    ws = workspace(store)
    st, clock = settings(store.db.url), FakeClock(NOW)
    with FakeOpenAI() as server:
        cold = recap(summarizer(store, st, clock, openai_agent(server)), ws, "alice")
        cold_calls = len(server.chat_requests)
        warm = recap(summarizer(store, st, clock, openai_agent(server)), ws, "alice")
        warm_calls = len(server.chat_requests) - cold_calls
    assert shown(cold) == shown(warm)
    assert cold.usage.prompt_tokens > 0
    assert warm.parts_reused == store.part_cache.count() > 0
    assert warm_calls == cold_calls - warm.parts_reused
    assert warm.tokens_saved > 0


def test_readers_share_parts_and_the_map_never_names_a_reader(store: Store) -> None:
    ws = workspace(store)
    st, clock = settings(store.db.url), FakeClock(NOW)
    with FakeOpenAI() as server:
        alice = recap(summarizer(store, st, clock, openai_agent(server)), ws, "alice")
        bob = recap(summarizer(store, st, clock, openai_agent(server)), ws, "bob")
        prompts = [r.system + r.user for r in server.chat_requests]
    # Everything but the partial edge at the start of the window (09:00:30 to 10:00).
    assert bob.parts_reused == store.part_cache.count() == alice.parts - 1
    assert not any("@alice" in p.split("BEGIN_CONVERSATION")[0] for p in prompts)
    assert not any("for one reader" in p for p in prompts)


def edit(store: Store, post: Post, **changes: Any) -> None:
    fields = {"update_at": post.update_at + 1, **changes}
    updated = Post(**{**{f: getattr(post, f) for f in post.__slots__}, **fields})
    store.workspace.upsert_posts([updated])


def test_edits_deletions_and_late_posts_make_new_entries(store: Store) -> None:
    ws = workspace(store)
    st, clock = settings(store.db.url), FakeClock(NOW)
    with FakeOpenAI() as server:

        def run_and_new_prompts() -> tuple[ChannelSummary, list[str]]:
            before = len(server.chat_requests)
            s = recap(summarizer(store, st, clock, openai_agent(server)), ws, "alice")
            return s, [r.user for r in server.chat_requests[before:]]

        first, _ = run_and_new_prompts()
        whole = entries = store.part_cache.count()
        assert whole == first.parts - 1 > 3  # all but the partial edge at the start

        # An edit inside a whole stretch: that stretch only is summarized again, with the
        # new text; the old entry is never served.
        target = ws.posts[10]
        edit(store, target, message="EDITED: the release moves to Monday", edit_at=NOW - 1)
        after_edit, prompts = run_and_new_prompts()
        assert after_edit.parts_reused == whole - 1
        (changed,) = [p for p in prompts if target.id in p]
        assert "EDITED" in changed
        assert store.part_cache.count() == entries + 1

        # A deletion: the stretch is made again without the post.
        gone = ws.posts[20]
        edit(store, gone, delete_at=NOW - 1)
        after_delete, prompts = run_and_new_prompts()
        assert after_delete.parts_reused == whole - 1
        assert all(gone.id not in p for p in prompts)

        # A late post (imported now, dated inside an old stretch): new entry for that one.
        late = add_posts(store, ws, "dev", [("erin", "LATE: found the root cause")], NOW - 5 * HOUR)
        ws.posts.remove(late[0])
        after_late, prompts = run_and_new_prompts()
        assert after_late.parts_reused == whole - 1
        assert any("LATE" in p for p in prompts)


def test_entries_expire_and_the_cleanup_deletes_them(store: Store) -> None:
    ws = workspace(store)
    st, clock = settings(store.db.url, part_cache_hours=2), FakeClock(NOW)
    recap(summarizer(store, st, clock), ws, "alice")
    entries = store.part_cache.count()
    assert entries > 0
    clock.advance(2 * HOUR)  # expired; the same window read again is made again
    again = recap(summarizer(store, st, clock), ws, "alice", now=NOW)
    assert again.parts_reused == 0
    assert store.part_cache.count() == entries  # the expired rows were taken over, not added
    clock.advance(2 * HOUR)
    ctx = SchedulerContext(clock.now_ms(), 1, None, StaticLeadership(term=1), st)  # type: ignore[arg-type]
    asyncio.run(PartCacheCleanup(store).schedule_job(ctx))
    assert store.part_cache.count() == 0


def test_a_reader_removed_from_the_channel_gets_nothing_from_the_cache(store: Store) -> None:
    ws = workspace(store)
    st, clock = settings(store.db.url), FakeClock(NOW)
    warm = recap(summarizer(store, st, clock), ws, "bob")
    assert warm.channel.highlights and store.part_cache.count() > 0
    with store.db.transaction() as conn:
        conn.execute(
            sa.delete(channel_members).where(
                channel_members.c.channel_id == ws.channels["dev"].id,
                channel_members.c.user_id == ws.users["bob"].id,
            )
        )
    hits = metrics.PART_CACHE_LOOKUPS.labels("hit")._value.get()
    removed = recap(summarizer(store, st, clock), ws, "bob")
    assert removed.channel.status == "failed"
    assert removed.channel.error == "You can no longer read this channel."
    assert removed.channel.highlights == [] and removed.channel.source_post_ids == []
    assert removed.parts == removed.parts_reused == 0
    assert metrics.PART_CACHE_LOOKUPS.labels("hit")._value.get() == hits
    # Erin was never in the (private to its members) channel: the same.
    erin = recap(summarizer(store, st, clock), ws, "erin")
    assert erin.channel.status == "failed" and erin.parts == 0


KEY = PartKey("c" * 26, "agent", "v1", D0, D0 + HOUR, 1, 1, 1, "digest")
RESULT = AgentResult([Highlight("one", ["p1"])], [], TokenUsage(100, 20), [Highlight("q?", [])])


def test_concurrent_lookups_compute_once(store: Store) -> None:
    cache = DatabasePartCache(store, settings(store.db.url), FakeClock(NOW), poll_seconds=0.05)
    computed = 0

    async def compute() -> AgentResult:
        nonlocal computed
        computed += 1
        await asyncio.sleep(0.3)
        return RESULT

    async def main() -> list[Any]:
        return await asyncio.gather(*(cache.get_or_compute(KEY, compute) for _ in range(6)))

    outcomes = asyncio.run(main())
    assert computed == 1
    assert sorted(o.reused for o in outcomes) == [False] + [True] * 5
    for o in outcomes:
        assert o.result.highlights == RESULT.highlights
        assert o.result.open_questions == RESULT.open_questions


def test_a_failed_computation_releases_its_claim(store: Store) -> None:
    cache = DatabasePartCache(store, settings(store.db.url), FakeClock(NOW))

    async def fail() -> AgentResult:
        raise RuntimeError("model down")

    async def ok() -> AgentResult:
        return RESULT

    with pytest.raises(RuntimeError):
        asyncio.run(cache.get_or_compute(KEY, fail))
    assert store.part_cache.count() == 0
    assert not asyncio.run(cache.get_or_compute(KEY, ok)).reused
    assert asyncio.run(cache.get_or_compute(KEY, ok)).reused


def test_an_abandoned_claim_is_taken_over(store: Store) -> None:
    st = settings(store.db.url, part_cache_claim_seconds=60)
    clock = FakeClock(NOW)
    meta_claimed = store.part_cache.claim(
        KEY.cache_key, _meta(), "dead-run", NOW - 61_000, NOW + DAY
    )
    assert meta_claimed

    async def ok() -> AgentResult:
        return RESULT

    outcome = asyncio.run(DatabasePartCache(store, st, clock).get_or_compute(KEY, ok))
    assert not outcome.reused
    row = store.part_cache.get(KEY.cache_key)
    assert row is not None and row.status == "ready" and row.claim != "dead-run"


def _meta() -> Any:
    from recapd.store.part_cache_store import PartMeta

    return PartMeta(KEY.channel_id, KEY.agent_id, KEY.start_ms, KEY.end_ms)


def test_cache_off_stores_nothing(store: Store) -> None:
    ws = workspace(store)
    st, clock = settings(store.db.url, part_cache_hours=0), FakeClock(NOW)
    s = recap(summarizer(store, st, clock), ws, "alice")
    assert s.channel.highlights and s.parts_reused == 0
    assert store.part_cache.count() == 0


_TWO_PROCESS_SCRIPT = """
import asyncio, json, sys, time
from pathlib import Path
from recapd.agents.base import AgentResult, TokenUsage
from recapd.app.part_cache import DatabasePartCache
from recapd.clock import SystemClock
from recapd.config import load_settings
from recapd.model.recap import Highlight
from recapd.store.store import Store
from recapd.summarize.part_cache import PartKey

url, go, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
store = Store.open(url)
cache = DatabasePartCache(store, load_settings(database_url=url), SystemClock(), poll_seconds=0.05)
key = PartKey("c" * 26, "agent", "v1", 0, 3600000, 1, 1, 1, "two-processes")
computed = []

async def compute():
    computed.append(name)
    await asyncio.sleep(1.0)
    return AgentResult([Highlight("made by " + name, ["p1"])], [], TokenUsage(10, 2))

print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
outcome = asyncio.run(cache.get_or_compute(key, compute))
print(json.dumps({"computed": bool(computed), "text": outcome.result.highlights[0].text}))
"""


def test_single_flight_across_two_processes(pg_url: str, tmp_path: Path) -> None:
    # Two processes (two nodes) on one PostgreSQL want the same part at the same moment.
    db_url = pg_url
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _TWO_PROCESS_SCRIPT, db_url, str(go), name],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("one", "two")
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()  # both start at once
    results = [json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in procs]
    assert sorted(r["computed"] for r in results) == [False, True]
    assert results[0]["text"] == results[1]["text"]
    with Store.open(db_url).db.transaction() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(part_cache)).scalar_one() == 1


def test_recaps_record_their_cost_and_administrators_see_it(store: Store) -> None:
    from tests.test_web import made_recap, make_site

    site = make_site(store)
    cold_id = made_recap(site, "alice")
    warm_id = made_recap(site, "bob")
    cold = store.recaps.get(cold_id)
    warm = store.recaps.get(warm_id)
    assert cold.status == warm.status == "completed"
    assert cold.total_message_count == warm.total_message_count > 0
    assert cold.agent_calls > 0 and cold.parts_total > 0 and cold.parts_reused == 0
    # Bob's recap at the same moment finds Alice's parts: the whole stretches were reused.
    assert warm.parts_total == cold.parts_total
    assert warm.parts_reused == store.part_cache.count() > 0
    assert warm.agent_calls == cold.agent_calls - warm.parts_reused
    line = f"{warm.total_message_count} messages read, {warm.parts_reused} parts reused"
    assert line not in site.client("bob").http.get(f"/recaps/{warm_id}").text
    store.tokens.set_roles(site.user("bob"), "system_admin")
    assert line in site.client("bob").http.get(f"/recaps/{warm_id}").text
    scrape = site.client().http.get("/metrics").text
    assert 'recapd_part_cache_lookups_total{result="hit"}' in scrape
    assert "recapd_part_cache_tokens_saved_total" in scrape


def test_another_model_or_agent_never_reuses_a_part(store: Store) -> None:
    ws = workspace(store)
    st, clock = settings(store.db.url), FakeClock(NOW)
    with FakeOpenAI() as server:
        first = recap(summarizer(store, st, clock, openai_agent(server)), ws, "alice")
        other = OpenAIAgent(
            "llm", AgentSettings(type="openai", model="m2", base_url=server.base_url)
        )
        second = recap(summarizer(store, st, clock, other), ws, "alice")
    offline = recap(summarizer(store, st, clock), ws, "alice")
    assert first.parts_reused == second.parts_reused == offline.parts_reused == 0
    assert store.part_cache.count() == 3 * (first.parts - 1)
