"""Splitting windows on thread boundaries, and post budgets."""

from __future__ import annotations

import asyncio

from recapd.agents.base import AgentPost
from recapd.summarize.budget import PostBudget, effective_post_limit, fair_shares
from recapd.summarize.chunking import group_threads, post_tokens, split_parts
from recapd.summarize.window import DAY_MS, window_start


def post(i: int, root: int | None = None, size: int = 40) -> AgentPost:
    return AgentPost(
        id=f"p{i}",
        author="alice",
        create_at=i,
        message="x" * size,
        root_id=f"p{root}" if root is not None else "",
    )


def test_threads_grouped_in_order_of_first_post() -> None:
    posts = [post(1), post(2), post(3, root=1), post(4, root=2), post(5)]
    assert [[p.id for p in t] for t in group_threads(posts)] == [["p1", "p3"], ["p2", "p4"], ["p5"]]


def test_parts_fit_the_budget_keep_threads_whole_and_cover_everything() -> None:
    posts = [post(i) for i in range(200)] + [post(1000 + i, root=i % 7) for i in range(100)]
    budget = 600
    parts = split_parts(posts, budget)
    assert len(parts) > 1
    for part in parts:
        assert sum(post_tokens(p) for p in part) <= budget
    covered = [p.id for part in parts for p in part if not p.context_only]
    assert sorted(covered) == sorted(p.id for p in posts)
    # A thread that fits a part is never split between parts.
    where = {p.id: n for n, part in enumerate(parts) for p in part}
    for reply in posts[200:]:
        assert where[reply.id] == where[reply.root_id]


def test_a_thread_bigger_than_a_part_is_cut_with_its_root_as_context() -> None:
    thread = [post(0)] + [post(i, root=0, size=200) for i in range(1, 40)]
    parts = split_parts(thread, 400)
    assert len(parts) > 3
    assert all(sum(post_tokens(p) for p in part) <= 400 for part in parts)
    for part in parts[1:]:
        assert part[0].id == "p0" and part[0].context_only
    covered = [p.id for part in parts for p in part if not p.context_only]
    assert covered == [p.id for p in thread]


def test_window_start() -> None:
    now = 10 * DAY_MS
    assert window_start("last_24h", now, 5) == now - DAY_MS
    assert window_start("last_week", now, 5) == now - 7 * DAY_MS
    assert window_start("since_last_read", now, 1234) == 1234
    assert window_start("", now, 99) == 99


def test_post_budget_is_split_fairly_once_every_channel_has_asked() -> None:
    async def main() -> list[int]:
        budget = PostBudget(100, ["a", "b", "c", "d", "e"])
        budget.withdraw("e")  # failed before reading: its share goes to the others
        return list(
            await asyncio.gather(
                budget.take("a", 500),
                budget.take("b", 10),
                budget.take("c", 60),
                budget.take("d", 40),
            )
        )

    assert asyncio.run(main()) == [30, 10, 30, 30]
    assert asyncio.run(PostBudget(-1, ["a"]).take("a", 10**6)) == 10**6


def test_fair_shares() -> None:
    assert fair_shares(100, {"a": 500, "b": 10, "c": 60, "d": 40}) == {
        "b": 10,
        "d": 30,
        "c": 30,
        "a": 30,
    }
    assert fair_shares(10, {"a": 3, "b": 3}) == {"a": 3, "b": 3}
    assert fair_shares(0, {"a": 3}) == {"a": 0}
    assert fair_shares(7, {"a": 5, "b": 5}) == {"a": 3, "b": 4}
    assert fair_shares(5, {}) == {}


def test_effective_post_limit() -> None:
    assert effective_post_limit(500, 5000, 4800) == 200
    assert effective_post_limit(500, 5000, 0) == 500
    assert effective_post_limit(-1, 5000, 6000) == 0
    assert effective_post_limit(-1, -1, 10) == -1
