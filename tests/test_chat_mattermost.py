"""The Mattermost chat source, its HTTP client, DM delivery and `recapd mattermost check`,
all through a loopback Mattermost server (tests/fake_mattermost.py)."""

from __future__ import annotations

import asyncio
import email.utils
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from recapd.chat.mattermost.check import run_check
from recapd.chat.mattermost.client import ClientOptions, MattermostClient, parse_max_post_size
from recapd.chat.mattermost.source import MattermostChatSource
from recapd.cli import app as cli_app
from recapd.clock import FakeClock
from recapd.config import ConfigError, load_settings
from recapd.delivery.markdown import render_message
from recapd.delivery.mattermost_dm import MattermostDirectMessenger, split_markdown
from recapd.jobs.leader import StaticLeadership
from recapd.model.app_error import AppError
from recapd.model.recap import (
    ActionItem,
    ChannelStatus,
    Highlight,
    Recap,
    RecapChannel,
    RecapStatus,
)
from recapd.runtime import Runtime
from recapd.store.store import Store
from tests.fake_mattermost import ApiError, FakeMattermost
from tests.jobhelpers import wait_until

T0 = 1_790_000_000_000
MIN = 60_000
HOUR = 60 * MIN


class Sleeps:
    """An injected sleep: records each wait and moves the fake clock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(int(seconds * 1000))
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + 48 * HOUR)


@pytest.fixture
def mm(clock: FakeClock) -> Iterator[FakeMattermost]:
    with FakeMattermost(clock, site_url="https://chat.example.com/") as server:
        yield server


def client_for(
    mm: FakeMattermost, token: str, clock: FakeClock, sleeps: Sleeps | None = None, **opts: Any
) -> MattermostClient:
    return MattermostClient(
        mm.url,
        token,
        options=ClientOptions(**{"timeout_s": 5.0, **opts}),
        clock=clock,
        sleep=sleeps or Sleeps(clock),
    )


class World:
    """A small server: team acme, users alice (reader), bob, carol, an admin and a bot."""

    def __init__(self, mm: FakeMattermost) -> None:
        self.mm = mm
        self.alice = mm.add_user("alice", timezone="Europe/Paris", first_name="Alice")
        self.bob = mm.add_user("bob")
        self.carol = mm.add_user("carol")
        self.admin = mm.add_user("root", admin=True)
        self.bot = mm.add_user("recap-bot", bot=True)
        members = [self.alice, self.bob, self.carol, self.bot]
        self.team = mm.add_team("acme", members=members)
        self.dev = mm.add_channel(self.team, "dev", members=[self.alice, self.bob, self.bot])
        self.ops = mm.add_channel(
            self.team, "ops", type="P", members=[self.alice, self.carol, self.bot]
        )
        self.hr = mm.add_channel(self.team, "hr", type="P", members=[self.carol, self.bot])
        self.dm = mm.add_direct(self.alice, self.bob)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- paging, windows, threads ----------------------------------------------------------------


def test_window_paging_across_many_pages(mm: FakeMattermost, clock: FakeClock) -> None:
    w = World(mm)
    ids = [mm.add_post(w.dev, w.bob, f"message {i}", create_at=T0 + i * MIN) for i in range(1500)]
    source = MattermostChatSource(client_for(mm, mm.token_for(w.admin), clock), clock)
    since, until = T0 + 100 * MIN, T0 + 1400 * MIN

    async def window() -> list[str]:
        return [p.id async for p in source.iter_posts(w.dev, since, until)]

    got = run(window())
    assert got == ids[100:1400]  # oldest first, none twice, none missing
    calls = mm.calls("GET", f"/api/v4/channels/{w.dev}/posts")
    assert all(int(c.query["per_page"]) == 200 and "since" not in c.query for c in calls)
    # The newest page, then pages of before=<the previous page's oldest post but one>, always
    # page 0 (the oldest post's millisecond is read again, as others may share it), until one
    # reaches past the window start (the last holds posts 106..0).
    assert len(calls) == 1 + 7
    assert [c.query.get("before") for c in calls[1:]] == [ids[1301 - 199 * k] for k in range(7)]
    assert {c.query["page"] for c in calls} == {"0"}

    # The trap the paging avoids: `since` returns posts *updated* after, 1,000 at most.
    with httpx.Client(base_url=mm.url) as raw:
        answer = raw.get(
            f"/api/v4/channels/{w.dev}/posts",
            params={"since": since},
            headers={"Authorization": f"Bearer {mm.token_for(w.admin)}"},
        ).json()
    assert len(answer["order"]) == 1000 < len(got)


def test_posts_arriving_while_paging_do_not_shift_pages(
    mm: FakeMattermost, clock: FakeClock
) -> None:
    w = World(mm)
    ids = [mm.add_post(w.dev, w.bob, f"m{i}", create_at=T0 + i * MIN) for i in range(450)]
    source = MattermostChatSource(client_for(mm, mm.token_for(w.admin), clock), clock)

    async def window() -> list[str]:
        got = []
        async for p in source.iter_posts(w.dev, T0, T0 + 1000 * MIN):
            got.append(p.id)
        return got

    # Posts made between the first page and the next ones land after the anchor.
    original = mm.channel_posts

    def with_new_posts(caller: Any, req: Any, channel_id: str) -> Any:
        if "before" in req.query and req.query["page"] == "0":
            for i in range(3):
                mm._create_post(w.dev, w.bob, f"late {i}", T0 + (500 + i) * MIN, "", "", None)
        return original(caller, req, channel_id)

    mm.channel_posts = with_new_posts  # type: ignore[method-assign]
    assert run(window()) == ids


@pytest.mark.parametrize("deleted", [500, 300, 120, 0])
def test_a_post_deleted_while_paging_loses_no_live_post(
    mm: FakeMattermost, clock: FakeClock, deleted: int
) -> None:
    # Mattermost's `before` query pages by offset over the live posts, so with offset paging
    # a deletion behind the cursor shifts every later page by one and a post is never read.
    w = World(mm)
    ids = [mm.add_post(w.dev, w.bob, f"m{i}", create_at=T0 + i * MIN) for i in range(650)]
    path = f"/api/v4/channels/{w.dev}/posts"
    mm.before_request("GET", path, 3, lambda: mm.delete_post(ids[deleted], T0 + 900 * MIN))
    source = MattermostChatSource(client_for(mm, mm.token_for(w.admin), clock), clock)

    async def window() -> list[str]:
        return [p.id async for p in source.iter_posts(w.dev, T0, T0 + 1000 * MIN)]

    got = run(window())
    # The deleted post may have been read before it went; every other post is there, once.
    assert [i for i in got if i != ids[deleted]] == [i for i in ids if i != ids[deleted]]
    assert len(got) == len(set(got))
    assert len(mm.calls("GET", path)) == 4


def test_paging_over_posts_sharing_a_millisecond(mm: FakeMattermost, clock: FakeClock) -> None:
    # `before` is a strict CreateAt comparison: a page ending inside a millisecond must not
    # skip that millisecond's other posts, and a millisecond holding more than a page of
    # posts must still be read through.
    w = World(mm)
    times = [0, 1, 1, 1, 2, 2, 3] + [4] * 12 + [5, 6, 6, 7] + [8] * 3
    ids = [mm.add_post(w.dev, w.bob, f"m{i}", create_at=T0 + t) for i, t in enumerate(times)]
    source = MattermostChatSource(client_for(mm, mm.token_for(w.admin), clock), clock)

    async def window(size: int) -> list[str]:
        return [p.id async for p in source.iter_posts(w.dev, T0, T0 + MIN, page_size=size)]

    expected = [p["id"] for p in mm.posts_in(w.dev)]
    assert sorted(expected) == sorted(ids)
    for size in (1, 2, 3, 4, 5, 7, 200):
        assert run(window(size)) == expected, size


def test_threads_kept_together_and_roots_fetched(mm: FakeMattermost, clock: FakeClock) -> None:
    w = World(mm)
    root = mm.add_post(w.dev, w.bob, "Shall we ship on Friday?", create_at=T0)
    mm.add_post(w.dev, w.carol, "unrelated", create_at=T0 + 5 * MIN)
    r1 = mm.add_post(w.dev, w.alice, "Yes", create_at=T0 + 3 * HOUR, root_id=root)
    mid = mm.add_post(w.dev, w.bob, "lunch?", create_at=T0 + 3 * HOUR + MIN)
    r2 = mm.add_post(w.dev, w.bob, "Friday then", create_at=T0 + 3 * HOUR + 2 * MIN, root_id=root)
    source = MattermostChatSource(client_for(mm, mm.token_for(w.bot), clock), clock)

    async def go() -> tuple[list[Any], dict[str, Any]]:
        window = source.iter_posts(w.dev, T0 + 2 * HOUR, T0 + 4 * HOUR, page_size=2)
        posts = [p async for p in window]
        roots = await source.get_posts([p.root_id for p in posts if p.root_id])
        return posts, roots

    posts, roots = run(go())
    # The root came along in a page's `posts` (beyond its `order`) but is outside the window.
    assert [p.id for p in posts] == [r1, mid, r2]
    assert {p.thread_id for p in posts if p.root_id} == {root}
    assert list(roots) == [root] and roots[root].message == "Shall we ship on Friday?"
    page = mm.calls("GET", f"/api/v4/channels/{w.dev}/posts")[0].response
    assert root in page["posts"] and root not in page["order"]


def test_edited_and_deleted_posts_in_the_window(mm: FakeMattermost, clock: FakeClock) -> None:
    w = World(mm)
    keep = mm.add_post(w.dev, w.bob, "draft", create_at=T0 + MIN)
    gone = mm.add_post(w.dev, w.bob, "oops, wrong channel", create_at=T0 + 2 * MIN)
    mm.add_post(w.dev, w.bob, "bob joined", create_at=T0 + 3 * MIN, type="system_join_channel")
    mm.edit_post(keep, "final text", T0 + 10 * MIN)
    mm.delete_post(gone, T0 + 11 * MIN)
    source = MattermostChatSource(client_for(mm, mm.token_for(w.bot), clock), clock)

    async def go() -> tuple[list[Any], dict[str, Any], list[Any]]:
        window = [p async for p in source.iter_posts(w.dev, T0, T0 + HOUR)]
        by_id = await source.get_posts([keep, gone])
        latest = await source.latest_posts(w.dev, 20)
        return window, by_id, latest

    window, by_id, latest = run(go())
    assert [(p.id, p.message, p.edit_at) for p in window] == [(keep, "final text", T0 + 10 * MIN)]
    assert list(by_id) == [keep]
    assert [p.id for p in latest] == [keep]


# -- memberships, unreads, permissions --------------------------------------------------------


def _unread_world(mm: FakeMattermost) -> World:
    w = World(mm)
    mm.add_post(w.dev, w.bob, "seen", create_at=T0)
    mm.add_post(w.ops, w.carol, "unseen in ops", create_at=T0 + MIN)
    mm.add_post(w.dm, w.bob, "psst", create_at=T0 + 2 * MIN)
    mm.view(w.dev, w.alice, T0 + 30 * MIN)
    old = mm.add_channel(w.team, "old", members=[w.alice, w.bob, w.bot])
    mm.add_post(old, w.bob, "unread but archived", create_at=T0 + 3 * MIN)
    mm.archive(old)
    return w


def test_unread_channels_with_an_admin_token(mm: FakeMattermost, clock: FakeClock) -> None:
    w = _unread_world(mm)
    source = MattermostChatSource(client_for(mm, mm.token_for(w.admin), clock), clock)
    unread = run(source.unread_channels(w.alice))
    assert sorted(c.id for c in unread) == sorted([w.ops, w.dm])
    dm = next(c for c in unread if c.id == w.dm)
    assert dm.team_id == "" and dm.type == "D"
    # One call per team for every membership, not one per channel.
    assert mm.calls("GET", f"/api/v4/users/{w.alice}/teams/{w.team}/channels/members")
    assert not mm.calls("GET", rf"/api/v4/channels/{w.ops}/members/{w.alice}")
    mine = run(source.channels_of_user(w.alice))
    assert sorted(c.id for c in mine) == sorted([w.dev, w.ops, w.dm])


def test_unread_channels_with_a_bot_token_fall_back_to_the_bots_channels(
    mm: FakeMattermost, clock: FakeClock
) -> None:
    w = _unread_world(mm)
    source = MattermostChatSource(client_for(mm, mm.token_for(w.bot), clock), clock)
    # A bot may not list alice's channels (403), so it checks its own channels one by one:
    # the DM between alice and bob is out of its reach.
    assert [c.id for c in run(source.unread_channels(w.alice))] == [w.ops]
    assert sorted(c.id for c in run(source.channels_of_user(w.alice))) == sorted([w.dev, w.ops])
    refused = mm.calls("GET", f"/api/v4/users/{w.alice}/channels")
    assert refused and refused[0].status == 403


def test_read_permission_rechecked_at_every_call(mm: FakeMattermost, clock: FakeClock) -> None:
    w = World(mm)
    source = MattermostChatSource(client_for(mm, mm.token_for(w.bot), clock), clock)
    mm.view(w.dev, w.alice, T0 + 5 * MIN)
    assert run(source.can_read(w.alice, w.dev)) is True
    assert run(source.last_viewed_at(w.alice, w.dev)) == T0 + 5 * MIN
    mm.leave(w.dev, w.alice)  # between scheduling and running
    assert run(source.can_read(w.alice, w.dev)) is False
    assert run(source.last_viewed_at(w.alice, w.dev)) == 0
    assert run(source.can_read(w.alice, w.hr)) is False  # never a member
    assert run(source.can_read(w.carol, w.hr)) is True
    mm.archive(w.hr)
    assert run(source.can_read(w.carol, w.hr)) is False
    # Each answer came from the server: one membership look-up per call.
    assert len(mm.calls("GET", f"/api/v4/channels/{w.dev}/members/{w.alice}")) == 4


# -- names, caches, permalinks ----------------------------------------------------------------


def test_users_and_teams_cached_with_expiry(mm: FakeMattermost, clock: FakeClock) -> None:
    w = World(mm)
    source = MattermostChatSource(
        client_for(mm, mm.token_for(w.bot), clock), clock, cache_ttl_ms=5 * MIN
    )
    alice = run(source.get_user(w.alice))
    assert (alice.username, alice.display_name, alice.timezone) == (
        "alice",
        "Alice",
        "Europe/Paris",
    )
    run(source.get_users([w.alice, w.bob]))
    run(source.get_users([w.alice, w.bob]))
    assert len(mm.calls("GET", f"/api/v4/users/{w.alice}")) == 1
    assert [c.body for c in mm.calls("POST", "/api/v4/users/ids")] == [[w.bob]]
    clock.advance(5 * MIN)
    run(source.get_user(w.alice))
    assert len(mm.calls("GET", f"/api/v4/users/{w.alice}")) == 2


def test_permalinks_team_and_redirect(mm: FakeMattermost, clock: FakeClock) -> None:
    w = World(mm)
    p1 = mm.add_post(w.dev, w.bob, "in a team channel", create_at=T0)
    p2 = mm.add_post(w.dm, w.bob, "in a DM", create_at=T0)
    source = MattermostChatSource(
        client_for(mm, mm.token_for(w.admin), clock), clock, cache_ttl_ms=10 * MIN
    )

    async def links() -> list[str]:
        posts = await source.get_posts([p1, p2])
        return [await source.permalink(posts[p1]), await source.permalink(posts[p2])]

    assert run(links()) == [
        f"https://chat.example.com/acme/pl/{p1}",
        f"https://chat.example.com/_redirect/pl/{p2}",
    ]
    mm.rename_team(w.team, "acme-corp")
    assert run(links())[0].endswith(f"/acme/pl/{p1}")  # cached name
    clock.advance(10 * MIN)
    assert run(links())[0] == f"https://chat.example.com/acme-corp/pl/{p1}"
    dm = run(source.get_channel(w.dm))
    by_id = {w.alice: "alice", w.bob: "bob"}
    assert dm.team_id == "" and dm.type == "D"
    assert dm.display_name == ", ".join(by_id[u] for u in sorted(by_id))  # no team, two names


# -- the HTTP client: 429, 5xx, timeouts, cookies ---------------------------------------------


def test_429_retry_after_is_honoured(mm: FakeMattermost, clock: FakeClock) -> None:
    w = World(mm)
    sleeps = Sleeps(clock)
    client = client_for(mm, mm.token_for(w.bot), clock, sleeps)
    mm.fail("GET", f"/api/v4/channels/{w.dev}", 429, headers={"Retry-After": "7"})
    when = email.utils.formatdate((clock.now_ms() + 7_000 + 5_000) / 1000, usegmt=True)
    mm.fail("GET", f"/api/v4/channels/{w.dev}", 429, headers={"Retry-After": when})
    mm.fail("GET", f"/api/v4/users/{w.bob}", 429, headers={"X-RateLimit-Reset": "2"})
    assert run(client.get(f"/channels/{w.dev}"))["id"] == w.dev
    assert run(client.get(f"/users/{w.bob}"))["id"] == w.bob
    assert sleeps.waits[0] == 7.0
    assert 4.0 <= sleeps.waits[1] <= 5.0  # an HTTP date, counted from the injected clock
    assert sleeps.waits[2] == 2.0
    assert len(mm.calls("GET", f"/api/v4/channels/{w.dev}")) == 3
    # A POST that was rate limited was not processed, so it is retried too.
    mm.fail("POST", "/api/v4/users/ids", 429, headers={"Retry-After": "1"})
    assert [u["id"] for u in run(client.post("/users/ids", [w.bob]))] == [w.bob]
    # A pause longer than recapd waits is an error at once, not a long sleep.
    mm.fail("GET", f"/api/v4/users/{w.carol}", 429, headers={"Retry-After": "3600"})
    with pytest.raises(AppError) as err:
        run(client.get(f"/users/{w.carol}"))
    assert err.value.id == "chat.mattermost.rate_limited.app_error"
    assert sleeps.waits[3:] == [1.0]


def test_502_to_504_retried_for_idempotent_calls_only(mm: FakeMattermost, clock: FakeClock) -> None:
    w = World(mm)
    sleeps = Sleeps(clock)
    client = client_for(mm, mm.token_for(w.bot), clock, sleeps, max_retries=3)
    mm.fail("GET", f"/api/v4/channels/{w.dev}", 502, times=1)
    mm.fail("GET", f"/api/v4/channels/{w.dev}", 503, times=1)
    mm.fail("GET", f"/api/v4/channels/{w.dev}", 504, times=1)
    assert run(client.get(f"/channels/{w.dev}"))["id"] == w.dev
    assert len(sleeps.waits) == 3
    assert sleeps.waits[0] < sleeps.waits[2]  # exponential backoff (with jitter)
    mm.fail("GET", f"/api/v4/channels/{w.dev}", 502, times=4)
    with pytest.raises(AppError) as err:
        run(client.get(f"/channels/{w.dev}"))
    assert (err.value.id, err.value.status_code) == ("chat.mattermost.server_error.app_error", 502)
    # A POST that may have created something is not sent twice.
    dm = mm.add_direct(w.bot, w.alice)
    mm.fail("POST", "/api/v4/posts", 502)
    with pytest.raises(AppError):
        run(client.post("/posts", {"channel_id": dm, "message": "once"}))
    assert len(mm.calls("POST", "/api/v4/posts")) == 1


def test_long_pauses_asked_with_a_5xx_are_not_waited_for(
    mm: FakeMattermost, clock: FakeClock
) -> None:
    w = World(mm)
    sleeps = Sleeps(clock)
    client = client_for(mm, mm.token_for(w.bot), clock, sleeps, max_retries=3)
    path = f"/api/v4/channels/{w.dev}"
    # A day of maintenance, or a reset time given as a Unix time: unavailable at once.
    for headers in (
        {"Retry-After": "86400"},
        {"X-RateLimit-Reset": str(clock.now_ms() // 1000 + 3600)},
        {"X-RateLimit-Reset": str(10**12)},
    ):
        mm.fail("GET", path, 503, headers=headers)
        with pytest.raises(AppError) as err:
            run(client.get(f"/channels/{w.dev}"))
        assert (err.value.id, err.value.status_code) == (
            "chat.mattermost.server_error.app_error",
            502,
        )
    assert sleeps.waits == []
    # A short pause is honoured, and a reset time (Unix seconds) is counted from the clock.
    mm.fail("GET", path, 503, headers={"Retry-After": "5"})
    mm.fail("GET", path, 502, headers={"X-RateLimit-Reset": str(clock.now_ms() // 1000 + 13)})
    mm.fail("GET", path, 429, headers={"X-RateLimit-Reset": str(clock.now_ms() // 1000 + 40)})
    assert run(client.get(f"/channels/{w.dev}"))["id"] == w.dev
    assert sleeps.waits[0] == 5.0
    assert 7.0 <= sleeps.waits[1] <= 8.0  # 13 s after a clock already moved by 5
    assert 27.0 <= sleeps.waits[2] <= 28.0
    # A reset time already past asks for no wait (not one of 1.8e9 s, refused as too long).
    mm.fail("GET", path, 429, headers={"X-RateLimit-Reset": str(clock.now_ms() // 1000 - 2)})
    assert run(client.get(f"/channels/{w.dev}"))["id"] == w.dev
    assert sleeps.waits[3:] == [0.0]
    assert all(s <= 120.0 for s in sleeps.waits)


def test_timeouts(mm: FakeMattermost, clock: FakeClock) -> None:
    w = World(mm)
    client = client_for(mm, mm.token_for(w.bot), clock, timeout_s=0.3, max_retries=1)
    mm.fail("GET", f"/api/v4/channels/{w.dev}", 0, delay_s=1.0)
    assert run(client.get(f"/channels/{w.dev}"))["id"] == w.dev  # retried after the timeout
    once = client_for(mm, mm.token_for(w.bot), clock, timeout_s=0.3, max_retries=0)
    mm.fail("GET", f"/api/v4/channels/{w.dev}", 0, delay_s=1.0)
    with pytest.raises(AppError) as err:
        run(once.get(f"/channels/{w.dev}"))
    assert err.value.id == "chat.mattermost.unreachable.app_error"
    assert "timed out" in err.value.detailed_error


def test_session_cookie_never_kept(mm: FakeMattermost, clock: FakeClock) -> None:
    w = World(mm)
    token = mm.token_for(w.bot)
    dm = mm.add_direct(w.bot, w.alice)
    client = client_for(mm, token, clock)

    async def two_posts() -> None:
        await client.post("/posts", {"channel_id": dm, "message": "one"})
        await client.post("/posts", {"channel_id": dm, "message": "two"})
        assert len(client.cookies.jar) == 0

    run(two_posts())
    posts = mm.calls("POST", "/api/v4/posts")
    assert "MMAUTHTOKEN" in posts[0].response_headers["Set-Cookie"]
    assert [p.status for p in posts] == [201, 201]
    assert not any("cookie" in r.headers for r in mm.requests)

    # The trap is real: a client that keeps cookies is refused on its next POST.
    async def naive() -> list[int]:
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=mm.url, headers=auth) as raw:
            first = await raw.post("/api/v4/posts", json={"channel_id": dm, "message": "a"})
            second = await raw.post("/api/v4/posts", json={"channel_id": dm, "message": "b"})
            return [first.status_code, second.status_code]

    assert run(naive()) == [201, 401]


# -- direct messages -----------------------------------------------------------------------


def _big_recap(user_id: str, channel_ids: list[str]) -> Recap:
    channels = []
    for n, cid in enumerate(channel_ids):
        channels.append(
            RecapChannel(
                channel_id=cid,
                channel_name=f"Channel {n} é",
                status=ChannelStatus.SUCCESS,
                highlights=[
                    Highlight(f"Highlight {n}.{i}: d\u00e9cision prise \U0001f680 " + "x" * 40, [])
                    for i in range(9)
                ],
                action_items=[
                    ActionItem(f"Action {n}.{i} to do " + "y" * 30, owner="bob") for i in range(4)
                ],
            )
        )
    return Recap(
        id="r" * 26,
        user_id=user_id,
        title="Morning recap",
        status=RecapStatus.COMPLETED,
        total_message_count=42,
        channels=channels,
    )


def test_dm_split_under_a_small_limit_without_cutting_an_item(
    mm: FakeMattermost, clock: FakeClock
) -> None:
    w = World(mm)
    mm.max_post_size = 400
    recap = _big_recap(w.alice, [w.dev, w.ops])
    message = render_message(recap, {})
    assert len(message) > 3 * 400
    messenger = MattermostDirectMessenger(client_for(mm, mm.token_for(w.bot), clock))
    made = run(messenger.send_parts(w.alice, message, "recap-1"))

    dm = next(c for c in mm.channels.values() if c["name"] == "__".join(sorted((w.bot, w.alice))))
    posts = mm.posts_in(dm["id"])
    assert [p["id"] for p in posts] == made and len(made) > 3
    assert all(len(p["message"]) <= 400 for p in posts)  # runes, as the server counts
    assert all(p["user_id"] == w.bot and p["props"]["recapd_key"] == "recap-1" for p in posts)
    lines = [ln for p in posts for ln in p["message"].split("\n")]
    for item in (ln for ln in message.split("\n") if ln.startswith("- ")):
        assert lines.count(item) == 1, item  # every item whole, exactly once
    items = [ln for ln in lines if ln.startswith("- ")]
    assert items == [ln for ln in message.split("\n") if ln.startswith("- ")]  # in order
    assert posts[-1]["message"].endswith(f"_(part {len(posts)} of {len(posts)})_")
    assert any("(continued)" in p["message"] for p in posts[1:])

    # Once per key: a retried delivery posts nothing more (even after the 30 s dedupe).
    clock.advance(HOUR)
    assert run(messenger.send_parts(w.alice, message, "recap-1")) == []
    assert len(mm.posts_in(dm["id"])) == len(made)


def test_dm_resumes_a_partly_sent_delivery(mm: FakeMattermost, clock: FakeClock) -> None:
    w = World(mm)
    mm.max_post_size = 400
    message = render_message(_big_recap(w.alice, [w.dev]), {})
    sleeps = Sleeps(clock)
    messenger = MattermostDirectMessenger(
        client_for(mm, mm.token_for(w.bot), clock, sleeps, max_retries=0)
    )
    parts = split_markdown(message, 400)
    # The third part fails; the job retries the delivery later with the same key.
    original = mm.create_post
    count = {"n": 0}

    def flaky(caller: Any, req: Any) -> Any:
        count["n"] += 1
        if count["n"] == 3:
            raise ApiError(500, "app.post.save.app_error", "database is down")
        return original(caller, req)

    mm.create_post = flaky  # type: ignore[method-assign]
    with pytest.raises(AppError):
        run(messenger.send_parts(w.alice, message, "recap-2"))
    made = run(messenger.send_parts(w.alice, message, "recap-2"))
    assert len(made) == len(parts) - 2
    dm = mm.add_direct(w.bot, w.alice)
    assert [p["message"] for p in mm.posts_in(dm)] == parts


def test_max_post_size_from_client_config() -> None:
    assert parse_max_post_size({"MaxPostSize": "16383"}) == 16383
    assert parse_max_post_size({"MaxPostSize": "65535"}) == 65535
    assert parse_max_post_size({}) == 16383
    assert parse_max_post_size({"MaxPostSize": "lots"}) == 16383


def test_pending_post_id_makes_a_repeated_post_harmless(
    mm: FakeMattermost, clock: FakeClock
) -> None:
    w = World(mm)
    dm = mm.add_direct(w.bot, w.alice)
    client = client_for(mm, mm.token_for(w.bot), clock)
    body = {"channel_id": dm, "message": "hi", "pending_post_id": f"{w.bot}:k:0"}
    first = run(client.post("/posts", body, idempotent=True))
    again = run(client.post("/posts", body, idempotent=True))
    assert first["id"] == again["id"] and len(mm.posts_in(dm)) == 1


# -- settings, runtime, end to end ------------------------------------------------------------


def test_settings_for_mattermost() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(chat="mattermost")
    text = str(err.value)
    assert "RECAPD_MATTERMOST_URL" in text and "RECAPD_MATTERMOST_TOKEN" in text
    s = load_settings(
        chat="mattermost", mattermost_url="https://chat.example.com/", mattermost_token="s3cret"
    )
    assert s.mattermost_url == "https://chat.example.com"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s)
    with pytest.raises(ConfigError, match="RECAPD_MATTERMOST_URL"):
        load_settings(mattermost_url="chat.example.com")


def _mattermost_runtime(store: Store, mm: FakeMattermost, token: str, clock: FakeClock) -> Runtime:
    settings = load_settings(
        database_url=store.db.url,
        chat="mattermost",
        mattermost_url=mm.url,
        mattermost_token=token,
        ai_recaps={"cooldown_minutes": 0},
        jobs={"poll_interval_seconds": 0.2, "retry_base_seconds": 0.05, "retry_max_seconds": 0.1},
    )
    rt = Runtime.build(settings, store=store, clock=clock, node_id="test-node")
    rt.jobs._leadership = StaticLeadership()
    return rt


CHAT = [
    ("alice", "Morning all. The release is blocked on the flaky payments test."),
    ("bob", "I looked at it: the sandbox API times out under load."),
    ("carol", "We decided to mock the sandbox in CI and keep one nightly real run."),
    ("alice", "@bob can you update the CI config to use the mock by Friday?"),
    ("bob", "Sure, I'll do it today."),
]


def test_recap_end_to_end_from_mattermost(store: Store, mm: FakeMattermost) -> None:
    clock = FakeClock(T0 + 2 * HOUR)
    mm.clock = clock
    w = World(mm)
    names = {"alice": w.alice, "bob": w.bob, "carol": w.carol}
    mm.join(w.dev, w.carol)
    dev_posts = [
        mm.add_post(w.dev, names[who], text, create_at=T0 + i * MIN)
        for i, (who, text) in enumerate(CHAT)
    ]
    mm.add_post(w.ops, w.carol, "Disk on db2 is at 91%, I'll expand it tonight.", create_at=T0)
    mm.view(w.dev, w.alice, T0 - HOUR)
    mm.view(w.ops, w.alice, T0 - HOUR)
    rt = _mattermost_runtime(store, mm, mm.token_for(w.admin), clock)

    async def main() -> tuple[Recap, list[str]]:
        recap = await rt.recaps.create(w.alice, title="", channel_ids=[w.dev, w.ops])
        mm.leave(w.ops, w.alice)  # left between asking and running
        stop = asyncio.Event()
        task = asyncio.create_task(rt.jobs.run(stop))
        try:

            async def done() -> bool:
                r = await rt.recaps.get(w.alice, recap.id)
                return r.status in (RecapStatus.COMPLETED, RecapStatus.FAILED)

            await wait_until(done, timeout=20)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
        recap = await rt.recaps.get(w.alice, recap.id)
        cited = sorted({i for c in recap.channels for h in c.highlights for i in h.post_ids})
        posts = await rt.chat.get_posts(cited)
        return recap, [await rt.chat.permalink(posts[i]) for i in cited]

    recap, links = run(main())
    assert recap.status == RecapStatus.COMPLETED, recap.error
    by_name = {c.channel_name: c for c in recap.channels}
    assert by_name["Dev"].status == ChannelStatus.SUCCESS and by_name["Dev"].highlights
    assert by_name["Ops"].status == ChannelStatus.FAILED
    assert "no longer read" in by_name["Ops"].error
    assert recap.total_message_count == len(CHAT)
    assert set(by_name["Dev"].source_post_ids) == set(dev_posts)
    site = "https://chat.example.com"  # SiteURL from /config/client, not the API address
    assert links and all(re.fullmatch(rf"{site}/acme/pl/[a-z0-9]{{26}}", u) for u in links)

    # Delivered as direct messages from the bot, through the same server.
    async def deliver() -> list[str]:
        links_by_id = {}
        for c in recap.channels:
            got = await rt.chat.get_posts([i for h in c.highlights for i in h.post_ids])
            for pid, p in got.items():
                links_by_id[pid] = await rt.chat.permalink(p)
        bot = MattermostDirectMessenger(client_for(mm, mm.token_for(w.bot), clock))
        return await bot.send_parts(w.alice, render_message(recap, links_by_id), recap.id)

    made = run(deliver())
    dm = mm.add_direct(w.bot, w.alice)
    assert [p["id"] for p in mm.posts_in(dm)] == made
    assert f"{site}/acme/pl/" in mm.posts_in(dm)[0]["message"]
    # The reader's channels only: nothing was read from hr.
    assert not mm.calls("GET", f"/api/v4/channels/{w.hr}/posts")


# -- recapd mattermost check ------------------------------------------------------------------


def _rows(mm: FakeMattermost, token: str, clock: FakeClock, send_test: str = "") -> Any:
    report = run(run_check(client_for(mm, token, clock), send_test))
    return report, {r.what: (r.result, r.detail) for r in report.rows}


def test_check_with_a_bot_token(mm: FakeMattermost, clock: FakeClock) -> None:
    w = World(mm)
    report, rows = _rows(mm, mm.token_for(w.bot), clock, send_test="alice")
    assert report.usable
    assert rows["token accepted"][0] == "yes" and "@recap-bot (bot)" in rows["token accepted"][1]
    assert "MaxPostSize 16383" in rows["server"][1]
    assert rows["read posts"][0] == "yes"
    assert rows["members' last_viewed_at"][0] == "yes"
    assert rows["other users' channels and unreads"][0] == "NO"
    assert "admin" in rows["other users' channels and unreads"][1]
    assert rows["post direct messages"] == ("yes", "test message sent to @alice")
    dm = mm.add_direct(w.bot, w.alice)
    assert [p["message"] for p in mm.posts_in(dm)] == [
        "recapd check: this bot can send you recaps."
    ]


def test_check_with_an_admin_and_with_a_bad_token(mm: FakeMattermost, clock: FakeClock) -> None:
    w = World(mm)
    mm.join(w.dev, w.admin)
    report, rows = _rows(mm, mm.token_for(w.admin), clock)
    assert report.usable and "system admin" in rows["token accepted"][1]
    assert rows["other users' channels and unreads"][0] == "yes"
    assert rows["post direct messages"][0] == "-"
    assert not mm.calls("POST", "/api/v4/posts")
    report, rows = _rows(mm, "not-a-token", clock)
    assert not report.usable and list(rows) == ["token accepted"]
    assert rows["token accepted"][0] == "NO"


def test_check_command_prints_the_table(mm: FakeMattermost) -> None:
    w = World(mm)
    env = {
        "RECAPD_CHAT": "mattermost",
        "RECAPD_MATTERMOST_URL": mm.url,
        "RECAPD_MATTERMOST_TOKEN": mm.token_for(w.bot),
    }
    result = CliRunner().invoke(cli_app, ["mattermost", "check"], env=env)
    assert result.exit_code == 0, result.output
    assert "recap-bot" in result.output and "read posts" in result.output
    bad = CliRunner().invoke(
        cli_app, ["mattermost", "check"], env={**env, "RECAPD_MATTERMOST_TOKEN": "wrongtoken"}
    )
    assert bad.exit_code == 1 and "wrongtoken" not in bad.output
