"""Stretch bounds: aligned, shared by readers' windows, bounded, conversations kept whole."""

from __future__ import annotations

import pytest

from recapd.model.chat import Post
from recapd.summarize.stretches import HOUR_MS, plan_stretches

DAY = 24 * HOUR_MS
# A Monday 00:00 UTC.
D0 = 1_790_035_200_000 - 1_790_035_200_000 % DAY


def posts_every(start: int, end: int, step: int, channel: str = "c") -> list[Post]:
    return [
        Post(id=f"p{t}", channel_id=channel, user_id="u", message="m", create_at=t)
        for t in range(start, end, step)
    ]


def bounds(stretches: list) -> set[tuple[int, int, int]]:  # type: ignore[type-arg]
    return {(s.start_ms, s.end_ms, s.piece) for s in stretches if s.whole}


def test_whole_hours_in_aligned_blocks_and_partial_edges() -> None:
    start, end = D0 + 9 * HOUR_MS + 5_000, D0 + DAY + 9 * HOUR_MS + 3_000
    posts = posts_every(start - 1, end, 10 * 60_000)[1:] + posts_every(end - 1, end, 1)
    plan = plan_stretches(start, end, posts)
    whole = [(s.start_ms - D0, s.end_ms - D0) for s in plan if s.whole]
    h = HOUR_MS
    assert whole == [
        (10 * h, 12 * h),
        (12 * h, 16 * h),
        (16 * h, 24 * h),
        (24 * h, 32 * h),
        (32 * h, 33 * h),
    ]
    assert not plan[0].whole and plan[0].start_ms == start and plan[0].end_ms == D0 + 10 * h
    assert not plan[-1].whole and plan[-1].end_ms == end
    # Every post lands in exactly one stretch.
    assert sorted(p.id for s in plan for p in s.posts) == sorted(p.id for p in posts)


def test_daily_windows_in_different_zones_and_a_weekly_share_most_stretches() -> None:
    posts = posts_every(D0 - 7 * DAY, D0 + 2 * DAY, 15 * 60_000)
    now = D0 + DAY + 9 * HOUR_MS  # 09:00 UTC
    utc = bounds(plan_stretches(now - DAY, now, posts))
    berlin = bounds(plan_stretches(now - HOUR_MS - DAY, now - HOUR_MS, posts))  # 09:00 UTC+1
    weekly = bounds(plan_stretches(now - 7 * DAY, now, posts))
    # 16 of the 24 hours sit in blocks both daily windows use.
    shared = utc & berlin
    assert sum(e - s for s, e, _ in shared) == 16 * HOUR_MS
    # The weekly recap finds the daily's big blocks among its own.
    assert {b for b in utc if b[1] - b[0] == 8 * HOUR_MS} <= weekly


def test_busy_blocks_are_halved_and_busy_hours_cut_along_threads() -> None:
    start = D0
    posts = posts_every(start, start + 8 * HOUR_MS, 60_000)  # 480 posts in 8 h
    plan = plan_stretches(start, start + 8 * HOUR_MS, posts, max_posts=100)
    assert all(len(s.posts) <= 100 for s in plan)
    assert {s.end_ms - s.start_ms for s in plan} == {HOUR_MS}  # 60 posts per hour fit

    # 150 posts in one hour: two threads of 75 -> two pieces, each a whole thread.
    a = [
        Post(
            id=f"a{i}",
            channel_id="c",
            user_id="u",
            message="m",
            create_at=start + 2 * i,
            root_id="a0" if i else "",
        )
        for i in range(75)
    ]
    b = [
        Post(
            id=f"b{i}",
            channel_id="c",
            user_id="u",
            message="m",
            create_at=start + 2 * i + 1,
            root_id="b0" if i else "",
        )
        for i in range(75)
    ]
    plan = plan_stretches(start, start + HOUR_MS, a + b, max_posts=100)
    assert [(s.piece, s.pieces) for s in plan] == [(1, 2), (2, 2)]
    assert {p.id[0] for p in plan[0].posts} == {"a"} and {p.id[0] for p in plan[1].posts} == {"b"}
    # The same posts in another order cut the same way: the bounds depend on content only.
    again = plan_stretches(start, start + HOUR_MS, list(reversed(a + b)), max_posts=100)
    assert [[p.id for p in s.posts] for s in again] == [[p.id for p in s.posts] for s in plan]


def test_a_window_shorter_than_an_hour_is_one_partial_stretch() -> None:
    posts = posts_every(D0 + 60_000, D0 + 30 * 60_000, 60_000)
    (only,) = plan_stretches(D0 + 1, D0 + 40 * 60_000, posts)
    assert not only.whole and len(only.posts) == len(posts)
    assert plan_stretches(D0, D0 + 10, []) == []
    with pytest.raises(ValueError):
        plan_stretches(D0, D0 + DAY, posts, max_posts=0)
