"""Smaller things of the pages, on both engines: the site's icon, a page in words for an address
nobody serves (the API keeps its JSON), errors that quote a huge input only so far, the agent of
a recap, and a schedule's page with its last runs, times in the viewer's zone."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

from fastapi.testclient import TestClient

from recapd.api.app import create_app
from recapd.api.errors import MAX_ECHO_CHARS
from recapd.jobs.worker import WorkerPool
from recapd.model.job import JobType
from recapd.store.store import Store
from tests.test_web import Site, field_error, form, make_site

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_the_site_has_an_icon(store: Store) -> None:
    site = make_site(store)
    resp = site.client().http.get("/favicon.ico")
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/x-icon"
    assert resp.content[:4] == b"\x00\x00\x01\x00" and 0 < len(resp.content) < 4096


def test_an_address_nobody_serves_is_a_page_for_browsers_and_json_for_the_api(
    store: Store,
) -> None:
    site = make_site(store)
    alice = site.client("alice")
    page = alice.http.get("/no/such/page", headers=HTML)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "There is no page at this address." in page.text and "app_error" not in page.text
    assert ">alice<" not in page.text or "Sign out" in page.text
    # The API, and clients that do not ask for HTML, get the JSON error with its id.
    for path, headers in (("/api/v4/nothing", HTML), ("/no/such/page", {})):
        resp = alice.http.get(path, headers=headers)
        assert resp.status_code == 404 and resp.json()["id"] == "api.context.404.app_error"


def test_errors_quote_a_huge_input_only_so_far(store: Store) -> None:
    site = make_site(store)
    api = TestClient(create_app(site.rt))
    huge = "a" * 1_000_000
    headers = {"Authorization": f"Bearer {site.tokens['alice']}"}
    body = {"title": "t", "channel_ids": [site.channel("dev")], "agent_id": huge}
    resp = api.post("/api/v4/recaps", json=body, headers=headers)
    assert resp.status_code == 400 and resp.json()["id"] == "app.agent.unknown.app_error"
    assert len(resp.content) < 4 * MAX_ECHO_CHARS, len(resp.content)
    assert resp.json()["message"].endswith("more characters)")
    schedule = {
        "title": "t",
        "days_of_week": 2,
        "time_of_day": "09:00",
        "timezone": "UTC",
        "time_period": "last_24h",
        "channel_mode": "specific",
        "channel_ids": [site.channel("dev")],
        "agent_id": huge,
    }
    resp = api.post("/api/v4/scheduled_recaps", json=schedule, headers=headers)
    assert resp.status_code == 400 and len(resp.content) < 4 * MAX_ECHO_CHARS

    # The forms quote it as little (the field keeps what was typed, once).
    alice = site.client("alice")
    page = alice.post("/schedules", form(site, agent_id=huge))
    assert page.status_code == 400
    assert len(field_error(page.text, "agent_id")) < 2 * MAX_ECHO_CHARS
    assert page.text.count(huge) == 1


def _run_jobs(site: Site, job_type: str) -> None:
    """Run every ready job of the type to its end, on this test's clock."""

    async def main() -> None:
        spec = site.rt.jobs.workers[job_type]
        pool = WorkerPool(spec, site.rt.store, site.rt.settings, site.clock, "t", asyncio.Event())
        while await pool.claim_once():
            while pool.running_ids:
                await asyncio.sleep(0.001)
            await pool.flush()

    asyncio.run(main())


def test_a_recap_names_its_agent_and_a_schedule_shows_its_last_runs(store: Store) -> None:
    site = make_site(store)
    # bob looks from Paris at a schedule of New York.
    store.workspace.upsert_users([replace(site.ws.users["bob"], timezone="Europe/Paris")])
    bob = site.client("bob")
    assert (
        bob.post("/schedules", form(site, title="Dev NY", timezone="America/New_York")).status_code
        == 303
    )
    (sr,) = asyncio.run(site.rt.schedules.list_for_user(site.user("bob")))
    assert f'<a href="/schedules/{sr.id}">Dev NY</a>' in bob.http.get("/schedules").text
    empty = bob.http.get(f"/schedules/{sr.id}")
    assert empty.status_code == 200 and 'id="runs-empty"' in empty.text
    assert "Extractive (offline)" in empty.text

    asyncio.run(site.rt.schedules.run_now(site.user("bob"), sr.id))
    _run_jobs(site, JobType.SCHEDULED_RECAP)
    _run_jobs(site, JobType.RECAP)
    (recap,) = store.recaps.list_for_user(site.user("bob"), 0, 10)
    page = bob.http.get(f"/recaps/{recap.id}")
    assert 'id="agent">Agent: Extractive (offline) <code>extractive</code></p>' in page.text

    shown = bob.http.get(f"/schedules/{sr.id}").text
    runs = re.findall(r'<li class="run run-(\w+)">(.*?)</li>', shown, re.S)
    assert [status for status, _ in runs] == ["completed"]
    assert f'href="/recaps/{recap.id}"' in runs[0][1]
    assert "data-local" in runs[0][1] and "CEST" in runs[0][1]  # bob's zone, not New York's
    # The list's last run is in the viewer's zone too (the browser's, with JS), marked so.
    listed = bob.http.get("/schedules").text
    last = re.search(r"last (<time [^>]*>[^<]*</time>)", listed)
    assert last is not None and "data-local" in last[1] and "CEST" in last[1], listed
    # Someone else's schedule looks missing.
    assert site.client("alice").http.get(f"/schedules/{sr.id}").status_code == 404
