"""The web pages in-process (FastAPI TestClient) on both engines: sign-in and the session
cookie, CSRF rejection, every page, the schedule form's messages next to their fields,
ownership (someone else's objects look missing), and the live-update stream."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from recapd.api.app import create_app
from recapd.clock import FakeClock
from recapd.config import ConfigError, load_settings
from recapd.model.chat import Channel, ChannelMember, User
from recapd.model.ids import new_id
from recapd.model.recap import Highlight, RecapStatus
from recapd.runtime import Runtime
from recapd.store.store import Store
from recapd.web.live import RecapWatcher, recap_events
from recapd.web.session import COOKIE_NAME, SECRET_NAME
from recapd.web.viewer import Viewer
from tests.test_recaps_app import T0, runtime_for, team_workspace
from tests.workspace import Workspace

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Site:
    rt: Runtime
    ws: Workspace
    clock: FakeClock
    tokens: dict[str, str]

    def client(self, user: str | None = None) -> Browser:
        """A browser, signed in as `user` when given."""
        b = Browser(TestClient(create_app(self.rt), follow_redirects=False), self)
        if user is not None:
            b.sign_in(self.tokens[user])
        return b

    def channel(self, name: str) -> str:
        return self.ws.channels[name].id

    def user(self, name: str) -> str:
        return self.ws.users[name].id


@dataclass
class Browser:
    http: TestClient
    site: Site

    def csrf(self, path: str = "/login") -> str:
        page = self.http.get(path)
        found = CSRF_RE.search(page.text)
        assert found, page.text
        return found.group(1)

    def sign_in(self, token: str) -> Any:
        resp = self.http.post("/login", data={"token": token, "csrf_token": self.csrf()})
        assert resp.status_code == 303, resp.text
        return resp

    def post(self, path: str, data: dict[str, Any] | None = None, csrf_from: str = "/") -> Any:
        body = {"csrf_token": self.csrf(csrf_from), **(data or {})}
        return self.http.post(path, data=body)


def make_site(store: Store, **overrides: Any) -> Site:
    ws = team_workspace(store)
    clock = FakeClock(T0 + 3_600_000)
    rt = runtime_for(store, clock, **overrides)
    tokens = {
        name: store.tokens.create(ws.users[name].id, "web", clock.now_ms())[0]
        for name in ("alice", "bob", "erin")
    }
    store.tokens.set_roles(ws.users["erin"].id, "system_admin")
    return Site(rt, ws, clock, tokens)


async def _no_progress(_: int) -> None:
    return None


def made_recap(site: Site, user: str = "alice", channels: tuple[str, ...] = ("dev",)) -> str:
    """A completed recap of `user`'s, made by the real pipeline."""
    ids = [site.channel(c) for c in channels]
    recap = asyncio.run(site.rt.recaps.create(site.user(user), title="Dev recap", channel_ids=ids))
    asyncio.run(site.rt.recaps.process_recap(recap.id, _no_progress))
    return recap.id


def form(site: Site, **fields: Any) -> dict[str, Any]:
    """A valid schedule form; keyword arguments replace fields (None drops one)."""
    base: dict[str, Any] = {
        "title": "Morning",
        "days": ["2", "8", "32"],
        "time_of_day": "09:00",
        "timezone": "Europe/Paris",
        "is_recurring": "weekly",
        "time_period": "last_24h",
        "channel_mode": "specific",
        "channel_ids": [site.channel("dev")],
        "agent_id": "extractive",
        "custom_instructions": "",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def field_error(html: str, name: str) -> str:
    """The message shown under field `name`, or ""."""
    found = re.search(rf'<p class="field-error" id="{name}-error"[^>]*>(.*?)</p>', html, re.S)
    return found.group(1).strip() if found else ""


# -- sign-in -------------------------------------------------------------------------------------


def test_sign_in_gives_a_signed_httponly_lax_cookie_and_sign_out_ends_it(store: Store) -> None:
    site = make_site(store)
    b = site.client()
    resp = b.http.get("/schedules?x=1")
    assert resp.status_code == 303 and resp.headers["location"] == "/login?next=/schedules%3Fx%3D1"

    bad = b.http.post("/login", data={"token": "nope", "csrf_token": b.csrf()})
    assert bad.status_code == 400 and "This token is not valid" in bad.text
    empty = b.http.post("/login", data={"token": "", "csrf_token": b.csrf()})
    assert empty.status_code == 400 and "Paste your personal access token" in empty.text

    login = b.http.post(
        "/login",
        data={"token": site.tokens["alice"], "csrf_token": b.csrf(), "next": "/schedules"},
    )
    assert login.status_code == 303 and login.headers["location"] == "/schedules"
    cookie = login.headers["set-cookie"].lower()
    assert f"{COOKIE_NAME}=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    page = b.http.get("/")
    assert page.status_code == 200 and "Sign out" in page.text and ">alice<" in page.text

    # An outside `next` is not followed.
    other = site.client()
    off = other.http.post(
        "/login",
        data={"token": site.tokens["bob"], "csrf_token": other.csrf(), "next": "//evil.example/"},
    )
    assert off.headers["location"] == "/"

    # A forged or altered cookie is no session.
    forged = site.client()
    value = b.http.cookies[COOKIE_NAME]
    forged.http.cookies.set(COOKIE_NAME, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    assert forged.http.get("/").status_code == 303

    out = b.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert "You are signed out." in b.http.get("/login").text
    assert b.http.get("/").status_code == 303


def test_a_revoked_token_or_an_old_session_signs_out(store: Store) -> None:
    site = make_site(store)
    b = site.client("alice")
    assert b.http.get("/").status_code == 200
    (token,) = store.tokens.list_for_user(site.user("alice"))
    store.tokens.revoke(token.id, site.clock.now_ms())
    assert b.http.get("/").status_code == 303

    b = site.client("bob")
    site.clock.advance(29 * 86_400_000)
    assert b.http.get("/").status_code == 200
    site.clock.advance(2 * 86_400_000)  # past 30 days since sign-in
    assert b.http.get("/").status_code == 303


def test_the_session_secret_is_shared_through_the_database_unless_configured(
    store: Store,
) -> None:
    site = make_site(store)
    b = site.client("alice")
    stored = store.secrets.get(SECRET_NAME)
    assert stored and len(stored) >= 32
    # Another node (another app and runtime on the same database) accepts the cookie.
    node2 = runtime_for(store, site.clock)
    other = TestClient(create_app(node2), follow_redirects=False)
    other.cookies.set(COOKIE_NAME, b.http.cookies[COOKIE_NAME])
    assert other.get("/").status_code == 200
    # A configured secret replaces the stored one: the old cookie is no longer valid.
    node3 = runtime_for(store, site.clock, session_secret="s" * 40)
    third = TestClient(create_app(node3), follow_redirects=False)
    third.cookies.set(COOKIE_NAME, b.http.cookies[COOKIE_NAME])
    assert third.get("/").status_code == 303
    assert store.secrets.get(SECRET_NAME) == stored


# -- CSRF ----------------------------------------------------------------------------------------


def test_form_posts_without_the_sessions_csrf_token_are_rejected(store: Store) -> None:
    site = make_site(store)
    alice = site.client("alice")
    bob = site.client("bob")
    rid = made_recap(site)
    bobs_token = bob.csrf("/")
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "x" * 32}, {"csrf_token": bobs_token}):
        for path, extra in [
            ("/schedules", form(site)),
            ("/recaps", {"channel_ids": [site.channel("dev")]}),
            (f"/recaps/{rid}/delete", {}),
            ("/logout", {}),
        ]:
            resp = alice.http.post(path, data={**extra, **data})
            assert resp.status_code == 403, (path, data)
            assert "app_error" not in resp.text  # words, not the error's id
            assert "did not come from recapd" in resp.text
    no_login = site.client()
    resp = no_login.http.post("/login", data={"token": site.tokens["alice"]})
    assert resp.status_code == 403 and no_login.http.get("/").status_code == 303
    # Nothing happened.
    assert asyncio.run(site.rt.schedules.list_for_user(site.user("alice"))) == []
    assert [r.id for r in store.recaps.list_for_user(site.user("alice"), 0, 10)] == [rid]
    assert asyncio.run(site.rt.recaps.get(site.user("alice"), rid)).delete_at == 0
    assert alice.http.get("/").status_code == 200


# -- the pages -----------------------------------------------------------------------------------


def test_every_page_renders_with_links_to_the_cited_posts(store: Store) -> None:
    site = make_site(store)
    rid = made_recap(site, channels=("dev", "ops"))
    alice = site.client("alice")
    assert alice.post("/schedules", form(site)).status_code == 303
    (sr,) = asyncio.run(site.rt.schedules.list_for_user(site.user("alice")))

    listing = alice.http.get("/")
    assert listing.status_code == 200
    assert f'id="recap-{rid}"' in listing.text and "badge-completed" in listing.text
    assert 'data-live="list"' in listing.text

    page = alice.http.get(f"/recaps/{rid}")
    assert page.status_code == 200
    assert "#dev" in page.text.lower() or "#Dev" in page.text
    recap = asyncio.run(site.rt.recaps.get(site.user("alice"), rid))
    cited = [p for ch in recap.channels for h in ch.highlights for p in h.post_ids]
    assert cited
    # Links are the chat source's permalinks: {site_url}/{team}/pl/{post_id}.
    assert f'href="http://127.0.0.1:8065/acme/pl/{cited[0]}"' in page.text
    assert "Highlights" in page.text and "Mark read" in page.text

    post = alice.http.get(f"/acme/pl/{cited[0]}")
    assert post.status_code == 200 and "post-target" in post.text
    target = next(p for p in site.ws.posts if p.id == cited[0])
    assert target.message.split()[0] in post.text

    schedules = alice.http.get("/schedules")
    assert schedules.status_code == 200 and "Morning" in schedules.text
    assert "(Europe/Paris)" in schedules.text and "Next run:" in schedules.text
    assert alice.http.get("/schedules/new").status_code == 200
    edit = alice.http.get(f"/schedules/{sr.id}/edit")
    assert edit.status_code == 200 and 'value="Morning"' in edit.text

    erin = site.client("erin")
    jobs = erin.http.get("/jobs")
    assert jobs.status_code == 200 and "recap" in jobs.text and "Attempts" in jobs.text
    assert erin.http.get("/jobs?type=recap&status=pending").status_code == 200
    assert alice.http.get("/static/app.css").status_code == 200
    assert alice.http.get("/static/app.js").status_code == 200
    # The pages stay out of the API's OpenAPI document.
    paths = alice.http.get("/openapi.json").json()["paths"]
    assert not any(p in paths for p in ("/", "/login", "/schedules", "/events"))


def test_open_questions_and_the_limit_notice_are_on_the_card(store: Store) -> None:
    site = make_site(store)
    rid = made_recap(site, channels=("dev",))
    recap = asyncio.run(site.rt.recaps.get(site.user("alice"), rid))
    (ch,) = recap.channels
    asked = next(p for p in site.ws.posts if p.channel_id == ch.channel_id)
    ch.open_questions = [Highlight("@bob: who owns the nightly job?", [asked.id])]
    ch.notice = "The 30 oldest messages (08:00-08:30 UTC) were not read: the limit is 100."
    store.recaps.save_channel(ch)
    page = site.client("alice").http.get(f"/recaps/{rid}")
    assert page.status_code == 200
    assert "Open questions" in page.text and "who owns the nightly job?" in page.text
    # Its citation links to the post, like every other item's.
    assert f'href="http://127.0.0.1:8065/acme/pl/{asked.id}"' in page.text
    assert "The 30 oldest messages (08:00-08:30 UTC) were not read" in page.text


def test_next_run_is_shown_in_the_schedules_zone(store: Store) -> None:
    site = make_site(store)
    alice = site.client("alice")
    # T0 + 1 h is Monday 2026-09-21 15:13 UTC: 17:13 in Paris, 09:00 Tuesday is next.
    alice.post("/schedules", form(site, timezone="Europe/Paris", days=["4"], time_of_day="09:00"))
    alice.post(
        "/schedules",
        form(site, title="Evening", timezone="America/New_York", days=["2"], time_of_day="18:30"),
    )
    page = alice.http.get("/schedules").text
    assert "Next run: <time" in page
    assert "Tue 22 Sep 2026, 09:00 CEST" in page
    assert "Mon 21 Sep 2026, 18:30 EDT" in page


def test_the_schedule_form_shows_every_error_next_to_its_field(store: Store) -> None:
    site = make_site(store)
    alice = site.client("alice")
    resp = alice.post(
        "/schedules",
        form(site, title="  ", days=None, time_of_day="25:00", channel_ids=None),
        csrf_from="/schedules/new",
    )
    assert resp.status_code == 400
    html = resp.text
    assert field_error(html, "title") == "Title must not be empty"
    assert field_error(html, "days_of_week") == "Choose at least one day."
    assert field_error(html, "time_of_day") == "Enter the time as HH:MM, 24-hour (00:00 to 23:59)."
    assert field_error(html, "channel_ids").startswith("Choose at least one channel")
    assert field_error(html, "timezone") == ""
    # What was typed is kept.
    assert 'value="25:00"' in html
    assert asyncio.run(site.rt.schedules.list_for_user(site.user("alice"))) == []

    cases = {
        "timezone": form(site, timezone="Mars/Olympus"),
        "time_period": form(site, time_period="forever"),
        "channel_mode": form(site, channel_mode="some"),
        "custom_instructions": form(site, custom_instructions="é" * 300),
        "agent_id": form(site, agent_id="nope"),
        "title": form(site, title="bad\x00title"),
    }
    for name, data in cases.items():
        resp = alice.post("/schedules", data)
        assert resp.status_code == 400, name
        assert field_error(resp.text, name), (name, resp.text)
    # A channel alice cannot read (hr) is refused next to the channel picker.
    resp = alice.post("/schedules", form(site, channel_ids=[site.channel("hr")]))
    assert resp.status_code == 400
    assert "cannot read one of the chosen channels" in field_error(resp.text, "channel_ids")
    assert asyncio.run(site.rt.schedules.list_for_user(site.user("alice"))) == []


def test_the_schedule_limit_is_shown_above_the_form(store: Store) -> None:
    site = make_site(store, ai_recaps={"max_scheduled_recaps": 1})
    alice = site.client("alice")
    assert alice.post("/schedules", form(site)).status_code == 303
    resp = alice.post("/schedules", form(site, title="Second"))
    assert resp.status_code == 400
    assert 'id="form-error"' in resp.text and "maximum of 1 active" in resp.text


def test_schedule_actions_through_the_pages(store: Store) -> None:
    site = make_site(store)
    alice = site.client("alice")
    created = alice.post("/schedules", form(site, channel_mode="all_unreads"))
    assert created.status_code == 303
    assert "Schedule “Morning” created. Next run:" in alice.http.get("/schedules").text
    (sr,) = asyncio.run(site.rt.schedules.list_for_user(site.user("alice")))
    assert sr.channel_mode == "all_unreads" and sr.channel_ids == []
    assert sr.days_of_week == 2 | 8 | 32 and sr.timezone == "Europe/Paris"

    edit = alice.post(
        f"/schedules/{sr.id}",
        form(site, title="Mornings", time_of_day="07:45", update_at=str(sr.update_at)),
        csrf_from=f"/schedules/{sr.id}/edit",
    )
    assert edit.status_code == 303
    got = asyncio.run(site.rt.schedules.get(site.user("alice"), sr.id))
    assert (got.title, got.time_of_day, got.channel_mode) == ("Mornings", "07:45", "specific")
    stale = alice.post(f"/schedules/{sr.id}", form(site, update_at=str(sr.update_at)))
    assert stale.status_code == 400 and 'id="form-error"' in stale.text

    assert alice.post(f"/schedules/{sr.id}/pause").status_code == 303
    assert not asyncio.run(site.rt.schedules.get(site.user("alice"), sr.id)).enabled
    assert "Paused “Mornings”." in alice.http.get("/schedules").text
    assert alice.post(f"/schedules/{sr.id}/resume").status_code == 303
    assert asyncio.run(site.rt.schedules.get(site.user("alice"), sr.id)).enabled

    run = alice.post(f"/schedules/{sr.id}/run")
    assert run.status_code == 303 and run.headers["location"] == "/"
    jobs = store.jobs.list_page(type="scheduled_recap")
    assert [j.data["scheduled_recap_id"] for j in jobs] == [sr.id]
    assert "Running “Mornings” now" in alice.http.get("/").text

    assert alice.post(f"/schedules/{sr.id}/delete").status_code == 303
    assert asyncio.run(site.rt.schedules.list_for_user(site.user("alice"))) == []


def test_recap_actions_and_unread_first(store: Store) -> None:
    site = make_site(store)
    older = made_recap(site)
    site.clock.advance(60_000)
    newer = made_recap(site, channels=("ops",))
    alice = site.client("alice")
    order = re.findall(r'id="recap-(\w{26})"', alice.http.get("/").text)
    assert order == [newer, older]

    assert alice.post(f"/recaps/{newer}/read").status_code == 303
    assert asyncio.run(site.rt.recaps.get(site.user("alice"), newer)).read_at > 0
    page = alice.http.get(f"/recaps/{newer}").text
    assert "Marked as read." in page and "Mark read" not in page
    order = re.findall(r'id="recap-(\w{26})"', alice.http.get("/").text)
    assert order == [older, newer]  # unread first

    assert alice.post(f"/recaps/{older}/regenerate").status_code == 303
    again = asyncio.run(site.rt.recaps.get(site.user("alice"), older))
    assert again.status == RecapStatus.PENDING
    assert "Making this recap" in alice.http.get(f"/recaps/{older}").text
    busy = alice.post(f"/recaps/{older}/regenerate")
    assert busy.status_code == 409 and "being made right now" in busy.text

    assert alice.post(f"/recaps/{newer}/delete").status_code == 303
    assert f'id="recap-{newer}"' not in alice.http.get("/").text


def test_a_failed_channel_shows_its_reason(store: Store) -> None:
    site = make_site(store)
    rid = asyncio.run(
        site.rt.recaps.create(
            site.user("alice"), title="Two", channel_ids=[site.channel("dev"), site.channel("ops")]
        )
    ).id
    # alice leaves ops before the recap is made: that channel fails alone, with its reason.
    with store.transaction() as conn:
        from recapd.store.tables import channel_members

        conn.execute(
            channel_members.delete().where(
                channel_members.c.channel_id == site.channel("ops"),
                channel_members.c.user_id == site.user("alice"),
            )
        )
    asyncio.run(site.rt.recaps.process_recap(rid, _no_progress))
    page = site.client("alice").http.get(f"/recaps/{rid}").text
    assert "card-failed" in page and "This channel could not be recapped" in page


def test_feature_flag_off_shows_a_501_page(store: Store) -> None:
    site = make_site(store, enable_ai_recaps=False)
    page = site.client("alice").http.get("/")
    assert page.status_code == 501 and "AI recaps are turned off" in page.text


# -- the one-off recap form ---------------------------------------------------------------------


def recap_form(site: Site, **fields: Any) -> dict[str, Any]:
    """A valid one-off recap form; keyword arguments replace fields (None drops one)."""
    base: dict[str, Any] = {"title": "", "channel_ids": [site.channel("dev")], "agent_id": ""}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def form_error(html: str) -> str:
    """The message above the form, tags removed, or ""."""
    found = re.search(
        r'<p class="error-message" role="alert" id="form-error">(.*?)</p>', html, re.S
    )
    return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split()) if found else ""


def test_a_one_off_recap_through_the_form_opens_its_page_which_follows_it(store: Store) -> None:
    site = make_site(store, ai_recaps={"max_recaps_per_day": 5})
    alice = site.client("alice")
    assert 'href="/recaps/new"' in alice.http.get("/").text
    page = alice.http.get("/recaps/new")
    assert page.status_code == 200
    html = page.text
    # The picker offers the channels alice reads (not hr), nothing ticked; the default agent.
    for name in ("dev", "ops"):
        assert f'value="{site.channel(name)}" >' in html
    assert site.channel("hr") not in html
    assert '<option value="extractive" selected>' in html
    assert "Today: 0 of 5 recaps." in html

    # A field naming another user is ignored: the recap is the signed-in user's.
    ids = [site.channel("ops"), site.channel("dev")]
    resp = alice.post(
        "/recaps", recap_form(site, channel_ids=ids, user_id=site.user("bob")), "/recaps/new"
    )
    assert resp.status_code == 303
    rid = resp.headers["location"].removeprefix("/recaps/")
    recap = asyncio.run(site.rt.recaps.get(site.user("alice"), rid))
    assert recap.title == "Recap of Ops and Dev" and recap.channel_ids == ids
    assert recap.bot_id == "extractive" and recap.status == RecapStatus.PENDING
    jobs = store.jobs.list_page(type="recap")
    assert [j.data["recap_id"] for j in jobs] == [rid]

    queued = alice.http.get(resp.headers["location"]).text
    assert 'data-live="recap"' in queued and f'data-recap-id="{rid}"' in queued
    assert "Making this recap" in queued and 'data-status="pending"' in queued
    site.clock.advance(5_000)
    asyncio.run(site.rt.recaps.process_recap(rid, _no_progress))
    done = alice.http.get(f"/recaps/{rid}").text
    assert "Making this recap" not in done and 'data-status="completed"' in done
    assert "Highlights" in done and "Today: 1 of 5 recaps." in alice.http.get("/recaps/new").text

    # Titled, with another agent.
    site.clock.advance(1_000)
    resp = alice.post("/recaps", recap_form(site, title="  Ops only  ", agent_id="extractive"))
    assert resp.status_code == 303
    titled = asyncio.run(
        site.rt.recaps.get(site.user("alice"), resp.headers["location"].rsplit("/", 1)[-1])
    )
    assert titled.title == "Ops only"

    # bob sees neither recap, nor alice's channels in his picker beyond his own.
    bob = site.client("bob")
    assert bob.http.get(f"/recaps/{rid}").status_code == 404
    assert rid not in bob.http.get("/").text
    assert store.recaps.list_for_user(site.user("bob"), 0, 10) == []


def test_the_recap_form_says_why_a_recap_was_refused(store: Store) -> None:
    site = make_site(store)
    alice = site.client("alice")
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        (recap_form(site, channel_ids=None), 400, "channel_ids", "Choose at least one channel."),
        (
            recap_form(site, channel_ids=[site.channel("hr")]),
            403,
            "channel_ids",
            "You cannot read one of the chosen channels (any more); choose others.",
        ),
        (
            recap_form(site, channel_ids=["not-an-id"]),
            400,
            "channel_ids",
            "One of the chosen channels does not exist; choose from the list.",
        ),
        (
            recap_form(site, agent_id="nope"),
            400,
            "agent_id",
            "There is no agent &#39;nope&#39;. Choose one from the list.",
        ),
        (
            recap_form(site, title="é" * 128),
            400,
            "title",
            "The title is too long: at most 255 bytes.",
        ),
        (
            recap_form(site, title="bad\x00title"),
            400,
            "title",
            "This contains characters that cannot be stored.",
        ),
    ]
    for data, status, name, message in cases:
        resp = alice.post("/recaps", data)
        assert resp.status_code == status, (name, resp.text)
        assert field_error(resp.text, name) == message, (name, resp.text)
        assert "Please fix the fields marked below." in resp.text
        assert form_error(resp.text) == ""
    # What was chosen is kept; a channel alice cannot read stays ticked, so she can untick it.
    resp = alice.post("/recaps", recap_form(site, title="Mine", channel_ids=[site.channel("hr")]))
    assert 'value="Mine"' in resp.text
    assert f'value="{site.channel("hr")}" checked>' in resp.text
    assert "a channel you can no longer read" in resp.text
    assert store.recaps.list_for_user(site.user("alice"), 0, 10) == []
    assert store.jobs.list_page() == []


def test_the_recap_form_shows_the_limits_in_clear_words(store: Store) -> None:
    site = make_site(store, ai_recaps={"max_channels_per_recap": 1, "max_recaps_per_day": 1})
    alice = site.client("alice")
    both = [site.channel("dev"), site.channel("ops")]
    resp = alice.post("/recaps", recap_form(site, channel_ids=both))
    assert resp.status_code == 400
    assert field_error(resp.text, "channel_ids") == (
        "A recap can cover at most 1 channels; untick some."
    )
    assert alice.post("/recaps", recap_form(site)).status_code == 303
    resp = alice.post("/recaps", recap_form(site))
    assert resp.status_code == 400
    # alice's day (UTC) resets at midnight.
    assert form_error(resp.text) == (
        "You have reached the limit of 1 recaps per day. "
        "You can make more from Tue 22 Sep 2026, 00:00 UTC."
    )
    assert '<time datetime="2026-09-22T00:00:00+00:00" data-local="full">' in resp.text
    assert len(store.recaps.list_for_user(site.user("alice"), 0, 10)) == 1


def test_the_recap_form_gives_the_time_the_cooldown_ends(store: Store) -> None:
    site = make_site(store, ai_recaps={"cooldown_minutes": 30})
    store.workspace.upsert_users([replace(site.ws.users["bob"], timezone="Europe/Paris")])
    bob = site.client("bob")
    fresh = bob.http.get("/recaps/new")
    assert 'id="limits">Today: 0 of 10 recaps. One recap every 30 minutes.</p>' in fresh.text
    assert 'id="cooldown"' not in fresh.text
    assert bob.post("/recaps", recap_form(site)).status_code == 303
    site.clock.advance(10 * 60_000 + 1)
    # The form says when the next recap may be asked for before it is filled in.
    early = bob.http.get("/recaps/new")
    assert early.status_code == 200
    notice = re.search(r'<p class="notice" role="status" id="cooldown">(.*?)</p>', early.text, re.S)
    assert notice is not None
    assert re.sub(r"<[^>]+>|\s+", lambda m: " " if m[0].isspace() else "", notice[1]) == (
        "Your last recap was made a short while ago: you can ask for the next one at "
        "Mon 21 Sep 2026, 17:43 CEST (in 20 minutes)."
    )
    assert 'id="limits">Today: 1 of 10 recaps. One recap every 30 minutes.</p>' in early.text
    resp = bob.post("/recaps", recap_form(site, title="Again"))
    assert resp.status_code == 429 and resp.headers["retry-after"] == "1200"
    # T0 + 1 h + 10 min is 15:23 UTC; the next one at 15:43 UTC, 17:43 in bob's Paris.
    assert form_error(resp.text) == (
        "Too soon after your last recap: you can ask for the next one at "
        "Mon 21 Sep 2026, 17:43 CEST (in 20 minutes)."
    )
    assert 'value="Again"' in resp.text and "One recap every 30 minutes." in resp.text
    site.clock.advance(20 * 60_000)
    assert bob.post("/recaps", recap_form(site, title="Again")).status_code == 303


def test_the_recap_form_when_recaps_are_turned_off(store: Store) -> None:
    site = make_site(store, enable_ai_recaps=False)
    alice = site.client("alice")
    page = alice.http.get("/recaps/new")
    assert page.status_code == 501 and "AI recaps are turned off" in page.text
    resp = alice.post("/recaps", recap_form(site), csrf_from="/schedules")
    assert resp.status_code == 501 and "AI recaps are turned off" in resp.text
    assert store.recaps.list_for_user(site.user("alice"), 0, 10) == []


# -- times -----------------------------------------------------------------------------------------


def test_times_are_marked_for_the_browser_and_fall_back_to_the_users_zone(store: Store) -> None:
    site = make_site(store)
    rid = made_recap(site)  # made at T0 + 1 h: Monday 2026-09-21 15:13:20 UTC
    alice = site.client("alice")
    stamp = '<time datetime="2026-09-21T15:13:20+00:00" data-local="full">'
    assert stamp + "Mon 21 Sep 2026, 15:13 UTC</time>" in alice.http.get("/").text
    page = alice.http.get(f"/recaps/{rid}").text
    assert stamp + "Mon 21 Sep 2026, 15:13 UTC</time>" in page
    # A cited post's link names its author and the time of day, marked for the browser too.
    assert re.search(
        r'title="Open the post">\w+, <time datetime="[^"]+" data-local="time">'
        r"\d\d:\d\d UTC</time></a>",
        page,
    )
    # Without JS the user's own zone is used when the profile has one.
    store.workspace.upsert_users([replace(site.ws.users["alice"], timezone="Asia/Tokyo")])
    assert stamp + "Tue 22 Sep 2026, 00:13 JST</time>" in alice.http.get("/").text
    # A schedule's next run stays in the schedule's zone: not marked for conversion.
    alice.post("/schedules", form(site, timezone="Europe/Paris", days=["4"]))
    schedules = alice.http.get("/schedules").text
    assert '<time datetime="2026-09-22T07:00:00+00:00">Tue 22 Sep 2026, 09:00 CEST</time>' in (
        schedules
    )
    assert "data-local" not in schedules


# -- ownership -----------------------------------------------------------------------------------


def test_someone_elses_objects_look_missing(store: Store) -> None:
    site = make_site(store)
    rid = made_recap(site)
    alice = site.client("alice")
    alice.post("/schedules", form(site))
    (sr,) = asyncio.run(site.rt.schedules.list_for_user(site.user("alice")))
    bob = site.client("bob")
    missing = new_id()

    def same(method: str, path: str, data: dict[str, Any] | None = None) -> None:
        if method == "GET":
            theirs, absent = bob.http.get(path.format(rid)), bob.http.get(path.format(missing))
        else:
            theirs = bob.post(path.format(rid), data)
            absent = bob.post(path.format(missing), data)
        assert theirs.status_code == absent.status_code == 404, path
        strip = re.compile(r"id=\w{26}|value=\"[^\"]+\"|request <code>\w+</code>")
        assert strip.sub("", theirs.text) == strip.sub("", absent.text)

    same("GET", "/recaps/{}")
    for action in ("read", "regenerate", "delete"):
        same("POST", "/recaps/{}/" + action)
    rid, missing = sr.id, new_id()
    same("GET", "/schedules/{}/edit")
    same("POST", "/schedules/{}", form(site))
    for action in ("pause", "resume", "run", "delete"):
        same("POST", "/schedules/{}/" + action)
    assert f"recap-{rid}" not in bob.http.get("/").text
    assert sr.id not in bob.http.get("/schedules").text
    # Nothing of alice's changed.
    assert asyncio.run(site.rt.schedules.get(site.user("alice"), sr.id)).enabled

    # A post in a channel bob cannot read looks missing too; jobs are for administrators.
    hr_post = site.ws.posts[0].id  # in dev: bob reads it
    assert bob.http.get(f"/acme/pl/{hr_post}").status_code == 200
    erin = site.client("erin")  # erin is only in hr
    assert erin.http.get(f"/acme/pl/{hr_post}").status_code == 404
    assert erin.http.get(f"/acme/pl/{new_id()}").status_code == 404
    assert bob.http.get("/jobs").status_code == 404
    job = store.jobs.list_page()[0]
    assert bob.post(f"/jobs/{job.id}/cancel").status_code == 404
    assert store.jobs.get(job.id).status == job.status


def test_an_admin_cancels_a_job(store: Store) -> None:
    site = make_site(store)
    made_recap(site)
    recap = asyncio.run(
        site.rt.recaps.create(site.user("alice"), title="Queued", channel_ids=[site.channel("dev")])
    )
    job = next(j for j in store.jobs.list_page() if j.data.get("recap_id") == recap.id)
    erin = site.client("erin")
    assert f'action="/jobs/{job.id}/cancel"' in erin.http.get("/jobs").text
    resp = erin.post(f"/jobs/{job.id}/cancel", {"back": "/jobs?status=pending"})
    assert resp.status_code == 303 and resp.headers["location"] == "/jobs?status=pending"
    assert store.jobs.get(job.id).status == "canceled"
    assert erin.post(f"/jobs/{new_id()}/cancel").status_code == 404


# -- live updates --------------------------------------------------------------------------------


def test_the_watcher_reports_each_change_of_the_users_recaps_once(store: Store) -> None:
    site = make_site(store)
    alice, bob = site.user("alice"), site.user("bob")
    start = site.clock.now_ms()
    watcher = RecapWatcher(store, alice, start)
    assert watcher.poll() == []
    rid = asyncio.run(
        site.rt.recaps.create(alice, title="Live", channel_ids=[site.channel("dev")])
    ).id
    asyncio.run(site.rt.recaps.create(bob, title="Not yours", channel_ids=[site.channel("dev")]))
    assert [(r.id, r.status) for r in watcher.poll()] == [(rid, "pending")]
    assert watcher.poll() == []  # the same version is not sent twice
    site.clock.advance(1000)
    asyncio.run(site.rt.recaps.process_recap(rid, _no_progress))
    assert [(r.id, r.status) for r in watcher.poll()] == [(rid, "completed")]
    site.clock.advance(1000)
    asyncio.run(site.rt.recaps.delete(alice, rid))
    (gone,) = watcher.poll()
    assert gone.id == rid and gone.delete_at > 0
    # A change stamped a little before the cursor (another node's clock) is still seen.
    site.clock.set(watcher.cursor - 2000)
    late = asyncio.run(
        site.rt.recaps.create(alice, title="Late", channel_ids=[site.channel("dev")])
    )
    assert [r.id for r in watcher.poll()] == [late.id]


def test_the_event_stream_sends_rendered_rows(store: Store) -> None:
    site = make_site(store)
    rid = made_recap(site)
    viewer = Viewer(site.user("alice"), "alice", "", "UTC", False, None)  # type: ignore[arg-type]

    async def collect() -> list[str]:
        return [chunk async for chunk in recap_events(store, viewer, T0, lifetime_s=0)]

    chunks = asyncio.run(collect())
    assert chunks[0] == "retry: 2000\n\n"
    (event,) = chunks[1:]
    assert event.startswith("id: ") and "event: recap\n" in event
    assert f'"id":"{rid}"' in event and '"status":"completed"' in event
    assert f'id=\\"recap-{rid}\\"' in event

    anonymous = site.client()
    assert anonymous.http.get("/events").status_code == 401


@pytest.mark.parametrize("path", ["/", "/recaps/new", "/schedules", "/schedules/new", "/jobs"])
def test_pages_need_a_sign_in(store: Store, path: str) -> None:
    site = make_site(store)
    resp = site.client().http.get(path)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login?next=")


def test_the_channel_picker_names_direct_messages_and_leaves_out_bots(store: Store) -> None:
    site = make_site(store)
    alice, bob = site.user("alice"), site.user("bob")
    bot = User(id=new_id(), username="recap-bot", is_bot=True)
    store.workspace.upsert_users([bot])
    dm_bob = Channel(id=new_id(), team_id="", name="__".join(sorted([alice, bob])), type="D")
    dm_bot = Channel(id=new_id(), team_id="", name="__".join(sorted([alice, bot.id])), type="D")
    store.workspace.upsert_channels([dm_bob, dm_bot])
    store.workspace.upsert_members(
        [ChannelMember(channel_id=c.id, user_id=u) for c in (dm_bob, dm_bot) for u in (alice, bob)]
    )
    page = site.client("alice").http.get("/schedules/new").text
    assert f'value="{dm_bob.id}"' in page and "@bob" in page
    assert f'value="{dm_bot.id}"' not in page and "#Dev" in page


def test_a_short_session_secret_is_refused_at_start(store: Store) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(database_url=store.db.url, session_secret="too short")
    assert "RECAPD_SESSION_SECRET" in str(err.value) and "too short" not in str(err.value)
