"""Signing in with a Mattermost token (`chat = "mattermost"`), on both engines: the API checks
the token with the loopback Mattermost server's `/users/me`, caches the answer for a minute
by the injected clock, and uses the Mattermost user id and profile time zone."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from recapd.api.app import create_app
from recapd.clock import FakeClock
from recapd.jobs.leader import StaticLeadership
from recapd.jobs.worker import WorkerPool
from recapd.runtime import Runtime
from recapd.store.store import Store
from tests.fake_mattermost import FakeMattermost, Recorded
from tests.test_recaps_app import settings_for

T0 = 1_790_000_000_000
MIN = 60_000
HOUR = 60 * MIN
SLASH_TOKEN = "slash-token-from-mattermost"
R = TypeVar("R")


class MattermostWorld:
    """A Mattermost server (team acme: alice, bob, carol, the bot) and a recapd runtime that
    reads it with the bot's token; the recapd API is called in-process over ASGI."""

    def __init__(self, store: Store, mm: FakeMattermost, clock: FakeClock, **overrides: Any):
        self.store, self.mm, self.clock = store, mm, clock
        self.alice = mm.add_user("alice", timezone="Europe/Paris", first_name="Alice")
        self.bob = mm.add_user("bob", timezone="Europe/Paris", automatic_timezone="Asia/Tokyo")
        self.carol = mm.add_user("carol", timezone="")
        self.bot = mm.add_user("recap-bot", bot=True)
        everyone = [self.alice, self.bob, self.carol, self.bot]
        self.team = mm.add_team("acme", members=everyone)
        self.dev = mm.add_channel(self.team, "dev", members=[self.alice, self.bob, self.bot])
        self.ops = mm.add_channel(
            self.team, "ops", type="P", members=[self.alice, self.carol, self.bot]
        )
        self.hr = mm.add_channel(self.team, "hr", type="P", members=[self.carol, self.bot])
        self.tokens = {
            name: mm.token_for(uid)
            for name, uid in (("alice", self.alice), ("bob", self.bob), ("carol", self.carol))
        }
        self.bot_token = mm.token_for(self.bot)
        base: dict[str, Any] = {
            "chat": "mattermost",
            "mattermost_url": mm.url,
            "mattermost_token": self.bot_token,
            "mattermost_slash_token": SLASH_TOKEN,
            "mattermost_timeout_seconds": 5.0,
        }
        settings = settings_for(store.db.url, **(base | overrides))
        self.rt = Runtime.build(settings, store=store, clock=clock, node_id="test-node")
        self.rt.jobs._leadership = StaticLeadership()
        self.app = create_app(self.rt)

    def api(self) -> httpx.AsyncClient:
        """A client of recapd's API (in-process, in the running event loop)."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://recapd.test"
        )

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def me_calls(self, token: str) -> list[Recorded]:
        """The /users/me calls the server got with this token."""
        return [
            r
            for r in self.mm.calls("GET", "/api/v4/users/me")
            if r.headers.get("authorization") == f"Bearer {token}"
        ]

    async def run_jobs(self, job_type: str) -> None:
        """Run every ready job of the type to its end (in this event loop)."""
        spec = self.rt.jobs.workers[job_type]
        pool = WorkerPool(
            spec, self.store, self.rt.settings, self.clock, "test-node", asyncio.Event()
        )
        while await pool.claim_once():
            while pool.running_ids:
                await asyncio.sleep(0.001)
            await pool.flush()

    def run(self, main: Callable[[], Awaitable[R]]) -> R:
        """Run `main` in one event loop, closing the runtime's HTTP clients after it."""

        async def wrapped() -> R:
            try:
                return await main()
            finally:
                await self.rt.aclose()

        return asyncio.run(wrapped())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def mm(clock: FakeClock) -> Iterator[FakeMattermost]:
    with FakeMattermost(clock) as server:
        yield server


def assert_app_error(resp: httpx.Response, status: int, error_id: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"id", "message", "detailed_error", "request_id", "status_code"}
    assert (body["id"], body["status_code"]) == (error_id, status)


def test_a_mattermost_token_signs_in_as_the_mattermost_user(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)
    mm.add_post(w.dev, w.bob, "The deploy is done.", create_at=T0 - 10 * MIN)

    async def main() -> None:
        async with w.api() as api:
            made = await api.post(
                "/api/v4/recaps",
                json={"title": "Dev", "channel_ids": [w.dev], "agent_id": "extractive"},
                headers=w.auth(w.tokens["alice"]),
            )
            assert made.status_code == 201, made.text
            assert made.json()["user_id"] == w.alice  # the Mattermost user id
            mine = await api.get("/api/v4/recaps", headers=w.auth(w.tokens["alice"]))
            assert mine.status_code == 200
            assert [r["id"] for r in mine.json()] == [made.json()["id"]]
            # Another Mattermost user sees none of it, and cannot open it.
            theirs = await api.get("/api/v4/recaps", headers=w.auth(w.tokens["bob"]))
            assert theirs.status_code == 200 and theirs.json() == []
            other = await api.get(
                f"/api/v4/recaps/{made.json()['id']}", headers=w.auth(w.tokens["bob"])
            )
            assert other.status_code == 404
            # Nor may a user recap a channel they are not in (hr is carol's).
            denied = await api.post(
                "/api/v4/recaps",
                json={"title": "HR", "channel_ids": [w.hr], "agent_id": "extractive"},
                headers=w.auth(w.tokens["alice"]),
            )
            assert denied.status_code == 403, denied.text

    w.run(main)
    assert store.recaps.list_for_user(w.alice)[0].channel_ids == [w.dev]


def test_a_bad_token_is_rejected_with_the_usual_error(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)

    async def main() -> None:
        async with w.api() as api:
            for headers in (
                w.auth("x" * 26),
                w.auth(w.bot_token + "x"),
                {"Authorization": "Basic abc"},
                {},
            ):
                resp = await api.get("/api/v4/recaps", headers=headers)
                assert_app_error(resp, 401, "api.context.session_expired.app_error")

    w.run(main)
    # A deactivated Mattermost user is refused too.
    mm.deactivate(w.carol)

    async def after() -> None:
        async with w.api() as api:
            resp = await api.get("/api/v4/recaps", headers=w.auth(w.tokens["carol"]))
            assert_app_error(resp, 401, "api.context.session_expired.app_error")

    w.run(after)


def test_tokens_that_cannot_be_tokens_are_refused_without_asking_mattermost(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)
    bad_tokens: list[bytes] = [
        "tökén-ünïcode".encode(),  # sent as UTF-8, read as Latin-1 by the server
        "Ω".encode() * 20,
        b"abc\xff\xfe",
        b"tab\tinside",
        b"a" * 201,
        b"x" * 100_000,
    ]

    async def main() -> None:
        async with w.api() as api:
            for token in bad_tokens:
                headers = {b"Authorization": b"Bearer " + token}
                resp = await api.get("/api/v4/recaps", headers=headers)
                assert_app_error(resp, 401, "api.context.session_expired.app_error")
            # 200 printable ASCII characters is still a token worth asking about.
            resp = await api.get("/api/v4/recaps", headers=w.auth("y" * 200))
            assert_app_error(resp, 401, "api.context.session_expired.app_error")

    w.run(main)
    asked = [r.headers.get("authorization", "") for r in mm.calls("GET", "/api/v4/users/me")]
    assert asked == ["Bearer " + "y" * 200]


def test_the_answer_is_cached_for_a_minute_by_token_hash(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)
    alice = w.tokens["alice"]

    async def get(api: httpx.AsyncClient, token: str) -> int:
        return (await api.get("/api/v4/recaps", headers=w.auth(token))).status_code

    async def main() -> None:
        async with w.api() as api:
            assert await get(api, alice) == 200
            assert len(w.me_calls(alice)) == 1
            clock.advance(59_000)
            assert await get(api, alice) == 200
            assert await get(api, alice) == 200
            assert len(w.me_calls(alice)) == 1  # served from the cache
            clock.advance(2_000)
            assert await get(api, alice) == 200
            assert len(w.me_calls(alice)) == 2  # expired: asked again
            # A token revoked on Mattermost stops working once its cache entry expires.
            with mm.lock:
                del mm.tokens[alice]
            assert await get(api, alice) == 200
            clock.advance(61_000)
            assert await get(api, alice) == 401
            # A refused token is cached as well: retrying it does not hammer Mattermost.
            assert await get(api, alice) == 401
            assert len(w.me_calls(alice)) == 3

    w.run(main)
    keys = list(w.rt.sign_in._cache)
    assert keys and all(re.fullmatch(r"[0-9a-f]{64}", k) for k in keys)
    assert alice not in keys and not any(alice in repr(v) for v in w.rt.sign_in._cache.values())


def test_local_tokens_still_sign_in_without_asking_mattermost(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)
    local = store.tokens.create(w.alice, "cli", clock.now_ms())[0]

    async def main() -> None:
        async with w.api() as api:
            resp = await api.get("/api/v4/recaps", headers=w.auth(local))
            assert resp.status_code == 200

    w.run(main)
    assert w.me_calls(local) == []


def test_mattermost_down_is_a_502_not_a_sign_out(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock, mattermost_max_retries=0)
    mm.fail("GET", "/api/v4/users/me", 503)

    async def main() -> None:
        async with w.api() as api:
            resp = await api.get("/api/v4/recaps", headers=w.auth(w.tokens["alice"]))
            assert_app_error(resp, 502, "chat.mattermost.server_error.app_error")
            # Not cached: the next request, with the server back, signs in.
            resp = await api.get("/api/v4/recaps", headers=w.auth(w.tokens["alice"]))
            assert resp.status_code == 200

    w.run(main)


def test_a_schedule_without_a_zone_takes_the_profile_zone(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)
    body = {
        "title": "Morning",
        "days_of_week": 62,
        "time_of_day": "09:00",
        "time_period": "last_24h",
        "channel_mode": "specific",
        "agent_id": "extractive",
    }

    async def main() -> None:
        async with w.api() as api:
            # alice: manual zone; bob: automatic zone wins over his manual one.
            for name, channel, zone in (
                ("alice", w.dev, "Europe/Paris"),
                ("bob", w.dev, "Asia/Tokyo"),
            ):
                resp = await api.post(
                    "/api/v4/scheduled_recaps",
                    json=body | {"channel_ids": [channel]},
                    headers=w.auth(w.tokens[name]),
                )
                assert resp.status_code == 201, resp.text
                assert resp.json()["timezone"] == zone
            # A zone given is kept.
            resp = await api.post(
                "/api/v4/scheduled_recaps",
                json=body | {"channel_ids": [w.dev], "timezone": "America/New_York"},
                headers=w.auth(w.tokens["alice"]),
            )
            assert resp.json()["timezone"] == "America/New_York"
            # carol's profile has no zone: the usual validation error, no guess.
            resp = await api.post(
                "/api/v4/scheduled_recaps",
                json=body | {"channel_ids": [w.ops]},
                headers=w.auth(w.tokens["carol"]),
            )
            assert resp.status_code == 400, resp.text
            assert "timezone" in resp.json()["message"]

    w.run(main)


def test_a_mattermost_user_is_looked_up_by_id_for_sessions(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)

    async def main() -> None:
        found = await w.rt.sign_in.mattermost_user(w.bob)
        assert found is not None
        assert (found.user_id, found.username, found.timezone) == (w.bob, "bob", "Asia/Tokyo")
        assert await w.rt.sign_in.mattermost_user("x" * 26) is None
        mm.deactivate(w.bob)
        assert await w.rt.sign_in.mattermost_user(w.bob) is not None  # cached for a minute
        clock.advance(61_000)
        assert await w.rt.sign_in.mattermost_user(w.bob) is None

    w.run(main)


def test_the_web_pages_sign_in_with_a_mattermost_token(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)
    csrf_re = re.compile(r'name="csrf_token" value="([^"]+)"')

    async def sign_in(web: httpx.AsyncClient, token: str) -> httpx.Response:
        page = await web.get("/login")
        match = csrf_re.search(page.text)
        assert match, page.text
        return await web.post("/login", data={"token": token, "csrf_token": match.group(1)})

    async def main() -> None:
        async with w.api() as web:
            bad = await sign_in(web, "x" * 26)
            assert bad.status_code == 400 and "not valid" in bad.text
            for odd in ("tökén", "z" * 201):
                bad = await sign_in(web, odd)
                assert bad.status_code == 400 and "not valid" in bad.text
            assert [r.headers["authorization"] for r in w.me_calls("x" * 26)] == [
                "Bearer " + "x" * 26
            ]
            assert len(mm.calls("GET", "/api/v4/users/me")) == 1
            ok = await sign_in(web, w.tokens["alice"])
            assert ok.status_code == 303, ok.text
            home = await web.get("/")
            assert home.status_code == 200 and "Alice" in home.text
            # The schedule form offers the Mattermost channels alice may read, not hr.
            form = await web.get("/schedules/new")
            assert f'value="{w.dev}"' in form.text and w.hr not in form.text
            # Deactivated on Mattermost: signed out once the cached answer expires.
            mm.deactivate(w.alice)
            clock.advance(2 * MIN)
            gone = await web.get("/")
            assert gone.status_code == 303 and gone.headers["location"].startswith("/login")

    w.run(main)
