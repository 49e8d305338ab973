"""Whole stretches found by their fingerprint (post stamps, no text read): every change an
agent would see gives a new fingerprint, hits read no posts, and a source without stamps
reads as before. On SQLite and PostgreSQL."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import importlib.util
import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

from recapd.chat.local import LocalChatSource
from recapd.clock import FakeClock
from recapd.model.chat import Post, PostStamp, Reaction, User
from recapd.store.store import Store
from recapd.summarize.budget import PostBudget
from recapd.summarize.fingerprint import INPUT_MODULES, stretch_fingerprint, summarizer_prefix
from recapd.summarize.pipeline import ChannelJob, ChannelSummary
from tests.fake_openai import FakeOpenAI
from tests.test_part_cache import (
    DAY,
    LINES,
    NOW,
    edit,
    openai_agent,
    post_before_the_window,
    recap,
    settings,
    summarizer,
)
from tests.workspace import Workspace, add_posts, make_workspace


def workspace(
    store: Store, root_of: dict[int, int] | None = None, *, edge: bool = True
) -> Workspace:
    ws = make_workspace(
        store,
        ["alice", "bob", "carol", "dave", "erin"],
        {"dev": ["alice", "bob", "carol", "dave"], "hr": ["erin"]},
    )
    add_posts(
        store, ws, "dev", LINES * 6, NOW - DAY + 20 * 60_000, step_ms=40 * 60_000, root_of=root_of
    )
    if edge:
        post_before_the_window(store, ws)
    return ws


class Runs:
    """Recaps of #dev for alice through the LLM fake; the prompts each run sent."""

    def __init__(self, store: Store, server: FakeOpenAI) -> None:
        self.store, self.server = store, server
        self.st, self.clock = settings(store.db.url), FakeClock(NOW)

    def run(self) -> tuple[ChannelSummary, list[str]]:
        before = len(self.server.chat_requests)
        s = summarizer(self.store, self.st, self.clock, openai_agent(self.server))
        summary = recap(s, self.ws, "alice")
        return summary, [r.user for r in self.server.chat_requests[before:]]

    ws: Workspace


def first_run(store: Store, server: FakeOpenAI, ws: Workspace) -> tuple[Runs, int]:
    runs = Runs(store, server)
    runs.ws = ws
    first, _ = runs.run()
    whole = store.part_cache.count()
    assert whole == first.parts - 1 > 3  # all but the partial edge at the window's start
    again, prompts = runs.run()
    assert again.parts_reused == whole and len(prompts) == 1  # the edge only
    return runs, whole


def test_a_new_reaction_makes_its_stretch_again(store: Store) -> None:
    ws = workspace(store)
    with FakeOpenAI() as server:
        runs, whole = first_run(store, server, ws)
        post = ws.posts[10]
        # Reactions are added without moving the post's update_at: the count is stamped.
        liked = dataclasses.replace(post, reactions=[Reaction(ws.users["bob"].id, "+1", NOW)])
        store.workspace.upsert_posts([liked])
        after, prompts = runs.run()
        assert after.parts_reused == whole - 1
        assert any(post.id in p for p in prompts)
        assert store.part_cache.count() == whole + 1


def test_a_renamed_or_bot_author_makes_their_stretches_again(store: Store) -> None:
    ws = workspace(store)
    with FakeOpenAI() as server:
        runs, whole = first_run(store, server, ws)
        # Alice writes in every stretch but the last hour's: a new name is seen everywhere.
        store.workspace.upsert_users([dataclasses.replace(ws.users["alice"], username="alicia")])
        after, prompts = runs.run()
        assert after.parts_reused == 1 and len(prompts) == whole
        assert all("alicia" in p for p in prompts)
        # Dave flagged as a bot: the stretches he writes in change (he is marked a bot).
        dave_stretches = store.part_cache.count()
        store.workspace.upsert_users([dataclasses.replace(ws.users["dave"], is_bot=True)])
        bot, _ = runs.run()
        assert bot.parts_reused < whole
        assert store.part_cache.count() > dave_stretches


def test_a_renamed_channel_makes_every_stretch_again(store: Store) -> None:
    ws = workspace(store)
    with FakeOpenAI() as server:
        runs, _ = first_run(store, server, ws)
        store.workspace.upsert_channels(
            [dataclasses.replace(ws.channels["dev"], display_name="Developers")]
        )
        after, prompts = runs.run()
        assert after.parts_reused == 0
        assert all("Developers" in p for p in prompts)


def test_an_edited_thread_root_makes_the_stretch_of_its_replies_again(store: Store) -> None:
    # Post 3 (a whole stretch) starts a thread that post 30 (a later stretch) answers.
    ws = workspace(store, root_of={30: 3})
    with FakeOpenAI() as server:
        runs, whole = first_run(store, server, ws)
        root = ws.posts[3]
        edit(store, root, message="EDITED ROOT: the release waits for QA", edit_at=NOW - 1)
        after, prompts = runs.run()
        # The root's stretch and the stretch that shows it as context, nothing else.
        assert after.parts_reused == whole - 2
        assert sum("EDITED ROOT" in p for p in prompts) == 2


def test_a_late_post_or_a_deletion_is_never_answered_from_the_old_entry(store: Store) -> None:
    ws = workspace(store)
    with FakeOpenAI() as server:
        runs, whole = first_run(store, server, ws)
        gone = ws.posts[20]
        edit(store, gone, delete_at=NOW - 1)
        late = add_posts(store, ws, "dev", [("erin", "LATE: root cause found")], NOW - 5 * 3600_000)
        after, prompts = runs.run()
        assert after.parts_reused == whole - 2
        assert all(gone.id not in p for p in prompts)
        assert any("LATE" in p for p in prompts)
        assert gone.id not in after.channel.source_post_ids
        assert late[0].id in after.channel.source_post_ids


class CountingSource(LocalChatSource):
    """The local source, counting the posts it reads in full."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, "http://localhost")
        self.read_in_full: list[str] = []

    async def get_posts(self, post_ids: Sequence[str]) -> dict[str, Post]:
        self.read_in_full += post_ids
        return await super().get_posts(post_ids)

    async def posts_and_authors(
        self, post_ids: Sequence[str]
    ) -> tuple[dict[str, Post], dict[str, User]]:
        self.read_in_full += post_ids
        return await super().posts_and_authors(post_ids)

    async def iter_posts(
        self, channel_id: str, since_ms: int, until_ms: int, page_size: int = 200
    ) -> AsyncIterator[Post]:
        async for p in super().iter_posts(channel_id, since_ms, until_ms, page_size):
            self.read_in_full.append(p.id)
            yield p


class NoStamps:
    """A chat source that gives no stamps (as the Mattermost source): delegates the rest."""

    def __init__(self, inner: LocalChatSource) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in ("post_stamps", "post_stamps_by_id"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_a_warm_recap_reads_only_the_edges_in_full(store: Store) -> None:
    ws = workspace(store)
    st, clock = settings(store.db.url), FakeClock(NOW)
    cold = recap(summarizer(store, st, clock), ws, "alice")
    s = summarizer(store, st, clock)
    source = CountingSource(store)
    s.chat = source
    warm = recap(s, ws, "alice")
    assert warm.parts_reused == store.part_cache.count() > 0
    # Only the partial hour at the window's start (09:00:30 to 10:00 the day before).
    edge = {p.id for p in ws.posts if NOW - DAY <= p.create_at < NOW - DAY + 3_600_000 - 30_000}
    assert set(source.read_in_full) == edge
    assert warm.channel.source_post_ids == cold.channel.source_post_ids
    assert warm.message_count == cold.message_count == len(ws.posts)
    assert [h.to_dict() for h in warm.channel.highlights] == [
        h.to_dict() for h in cold.channel.highlights
    ]


def test_a_source_without_stamps_reads_everything_and_still_reuses_parts(store: Store) -> None:
    ws = workspace(store)
    st, clock = settings(store.db.url), FakeClock(NOW)
    stamped = recap(summarizer(store, st, clock), ws, "alice")
    s = summarizer(store, st, clock)
    source = CountingSource(store)
    s.chat = NoStamps(source)
    plain = recap(s, ws, "alice")
    assert set(source.read_in_full) >= {p.id for p in ws.posts}
    # Found by their content digest, as before fingerprints.
    assert plain.parts_reused == store.part_cache.count() > 0
    assert [h.to_dict() for h in plain.channel.highlights] == [
        h.to_dict() for h in stamped.channel.highlights
    ]


STAMP = PostStamp("p" * 26, 1, "", 2, 0, "u" * 26, "alice", False, 0)


def test_every_stamp_field_and_setting_changes_the_fingerprint() -> None:
    prefix = summarizer_prefix("llm", "v1", 4000, ["meetbot"])
    base = stretch_fingerprint(prefix, "c", "Dev", (0, 1, 1, 1), [STAMP], [])
    values: list[Any] = ["q" * 26, 9, "r" * 26, 3, 5, "v" * 26, "alicia", True, 1]
    fields: list[Any] = list(STAMP)
    changed = [PostStamp._make([*fields[:i], v, *fields[i + 1 :]]) for i, v in enumerate(values)]
    prints = {stretch_fingerprint(prefix, "c", "Dev", (0, 1, 1, 1), [s], []) for s in changed}
    assert base not in prints and len(prints) == len(changed)
    others = [
        stretch_fingerprint(prefix, "c", "Dev", (0, 1, 1, 1), [], [STAMP]),  # as context
        stretch_fingerprint(prefix, "c", "Developers", (0, 1, 1, 1), [STAMP], []),
        stretch_fingerprint(prefix, "d", "Dev", (0, 1, 1, 1), [STAMP], []),
        stretch_fingerprint(prefix, "c", "Dev", (0, 1, 2, 2), [STAMP], []),
        *(
            stretch_fingerprint(p, "c", "Dev", (0, 1, 1, 1), [STAMP], [])
            for p in (
                summarizer_prefix("llm", "v2", 4000, ["meetbot"]),
                summarizer_prefix("llm", "v1", 3000, ["meetbot"]),
                summarizer_prefix("llm", "v1", 4000, ["meetbot", "ci"]),
                summarizer_prefix("other", "v1", 4000, ["meetbot"]),
            )
        ),
    ]
    assert base not in others and len(set(others)) == len(others)


def test_a_herd_in_one_process_reads_each_new_stretch_once(store: Store) -> None:
    ws = workspace(store)
    st, clock = settings(store.db.url), FakeClock(NOW)
    source = CountingSource(store)
    s = summarizer(store, st, clock)
    s.chat = source
    readers = ["alice", "bob", "carol", "dave"] * 3

    async def herd() -> list[ChannelSummary]:
        jobs = [ChannelJob(ws.channels["dev"].id, ws.users[r], "last_24h", NOW) for r in readers]
        return await asyncio.gather(*(s.summarize(j, PostBudget(-1, [j.channel_id])) for j in jobs))

    results = asyncio.run(herd())
    whole = store.part_cache.count()
    assert whole > 3
    # Each whole stretch was read in full and made once; the others waited for it.
    edge = {p.id for p in ws.posts if p.create_at < NOW - DAY + 3_600_000 - 30_000}
    counts = Counter(source.read_in_full)
    assert all(counts[p.id] == 1 for p in ws.posts if p.id not in edge)
    # Made once each, plus every reader's partial edge and merge.
    assert sum(r.calls for r in results) == whole + 2 * len(readers)
    assert sum(r.parts_reused for r in results) == whole * (len(readers) - 1)
    shown: dict[str, set[str]] = {}
    for reader, r in zip(readers, results, strict=True):
        shown.setdefault(reader, set()).add(json.dumps([h.to_dict() for h in r.channel.highlights]))
    assert all(len(v) == 1 for v in shown.values())  # each reader's recaps alike


def test_a_first_hour_with_no_post_before_the_window_is_shared(store: Store) -> None:
    # Nothing between 09:00 and the window's start (09:00:30): the first hour holds every post
    # of the hour, so it is a whole stretch like the others, made once for every reader.
    ws = workspace(store, edge=False)
    st, clock = settings(store.db.url), FakeClock(NOW)
    alice = recap(summarizer(store, st, clock), ws, "alice")
    assert store.part_cache.count() == alice.parts and alice.parts_reused == 0
    bob = recap(summarizer(store, st, clock), ws, "bob")
    later = recap(summarizer(store, st, clock), ws, "carol", now=NOW + 1_000)
    assert bob.parts_reused == later.parts_reused == alice.parts
    assert bob.calls == later.calls == 1  # the merge only
    assert bob.channel.source_post_ids == alice.channel.source_post_ids
    # A post lands between 09:00 and the window's start: the first hour is an edge again,
    # and that post is no part of the window.
    post_before_the_window(store, ws)
    dave = recap(summarizer(store, st, clock), ws, "dave")
    assert dave.parts_reused == alice.parts - 1
    assert dave.channel.source_post_ids == alice.channel.source_post_ids


def test_the_code_version_covers_every_module_that_shapes_the_input() -> None:
    # A module the input modules import from (a new rule's word list, say) changes what the
    # agent is shown as surely as the modules themselves, so it must be hashed too.
    # The pipeline orchestrates (budgets, windows, the cache itself); the others build input.
    for name in (m for m in INPUT_MODULES if m != "recapd.summarize.pipeline"):
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin
        with open(spec.origin, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        }
        for module in imported:
            # The model holds data shapes, not rules.
            if module.startswith("recapd.") and not module.startswith("recapd.model."):
                assert module in INPUT_MODULES, f"{name} imports {module}"
