"""Web sessions are rows, on SQLite and PostgreSQL: signing out, revoking the token and expiry
end them on every node (a copy of the cookie taken before stops working), the leader's cleanup
deletes expired rows; form posts from another site's page (Origin) are refused."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient

from recapd.api.app import create_app
from recapd.clock import FakeClock
from recapd.jobs.housekeeping import DAY_MS, WebSessionCleanup
from recapd.jobs.leader import StaticLeadership
from recapd.jobs.scheduler import SchedulerRunner
from recapd.model.ids import new_id
from recapd.store.store import Store
from recapd.store.tables import web_sessions
from recapd.web.session import COOKIE_NAME
from tests.factories import NOW
from tests.test_job_server import make_server
from tests.test_recaps_app import runtime_for
from tests.test_web import form, made_recap, make_site


def _rows(store: Store) -> int:
    with store.transaction() as conn:
        return len(conn.execute(web_sessions.select()).all())


def test_session_rows_live_until_ended_revoked_or_expired(store: Store) -> None:
    sessions = store.web_sessions
    user = new_id()
    token = store.tokens.create(user, "web", NOW)[1]
    a = sessions.create(user, token.id, NOW, NOW + 1000)
    b = sessions.create(user, token.id, NOW, NOW + 1000)
    other = sessions.create(user, "mattermost", NOW, NOW + 10)
    found = sessions.get(a, NOW + 999)
    assert found is not None and (found.user_id, found.token_id) == (user, token.id)
    assert found.create_at == NOW and found.expires_at == NOW + 1000
    assert sessions.get(a, NOW + 1000) is None  # expired
    assert sessions.get("not-a-session", NOW) is None
    # Only the SHA-256 of the id is kept.
    with store.transaction() as conn:
        stored = {r.id_hash for r in conn.execute(web_sessions.select())}
    assert a not in stored and len(stored) == 3

    assert sessions.end(a) is True and sessions.end(a) is False
    assert sessions.get(a, NOW) is None and sessions.get(b, NOW) is not None
    # Revoking the token ends its sessions, and no other.
    assert store.tokens.revoke(token.id, NOW) is True
    assert sessions.get(b, NOW) is None and sessions.get(other, NOW) is not None


def test_the_leaders_cleanup_deletes_expired_sessions_in_batches(store: Store) -> None:
    clock = FakeClock(NOW)
    server = make_server(store, clock, cleanup_batch_size=2)
    expired = [store.web_sessions.create(new_id(), "t", NOW, NOW + i) for i in range(1, 6)]
    live = store.web_sessions.create(new_id(), "t", NOW, NOW + DAY_MS)
    clock.advance(10)
    runner = SchedulerRunner(
        [WebSessionCleanup(store)], server, StaticLeadership(), server.settings, clock
    )
    asyncio.run(runner.tick())
    assert _rows(store) == 1
    assert store.web_sessions.get(live, clock.now_ms()) is not None
    assert all(store.web_sessions.get(e, NOW) is None for e in expired)


def test_a_cookie_copied_before_sign_out_stops_working_on_every_node(store: Store) -> None:
    site = make_site(store)
    b = site.client("alice")
    copy = b.http.cookies[COOKIE_NAME]
    assert _rows(store) == 1
    # Another node (another app and runtime on the same database) takes the same cookie.
    node2 = TestClient(create_app(runtime_for(store, site.clock)), follow_redirects=False)
    node2.cookies.set(COOKIE_NAME, copy)
    assert node2.get("/").status_code == 200

    out = b.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert _rows(store) == 0
    for node in (node2, site.client().http):
        node.cookies.set(COOKIE_NAME, copy)
        gone = node.get("/")
        assert gone.status_code == 303 and gone.headers["location"] == "/login?next=/"
    # Signing in again makes a new session; the old cookie stays dead.
    b.sign_in(site.tokens["alice"])
    assert b.http.get("/").status_code == 200 and _rows(store) == 1
    node2.cookies.set(COOKIE_NAME, copy)
    assert node2.get("/").status_code == 303


def test_revoking_the_token_or_the_session_growing_old_ends_it(store: Store) -> None:
    site = make_site(store)
    alice = site.client("alice")
    bob = site.client("bob")
    assert _rows(store) == 2
    (token,) = store.tokens.list_for_user(site.user("alice"))
    store.tokens.revoke(token.id, site.clock.now_ms())
    assert _rows(store) == 1  # alice's row went with her token
    assert alice.http.get("/").status_code == 303
    site.clock.advance(30 * DAY_MS)
    assert bob.http.get("/").status_code == 303


def test_form_posts_from_another_sites_page_are_refused(store: Store) -> None:
    site = make_site(store, public_url="https://recaps.example.com/")
    alice = site.client("alice")
    rid = made_recap(site)
    csrf = alice.csrf("/")
    for origin in ("https://evil.example", "null", "http://testserver.evil.example", "x"):
        for path, data in [
            ("/schedules", form(site)),
            (f"/recaps/{rid}/delete", {}),
            ("/logout", {}),
        ]:
            resp = alice.http.post(
                path, data={**data, "csrf_token": csrf}, headers={"Origin": origin}
            )
            assert resp.status_code == 403, (origin, path)
            assert "sent from another site" in resp.text
            assert "app_error" not in resp.text  # words, not the id
            assert "set-cookie" not in resp.headers  # the visitor's cookie stays as it was
    signed_out = site.client()
    login = signed_out.http.post(
        "/login",
        data={"token": site.tokens["bob"], "csrf_token": signed_out.csrf()},
        headers={"Origin": "https://evil.example"},
    )
    assert login.status_code == 403 and _rows(store) == 1
    # Nothing changed.
    assert asyncio.run(site.rt.schedules.list_for_user(site.user("alice"))) == []
    assert asyncio.run(site.rt.recaps.get(site.user("alice"), rid)).delete_at == 0
    assert alice.http.get("/").status_code == 200

    # Its own origin, the configured public address (behind a proxy) and none at all pass.
    for headers in (
        {"Origin": "http://testserver"},
        {"Origin": "https://recaps.example.com"},
        {},
    ):
        resp = alice.http.post(
            "/schedules", data={**form(site), "csrf_token": alice.csrf("/")}, headers=headers
        )
        assert resp.status_code == 303, (headers, resp.text)
