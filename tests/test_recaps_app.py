"""Making recaps end to end: the app, the recap job, the pipeline and real agents."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from typing import Any

import pytest

from recapd.app.recaps import TITLE_MAX_BYTES, default_title
from recapd.clock import FakeClock
from recapd.config import Settings, load_settings
from recapd.jobs.leader import StaticLeadership
from recapd.model.app_error import AppError
from recapd.model.job import JobType
from recapd.model.recap import ChannelStatus, Recap, RecapStatus
from recapd.runtime import Runtime
from recapd.store.store import Store
from tests.fake_openai import FakeOpenAI, Reply
from tests.jobhelpers import wait_until
from tests.workspace import Workspace, add_posts, make_workspace

T0 = 1_790_000_000_000
CHAT = [
    ("alice", "Morning all. The release is blocked on the flaky payments test."),
    ("bob", "I looked at it: the sandbox API times out under load."),
    ("carol", "We decided to mock the sandbox in CI and keep one nightly real run."),
    ("alice", "@dave can you update the CI config to use the mock by Friday?"),
    ("dave", "Sure, I'll do it today."),
    ("bob", "Who owns the nightly job? Nobody answered last week."),
]


def settings_for(url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "ai_recaps": {"cooldown_minutes": 0},
        "jobs": {
            "poll_interval_seconds": 0.2,
            "heartbeat_interval_seconds": 0.5,
            "retry_base_seconds": 0.05,
            "retry_max_seconds": 0.1,
            "max_attempts": 2,
        },
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return load_settings(database_url=url, **base)


def runtime_for(store: Store, clock: FakeClock | None = None, **overrides: Any) -> Runtime:
    rt = Runtime.build(
        settings_for(store.db.url, **overrides),
        store=store,
        clock=clock or FakeClock(T0 + 3_600_000),
        node_id="test-node",
    )
    rt.jobs._leadership = StaticLeadership()
    return rt


def team_workspace(store: Store) -> Workspace:
    ws = make_workspace(
        store,
        ["alice", "bob", "carol", "dave", "erin"],
        {"dev": ["alice", "bob", "carol", "dave"], "ops": ["alice", "bob"], "hr": ["erin"]},
    )
    add_posts(store, ws, "dev", CHAT, T0, root_of={4: 3})
    add_posts(
        store, ws, "ops", [("bob", "Disk on db2 is at 91%, I'll expand it tonight.")], T0 + 1000
    )
    return ws


async def run_until_done(rt: Runtime, user_id: str, recap_id: str, timeout: float = 20) -> Recap:
    stop = asyncio.Event()
    task = asyncio.create_task(rt.jobs.run(stop))
    try:

        async def done() -> bool:
            r = await rt.recaps.get(user_id, recap_id)
            return r.status in (RecapStatus.COMPLETED, RecapStatus.FAILED)

        await wait_until(done, timeout=timeout)
        return await rt.recaps.get(user_id, recap_id)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def test_manual_recap_with_the_extractive_agent(store: Store) -> None:
    ws = team_workspace(store)
    rt = runtime_for(store)
    alice = ws.users["alice"]
    chans = [ws.channels["dev"].id, ws.channels["ops"].id]

    async def main() -> Recap:
        recap = await rt.recaps.create(alice.id, title="", channel_ids=chans)
        assert recap.status == "pending" and recap.title == "Recap of Dev and Ops"
        jobs = store.jobs.list_page(type=JobType.RECAP)
        assert [j.dedupe_key for j in jobs] == [f"recap:{recap.id}"]
        return await run_until_done(rt, alice.id, recap.id)

    recap = asyncio.run(main())
    assert recap.status == "completed", recap.error
    assert recap.total_message_count == len(CHAT) + 1
    assert recap.prompt_tokens > 0
    by_name = {c.channel_name: c for c in recap.channels}
    dev = by_name["Dev"]
    assert dev.status == ChannelStatus.SUCCESS and dev.highlights
    dev_ids = {p.id for p in ws.posts if p.channel_id == ws.channels["dev"].id}
    cited = {i for h in dev.highlights for i in h.post_ids}
    cited |= {i for a in dev.action_items for i in a.post_ids}
    assert cited and cited <= dev_ids
    assert any(a.owner == "dave" for a in dev.action_items), dev.action_items
    links = asyncio.run(rt.chat.permalink(ws.posts[0]))
    assert links == f"http://127.0.0.1:8065/acme/pl/{ws.posts[0].id}"


def test_creation_checks(store: Store) -> None:
    ws = team_workspace(store)
    rt = runtime_for(store, ai_recaps={"max_channels_per_recap": 1})
    alice = ws.users["alice"].id

    def error_of(**kw: Any) -> AppError:
        args: dict[str, Any] = {"title": "t", "channel_ids": [ws.channels["dev"].id]} | kw
        with pytest.raises(AppError) as err:
            asyncio.run(rt.recaps.create(alice, **args))
        return err.value

    assert error_of(channel_ids=[]).id == "app.recap.create.channel_ids.app_error"
    assert error_of(channel_ids=["nope"]).id == "app.recap.create.channel_ids.app_error"
    e = error_of(channel_ids=[ws.channels["dev"].id, ws.channels["ops"].id])
    assert (e.id, e.status_code) == ("app.recap.max_channels_exceeded.app_error", 400)
    e = error_of(channel_ids=[ws.channels["hr"].id])
    assert (e.id, e.status_code) == ("app.recap.permission_denied", 403)
    # A public channel is named; a private one is not (its name is not the reader's to know).
    assert (e.message, e.params) == (
        "you cannot read channel hr",
        {"channel_id": ws.channels["hr"].id},
    )
    store.workspace.upsert_channels([dataclasses.replace(ws.channels["hr"], type="P")])
    e = error_of(channel_ids=[ws.channels["hr"].id])
    assert e.message == "you cannot read the chosen channel"
    with pytest.raises(AppError) as err:
        both = [ws.channels["dev"].id, ws.channels["hr"].id]
        asyncio.run(runtime_for(store).recaps.create(alice, title="t", channel_ids=both))
    assert err.value.message == "you cannot read one of the chosen channels"
    e = error_of(agent_id="no-such-agent")
    assert (e.id, e.status_code) == ("app.agent.unknown.app_error", 400)
    assert store.recaps.count() == 0 and store.jobs.list_page() == []


def test_default_titles_name_the_channels() -> None:
    assert default_title(["dev"]) == "Recap of dev"
    assert default_title(["dev", "ops"]) == "Recap of dev and ops"
    assert default_title(["dev", "ops", "hr"]) == "Recap of dev, ops and hr"
    many = [f"channel-number-{i}" for i in range(10)]
    assert default_title(many) == (
        "Recap of channel-number-0, channel-number-1, channel-number-2 and 7 more channels"
    )
    assert default_title([], 1) == "Recap of 1 channel"
    assert default_title([], 3) == "Recap of 3 channels"
    long = default_title(["x" * 400])
    assert len(long.encode()) <= TITLE_MAX_BYTES and long.endswith("\u2026")


def test_feature_flag_off_is_501(store: Store) -> None:
    ws = team_workspace(store)
    rt = runtime_for(store, enable_ai_recaps=False)
    with pytest.raises(AppError) as err:
        asyncio.run(
            rt.recaps.create(ws.users["alice"].id, title="t", channel_ids=[ws.channels["dev"].id])
        )
    assert (err.value.id, err.value.status_code) == ("api.recap.disabled.app_error", 501)


def test_cooldown_answers_429_with_the_wait(store: Store) -> None:
    ws = team_workspace(store)
    clock = FakeClock(T0 + 3_600_000)
    rt = runtime_for(store, clock, ai_recaps={"cooldown_minutes": 10})
    alice, dev = ws.users["alice"].id, ws.channels["dev"].id
    asyncio.run(rt.recaps.create(alice, title="a", channel_ids=[dev]))
    clock.advance(4 * 60_000)
    with pytest.raises(AppError) as err:
        asyncio.run(rt.recaps.create(alice, title="b", channel_ids=[dev]))
    assert (err.value.id, err.value.status_code) == ("app.recap.cooldown_active.app_error", 429)
    assert err.value.params["retry_after_seconds"] == 360
    status = asyncio.run(rt.recaps.limit_status(alice))
    assert status.cooldown_remaining_seconds == 360 and status.recaps_used_today == 1
    clock.advance(6 * 60_000)
    asyncio.run(rt.recaps.create(alice, title="c", channel_ids=[dev]))


def test_concurrent_manual_creations_never_exceed_the_daily_limit(store: Store) -> None:
    ws = team_workspace(store)
    rt = runtime_for(store, ai_recaps={"max_recaps_per_day": 3})
    alice, dev = ws.users["alice"].id, ws.channels["dev"].id

    async def main() -> list[Recap | BaseException]:
        return await asyncio.gather(
            *(rt.recaps.create(alice, title=str(i), channel_ids=[dev]) for i in range(10)),
            return_exceptions=True,
        )

    results = asyncio.run(main())
    made = [r for r in results if isinstance(r, Recap)]
    refused = [r for r in results if isinstance(r, AppError)]
    assert len(made) == 3 and len(refused) == 7
    assert {e.id for e in refused} == {"app.recap.max_recaps_reached.app_error"}
    assert len(store.jobs.list_page(type=JobType.RECAP)) == 3


def test_two_regenerates_never_interleave(store: Store) -> None:
    ws = team_workspace(store)
    rt = runtime_for(store)
    alice, dev = ws.users["alice"].id, ws.channels["dev"].id

    async def main() -> None:
        recap = await rt.recaps.create(alice, title="r", channel_ids=[dev])
        # Still being made: regenerate refuses instead of starting a second run.
        with pytest.raises(AppError) as err:
            await rt.recaps.regenerate(alice, recap.id)
        assert err.value.status_code == 409
        await run_until_done(rt, alice, recap.id)
        results = await asyncio.gather(
            rt.recaps.regenerate(alice, recap.id),
            rt.recaps.regenerate(alice, recap.id),
            return_exceptions=True,
        )
        assert sum(isinstance(r, Recap) for r in results) == 1
        assert sum(isinstance(r, AppError) and r.status_code == 409 for r in results) == 1
        live = [j for j in store.jobs.list_page(type=JobType.RECAP) if j.status == "pending"]
        assert len(live) == 1
        again = await run_until_done(rt, alice, recap.id)
        assert again.status == "completed" and len(again.channels) == 1

    asyncio.run(main())


def test_a_channel_left_since_asking_fails_alone_with_a_reason(store: Store) -> None:
    ws = team_workspace(store)
    rt = runtime_for(store)
    bob = ws.users["bob"].id

    async def main() -> Recap:
        recap = await rt.recaps.create(
            bob, title="r", channel_ids=[ws.channels["dev"].id, ws.channels["ops"].id]
        )
        # Bob leaves #ops before the job runs: membership is checked again at run time.
        with store.db.transaction() as conn:
            conn.exec_driver_sql(
                f"DELETE FROM channel_members WHERE channel_id = '{ws.channels['ops'].id}' "
                f"AND user_id = '{bob}'"
            )
        return await run_until_done(rt, bob, recap.id)

    recap = asyncio.run(main())
    assert recap.status == "completed"
    ops = next(c for c in recap.channels if c.channel_id == ws.channels["ops"].id)
    assert ops.status == "failed" and "no longer read" in ops.error
    assert ops.highlights == [] and ops.source_post_ids == []


def test_openai_agent_down_fails_the_recap_with_a_reason(store: Store) -> None:
    ws = team_workspace(store)
    with FakeOpenAI(default=lambda req: Reply.error(500, "upstream down")) as server:
        rt = runtime_for(
            store,
            agents={
                "llm": {
                    "type": "openai",
                    "model": "m",
                    "base_url": server.base_url,
                    "max_retries": 1,
                    "timeout_seconds": 5,
                }
            },
        )
        alice = ws.users["alice"].id
        rt.agents.get("llm").backoff_base_s = 0.01  # type: ignore[attr-defined]

        async def main() -> Recap:
            recap = await rt.recaps.create(
                alice, title="r", agent_id="llm", channel_ids=[ws.channels["dev"].id]
            )
            return await run_until_done(rt, alice, recap.id)

        recap = asyncio.run(main())
    assert recap.status == "failed"
    assert "Every channel failed" in recap.error and "AI agent" in recap.error
    assert recap.channels[0].status == "failed"


def test_openai_agent_recap_records_tokens_and_keeps_only_real_citations(store: Store) -> None:
    ws = team_workspace(store)
    dev_first = ws.posts[0].id
    answer = {
        "highlights": [{"text": "CI will mock the sandbox.", "post_ids": [dev_first, "zz" * 13]}],
        "action_items": [{"text": "Update CI config", "owner": "@dave", "post_ids": [dev_first]}],
    }
    with FakeOpenAI(default=lambda req: Reply.answer(answer)) as server:
        rt = runtime_for(
            store, agents={"llm": {"type": "openai", "model": "m", "base_url": server.base_url}}
        )
        alice = ws.users["alice"].id

        async def main() -> Recap:
            recap = await rt.recaps.create(
                alice, title="r", agent_id="llm", channel_ids=[ws.channels["dev"].id]
            )
            return await run_until_done(rt, alice, recap.id)

        recap = asyncio.run(main())
        prompt = server.chat_requests[0].user
    assert recap.status == "completed"
    ch = recap.channels[0]
    assert ch.highlights[0].post_ids == [dev_first]
    assert ch.action_items[0].owner == "dave"
    assert recap.prompt_tokens > 0 and recap.completion_tokens > 0
    assert "The release is blocked" in prompt


def test_a_huge_channel_is_map_reduced_within_the_per_call_budget(store: Store) -> None:
    ws = make_workspace(store, ["alice", "bob"], {"big": ["alice", "bob"]})
    n = 20_000
    lines = [
        ("alice" if i % 2 else "bob", f"message {i} about topic {i % 97} and more words")
        for i in range(n)
    ]
    add_posts(store, ws, "big", lines, T0, step_ms=100)
    context = 8_000
    with FakeOpenAI() as server:
        rt = runtime_for(
            store,
            ai_recaps={"max_posts_per_recap": -1, "max_posts_per_day": -1},
            agents={
                "llm": {
                    "type": "openai",
                    "model": "m",
                    "base_url": server.base_url,
                    "context_tokens": context,
                    "max_output_tokens": 512,
                }
            },
        )
        alice = ws.users["alice"].id

        async def main() -> Recap:
            recap = await rt.recaps.create(
                alice, title="big", agent_id="llm", channel_ids=[ws.channels["big"].id]
            )
            return await run_until_done(rt, alice, recap.id, timeout=120)

        recap = asyncio.run(main())
        requests = server.chat_requests
    assert recap.status == "completed", recap.error
    assert recap.total_message_count == n
    seen: set[int] = set()
    for req in requests:
        text = req.system + req.user
        assert len(text.encode()) / 4 <= context, "a call exceeded the context"
        seen.update(int(m) for m in re.findall(r"message (\d+) about", req.user))
    # Every post went to the model in some map call: nothing was silently dropped.
    assert seen == set(range(n))
    assert len(requests) > n // 1000  # many map calls, then merges


def test_a_long_channel_cannot_take_the_whole_post_budget(store: Store) -> None:
    ws = make_workspace(store, ["alice", "bob"], {"long": ["alice", "bob"], "short": ["alice"]})
    add_posts(store, ws, "long", [("bob", f"long {i}") for i in range(300)], T0, step_ms=1000)
    add_posts(store, ws, "short", [("alice", f"short {i}") for i in range(30)], T0, step_ms=1000)
    rt = runtime_for(store, ai_recaps={"max_posts_per_recap": 100, "max_posts_per_day": -1})
    alice = ws.users["alice"].id
    chans = [ws.channels["long"].id, ws.channels["short"].id]

    async def main() -> Recap:
        recap = await rt.recaps.create(alice, title="", channel_ids=chans)
        return await run_until_done(rt, alice, recap.id)

    recap = asyncio.run(main())
    assert recap.status == "completed", recap.error
    read = {c.channel_name: len(c.source_post_ids) for c in recap.channels}
    # The short channel is read whole and the long one gets the rest, its newest posts.
    assert read == {"Long": 70, "Short": 30}
    assert recap.total_message_count == 100
    # Nothing is dropped in silence: the card says what the limit left unread, and when.
    notices = {c.channel_name: c.notice for c in recap.channels}
    assert notices["Short"] == ""
    start = time.strftime("%H:%M", time.gmtime(T0 / 1000))
    end = time.strftime("%H:%M", time.gmtime((T0 + 229_000) / 1000))
    assert notices["Long"] == (
        f"The 230 oldest messages ({start}-{end} UTC) were not read: "
        "the limit for this recap is 100 messages."
    )
    # ... and it is kept with the recap (both engines), as are the open questions.
    stored = store.recaps.get(recap.id)
    assert {c.channel_name: c.notice for c in stored.channels} == notices


def test_open_questions_and_bots_reach_the_stored_recap(store: Store) -> None:
    members = ["alice", "bob", "mootbot", "deployer"]
    ws = make_workspace(store, members, {"dev": members})
    # A bot account by its flag (Mattermost's and Slack's is_bot), whatever its name.
    ws.users["deployer"].is_bot = True
    store.workspace.upsert_users([ws.users["deployer"]])
    add_posts(
        store,
        ws,
        "dev",
        [
            ("alice", "Does anyone know where the staging credentials are kept these days?"),
            ("mootbot", "Commands Available: [TOPIC], [IDEA], [ACTION], [AGREED], [LINK]"),
            ("bob", "[ACTION] alice and bob to rotate the staging keys before Friday"),
            ("deployer", "@bob please approve the production deploy of build 4411 now"),
        ],
        T0,
    )
    rt = runtime_for(store)
    alice = ws.users["alice"].id

    async def main() -> Recap:
        recap = await rt.recaps.create(alice, title="", channel_ids=[ws.channels["dev"].id])
        return await run_until_done(rt, alice, recap.id)

    recap = asyncio.run(main())
    (dev,) = store.recaps.get(recap.id).channels
    assert [q.post_ids for q in dev.open_questions] == [[ws.posts[0].id]]
    assert [(a.text, a.owner, a.explicit) for a in dev.action_items] == [
        ("Rotate the staging keys before Friday", "alice, bob", True)
    ]
    assert all("mootbot" not in h.text.lower() for h in dev.highlights)
    # The flagged bot's request is neither a highlight nor an action item.
    assert all("deploy" not in h.text for h in dev.highlights)
    assert all("deploy" not in a.text for a in dev.action_items)
