"""The pages under hostile or odd input, on both engines: Mattermost-token sessions end after
`mattermost_web_session_hours`, NUL in a page URL is a 400/404 page (never a 500), every page
forbids framing, live-update streams are capped per user and read without the write lock, and
times beyond year 9999 in a zone east of UTC still render."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from recapd.api.app import create_app
from recapd.clock import FakeClock
from recapd.model.chat import User
from recapd.model.ids import new_id
from recapd.store.store import Store
from recapd.store.tables import recaps
from recapd.web.live import MAX_STREAMS_PER_USER, RecapWatcher, StreamLimit
from recapd.web.session import COOKIE_NAME
from recapd.web.templating import clock, iso, when
from tests.factories import NOW, recap
from tests.fake_mattermost import FakeMattermost
from tests.test_mattermost_signin import MIN, MattermostWorld
from tests.test_web import Site, form, made_recap, make_site

HOUR = 60 * MIN
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the largest create_at accepted
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


# -- Mattermost-token sessions are short -----------------------------------------------------------


@pytest.fixture
def mm_clock() -> FakeClock:
    return FakeClock(1_790_000_000_000)


@pytest.fixture
def mm(mm_clock: FakeClock) -> Iterator[FakeMattermost]:
    with FakeMattermost(mm_clock) as server:
        yield server


async def _web_sign_in(web: httpx.AsyncClient, token: str) -> httpx.Response:
    page = await web.get("/login")
    found = CSRF_RE.search(page.text)
    assert found, page.text
    return await web.post("/login", data={"token": token, "csrf_token": found.group(1)})


def test_a_mattermost_token_session_ends_after_the_configured_hours(
    store: Store, mm: FakeMattermost, mm_clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, mm_clock)
    assert w.rt.settings.mattermost_web_session_hours == 12

    async def main() -> None:
        async with w.api() as web:
            assert (await _web_sign_in(web, w.tokens["alice"])).status_code == 303
            # The token is revoked on Mattermost: the user is still active, so the session
            # lives on, but no longer than the configured lifetime.
            with mm.lock:
                del mm.tokens[w.tokens["alice"]]
            mm_clock.advance(12 * HOUR - MIN)
            assert (await web.get("/")).status_code == 200
            mm_clock.advance(2 * MIN)
            gone = await web.get("/")
            assert gone.status_code == 303 and gone.headers["location"] == "/login?next=/"
            login = await web.get("/login")
            assert "Your sign-in with a Mattermost token has ended after 12 hours" in login.text
            assert (await web.get("/events")).status_code == 401
            # The revoked token cannot sign in again.
            again = await _web_sign_in(web, w.tokens["alice"])
            assert again.status_code == 400

    w.run(main)


def test_the_mattermost_session_lifetime_is_a_setting_and_local_sessions_are_not_cut(
    store: Store, mm: FakeMattermost, mm_clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, mm_clock, mattermost_web_session_hours=1)
    # A user of recapd's own (`recapd users add`) with a local token.
    dana = User(id=new_id(), username="dana", timezone="UTC")
    store.workspace.upsert_users([dana])
    local = store.tokens.create(dana.id, "cli", mm_clock.now_ms())[0]

    async def main() -> None:
        async with w.api() as mm_web, w.api() as local_web:
            assert (await _web_sign_in(mm_web, w.tokens["alice"])).status_code == 303
            assert (await _web_sign_in(local_web, local)).status_code == 303
            mm_clock.advance(HOUR - MIN)
            assert (await mm_web.get("/")).status_code == 200
            mm_clock.advance(2 * MIN)
            assert (await mm_web.get("/")).status_code == 303
            # A session of a local token is not cut short (it ends when its token is revoked).
            assert (await local_web.get("/")).status_code == 200

    w.run(main)


# -- NUL in a page URL -----------------------------------------------------------------------------


def test_nul_in_a_page_url_is_a_400_or_404_page_never_a_500(store: Store) -> None:
    site = make_site(store)
    made_recap(site)
    alice, erin = site.client("alice"), site.client("erin")
    for path in (
        "/recaps/%00",
        "/schedules/%00/edit",
        "/acme/pl/%00",
        "/%00/pl/x",
        "/jobs?type=%00",
        "/login?next=/%00",
        "/recaps/%ED%A0%80",
    ):
        for who in (alice, erin):
            resp = who.http.get(path)
            assert resp.status_code in (400, 404), (path, resp.status_code, resp.text)
            assert resp.headers["content-type"].startswith("text/html"), path
    for path in (
        "/recaps/%00/read",
        "/recaps/%00/regenerate",
        "/recaps/%00/delete",
        "/schedules/%00",
        "/schedules/%00/pause",
        "/schedules/%00/resume",
        "/schedules/%00/run",
        "/schedules/%00/delete",
        "/jobs/%00/cancel",
    ):
        resp = erin.post(path)
        assert resp.status_code in (400, 404), (path, resp.status_code, resp.text)
        assert resp.headers["content-type"].startswith("text/html"), path
    # The page says what was wrong.
    page = alice.http.get("/recaps/%00")
    assert "characters recapd cannot read" in page.text and "app_error" not in page.text
    assert alice.http.get("/").status_code == 200


# -- No framing ------------------------------------------------------------------------------------


def _assert_unframeable(resp: Any, what: str) -> None:
    assert resp.headers["content-type"].startswith("text/html"), what
    assert resp.headers.get("x-frame-options") == "DENY", what
    csp = resp.headers.get("content-security-policy", "")
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", (what, csp)
    assert directives.get("default-src") == "default-src 'self'", (what, csp)
    assert resp.headers.get("x-content-type-options") == "nosniff", what


def test_every_page_forbids_framing(store: Store) -> None:
    site = make_site(store)
    rid = made_recap(site)
    anonymous = site.client()
    _assert_unframeable(anonymous.http.get("/login"), "/login")
    bad = anonymous.http.post("/login", data={"token": "x", "csrf_token": anonymous.csrf()})
    _assert_unframeable(bad, "POST /login")
    _assert_unframeable(anonymous.http.post("/logout"), "POST /logout without CSRF")
    alice = site.client("alice")
    alice.post("/schedules", form(site))
    (sr,) = asyncio.run(site.rt.schedules.list_for_user(site.user("alice")))
    post_id = site.ws.posts[0].id
    for path in (
        "/",
        "/recaps/new",
        f"/recaps/{rid}",
        "/recaps/" + "x" * 26,
        "/schedules",
        "/schedules/new",
        f"/schedules/{sr.id}/edit",
        f"/acme/pl/{post_id}",
        "/jobs",
    ):
        _assert_unframeable(alice.http.get(path), path)
    _assert_unframeable(site.client("erin").http.get("/jobs"), "/jobs (admin)")
    _assert_unframeable(alice.post("/schedules", form(site, title="")), "form error")


# -- Times at the end of the calendar --------------------------------------------------------------


def test_times_beyond_year_9999_in_the_zone_fall_back_to_utc_or_the_raw_value() -> None:
    assert when(MAX_TIME_MS, "Asia/Tokyo") == "Fri 31 Dec 9999, 23:59 UTC"
    assert clock(MAX_TIME_MS, "Asia/Tokyo") == "23:59 UTC"
    assert when(MAX_TIME_MS, "America/New_York") == "Fri 31 Dec 9999, 18:59 EST"
    assert iso(MAX_TIME_MS) == "9999-12-31T23:59:59+00:00"
    # Beyond what a date can hold at all: the raw value, and no machine-readable instant.
    assert when(10**17, "UTC") == "100000000000000000 ms"
    assert clock(10**17, "Asia/Tokyo") == "100000000000000000 ms"
    assert when(-(10**17), "UTC") == "-100000000000000000 ms"
    assert iso(10**17) == ""


def test_a_post_dated_9999_opens_for_a_reader_east_of_utc(store: Store) -> None:
    from dataclasses import replace

    site = make_site(store)
    last = replace(site.ws.posts[0], id="p" * 26, create_at=MAX_TIME_MS, update_at=MAX_TIME_MS)
    store.workspace.upsert_posts([last])
    store.workspace.upsert_users([replace(site.ws.users["alice"], timezone="Asia/Tokyo")])
    page = site.client("alice").http.get(f"/acme/pl/{last.id}")
    assert page.status_code == 200, page.text
    assert "Fri 31 Dec 9999, 23:59 UTC" in page.text


# -- Live-update streams ---------------------------------------------------------------------------


def test_a_poll_neither_waits_for_nor_blocks_a_writer(store: Store) -> None:
    user = "u" * 26
    old = store.recaps.save(recap(user_id=user, create_at=NOW - 60_000, update_at=NOW - 60_000))
    watcher = RecapWatcher(store, user, NOW - 10_000)
    other = Store.open(store.db.url)
    pool = ThreadPoolExecutor(2)
    try:
        # A job worker holds a write transaction (a row lock; on SQLite the database's write
        # lock): the poll still answers at once.
        with other.transaction() as conn:
            conn.execute(
                recaps.update().where(recaps.c.id == old.id).values(update_at=recaps.c.update_at)
            )
            polled = pool.submit(watcher.poll)
            try:
                assert polled.result(timeout=5) == []
            except FutureTimeout:
                pytest.fail("the poll waited for the writer's lock")
        # While a poll's transaction is open, the worker commits.
        with store.db.read_transaction() as reading:
            reading.execute(sa.select(recaps.c.id).limit(1)).all()
            wrote = pool.submit(lambda: other.recaps.save(recap(user_id=user, update_at=NOW)))
            try:
                wrote.result(timeout=5)
            except FutureTimeout:
                pytest.fail("the writer waited for a reading transaction")
        assert [r.update_at for r in watcher.poll()] == [NOW]
    finally:
        pool.shutdown(wait=True)
        other.close()


def test_a_read_transaction_refuses_writes_on_postgresql(pg_url: str) -> None:
    # (SQLite's deferred transaction is read-only by use: it is only handed to reads.)
    store = Store.open(pg_url)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="read-only"), store.db.read_transaction() as c:
            c.execute(recaps.delete())
    finally:
        store.close()


class RawStream:
    """One GET /events over raw ASGI (no HTTP client buffers the endless body)."""

    def __init__(self, app: Any, cookie: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.app, self.cookie, self.extra = app, cookie, list(headers)
        self.status = 0
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.left = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> str:
        """Start the request; the first chunk."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/events",
            "raw_path": b"/events",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"recapd.test"), (b"cookie", self.cookie.encode()), *self.extra],
            "client": ("127.0.0.1", 5000),
            "server": ("recapd.test", 80),
        }
        sent_body = False

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self.left.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
            elif message["type"] == "http.response.body":
                await self.chunks.put(message.get("body", b""))
                if not message.get("more_body"):
                    await self.chunks.put(None)

        self.task = asyncio.create_task(self.app(scope, receive, send))
        return await self.next()

    async def next(self, timeout: float = 5.0) -> str:
        """The next chunk; "" at the end of the body."""
        chunk = await asyncio.wait_for(self.chunks.get(), timeout)
        while chunk == b"":
            chunk = await asyncio.wait_for(self.chunks.get(), timeout)
        return "" if chunk is None else chunk.decode()

    async def leave(self) -> None:
        """The browser goes away."""
        self.left.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 5)


def _cookie(site: Site, user: str) -> str:
    return f"{COOKIE_NAME}={site.client(user).http.cookies[COOKIE_NAME]}"


def test_a_user_has_at_most_five_streams_and_the_oldest_is_told_why_it_ends(
    store: Store,
) -> None:
    site = make_site(store)
    app = create_app(site.rt)
    alice, bob = _cookie(site, "alice"), _cookie(site, "bob")
    assert MAX_STREAMS_PER_USER == 5

    async def main() -> None:
        streams = [RawStream(app, alice) for _ in range(5)]
        bobs = RawStream(app, bob)
        for s in [*streams, bobs]:
            assert await s.open() == "retry: 2000\n\n"
            assert s.status == 200
        sixth = RawStream(app, alice)
        assert await sixth.open() == "retry: 2000\n\n"
        # The oldest of alice's streams ends with a reason the page shows; no reconnection.
        closed = await streams[0].next()
        assert closed.startswith("event: closed\n"), closed
        assert "too many pages with live updates" in closed
        assert await streams[0].next() == ""
        await streams[0].task  # type: ignore[misc]
        # A stream that ends frees its place: the next one closes nothing.
        await streams[1].leave()
        seventh = RawStream(app, alice)
        assert await seventh.open() == "retry: 2000\n\n"
        assert app.state.live_streams.count(site.user("alice")) == 5
        assert app.state.live_streams.count(site.user("bob")) == 1
        for s in [*streams[2:], sixth, seventh, bobs]:
            assert s.task is not None and not s.task.done()
            await s.leave()
        assert app.state.live_streams.count(site.user("alice")) == 0

    asyncio.run(main())


def test_a_non_ascii_digit_in_last_event_id_is_ignored(store: Store) -> None:
    site = make_site(store)
    app = create_app(site.rt)
    alice = _cookie(site, "alice")

    async def main() -> None:
        # "²" (0xB2 in Latin-1, as headers are read) is a digit to str.isdigit, not to int().
        s = RawStream(app, alice, [(b"last-event-id", b"\xb2")])
        assert await s.open() == "retry: 2000\n\n"
        assert s.status == 200
        await s.leave()

    asyncio.run(main())


def test_the_stream_limit_closes_the_oldest_of_one_user() -> None:
    limit = StreamLimit(2)
    opened = [limit.open("u") for _ in range(3)]
    other = limit.open("v")
    assert [s.closed.is_set() for s in opened] == [True, False, False]
    assert not other.closed.is_set()
    assert (limit.count("u"), limit.count("v")) == (2, 1)
    for s in [*opened, other, opened[0]]:  # releasing twice is harmless
        limit.release(s)
    assert (limit.count("u"), limit.count("v")) == (0, 0)
