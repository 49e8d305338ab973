"""The pages in headless Chromium against a real `recapd serve`: sign in, create a schedule
through the form (an invalid time first), run it now and watch the recap appear in another tab
without a reload, open a highlight's post, mark read, pause and resume, on a phone-sized
screen; make a one-off recap through its form (no channel first) and watch its page turn from
working to ready without a reload, times in the browser's zone; no page breaks its own
Content-Security-Policy, another site cannot frame one, and a sixth tab following recaps stops
the oldest one's live updates. A screenshot of every page."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.browser.conftest import Served, first_cited

PHONE = {"width": 390, "height": 844}


def test_a_user_schedules_runs_and_reads_a_recap(
    served: Served, browser: Any, shot: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(
        base_url=served.url, timezone_id="Europe/Paris", viewport=PHONE, is_mobile=True
    )
    context.set_default_timeout(10_000)
    refused = csp_violations(context)
    page = context.new_page()
    home = re.compile(re.escape(served.url) + r"/$")

    # Sign in (a wrong token first).
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    page.fill("#token", "not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#token-error")).to_contain_text("This token is not valid")
    shot(page, "01-login-error")
    page.fill("#token", served.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(home)
    expect(page.locator("#recap-empty")).to_be_visible()
    shot(page, "02-recaps-empty")

    # A new schedule: the zone defaults to the browser's; an impossible time is refused.
    page.goto("/schedules/new")
    expect(page.locator("#timezone")).to_have_value("Europe/Paris")
    page.fill("#title", "Dev morning")
    page.fill("#time_of_day", "25:00")
    page.locator("label.day-toggle", has_text="Sat").click()
    page.locator(f"input[name=channel_ids][value='{served.channel('dev')}']").check()
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator("#time_of_day-error")).to_have_text(
        "Enter the time as HH:MM, 24-hour (00:00 to 23:59)."
    )
    expect(page.locator("#title")).to_have_value("Dev morning")
    expect(page.locator("input[name=days][value='64']")).to_be_checked()
    shot(page, "03-schedule-form-error")
    page.fill("#time_of_day", "07:30")
    page.get_by_role("button", name="Create schedule").click()
    expect(page).to_have_url(re.compile(r"/schedules$"))
    card = page.locator(".schedule", has_text="Dev morning")
    expect(card.locator(".next-run")).to_contain_text(re.compile(r"07:30 CES?T"))
    expect(page.locator(".notice")).to_contain_text("Schedule “Dev morning” created.")
    shot(page, "04-schedules")

    # Another tab keeps the recaps page open while this one runs the schedule now.
    watcher = context.new_page()
    watcher.goto("/")
    watcher.evaluate("window.notReloaded = true")
    expect(watcher.locator(".recap-row")).to_have_count(0)
    card.get_by_role("button", name="Run now").click()
    expect(page).to_have_url(home)
    row = watcher.locator(".recap-row", has_text="Dev morning")
    expect(row.locator(".badge")).to_have_text("Ready", timeout=20_000)
    expect(row).to_have_class(re.compile(r"\bunread\b"))
    assert watcher.evaluate("window.notReloaded") is True  # it came by server-sent events
    shot(watcher, "05-recap-appeared-live")
    watcher.close()

    # The recap: channel cards with highlights linking to their posts.
    page.goto("/")
    page.locator(".recap-row a", has_text="Dev morning").click()
    expect(page.locator("h1")).to_have_text("Dev morning")
    expect(page.locator(".card h2").first).to_have_text(re.compile(r"^#"))
    highlight = page.locator(".highlights a.cite").first
    href = highlight.get_attribute("href") or ""
    assert href.startswith(served.url + "/acme/pl/"), href
    shot(page, "06-recap")
    highlight.click()
    expect(page.locator(".post-target")).to_contain_text(first_cited(served.ws.posts, href).message)
    shot(page, "07-post")
    page.go_back()

    page.get_by_role("button", name="Mark read").click()
    expect(page.locator(".notice")).to_have_text("Marked as read.")
    expect(page.get_by_role("button", name="Mark read")).to_have_count(0)
    shot(page, "08-recap-read")
    page.goto("/")
    expect(page.locator(".recap-row", has_text="Dev morning")).not_to_have_class(
        re.compile(r"\bunread\b")
    )

    # Pause and resume.
    page.goto("/schedules")
    card.get_by_role("button", name="Pause").click()
    expect(card.locator(".badge")).to_have_text("Paused")
    expect(card.locator(".next-run")).to_have_count(0)
    shot(page, "09-schedule-paused")
    card.get_by_role("button", name="Resume").click()
    expect(card.locator(".badge")).to_have_text("Active")
    expect(card.locator(".next-run")).to_contain_text("07:30")
    shot(page, "10-schedule-resumed")

    # The jobs page (alice is an administrator): the run's jobs succeeded.
    page.goto("/jobs")
    expect(page.locator("table.jobs tbody tr").first).to_be_visible()
    expect(page.locator(".badge-job-success").first).to_be_visible()
    shot(page, "11-jobs")
    page.goto("/schedules/new")
    shot(page, "12-schedule-form")
    missing = page.goto("/recaps/" + "x" * 26)
    assert missing is not None and missing.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    shot(page, "13-not-found")
    assert refused == []  # the pages work under their Content-Security-Policy
    context.close()


DESKTOP = {"width": 1280, "height": 860}


def test_a_user_makes_a_one_off_recap_and_watches_it_finish(
    served: Served, browser: Any, shot: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(
        base_url=served.url, timezone_id="America/New_York", viewport=DESKTOP
    )
    context.set_default_timeout(10_000)
    refused = csp_violations(context)
    page = context.new_page()
    page.goto("/login")
    page.fill("#token", served.token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="New recap").click()
    expect(page).to_have_url(re.compile(r"/recaps/new$"))
    expect(page.locator("#agent_id")).to_have_value("extractive")
    shot(page, "01-recap-form")

    # No channel chosen: refused, with the reason under the channel picker.
    page.fill("#title", "Standup catch-up")
    page.get_by_role("button", name="Make recap").click()
    expect(page.locator("#channel_ids-error")).to_have_text("Choose at least one channel.")
    expect(page.locator("#title")).to_have_value("Standup catch-up")
    shot(page, "02-recap-form-error")

    # Both channels, with the agent whose answers wait for the test: the page shows the recap
    # being made, then the finished recap, with no reload in between.
    for name in ("dev", "ops"):
        page.locator(f"input[name=channel_ids][value='{served.channel(name)}']").check()
    page.select_option("#agent_id", "held")
    page.get_by_role("button", name="Make recap").click()
    expect(page).to_have_url(re.compile(r"/recaps/\w{26}$"))
    page.evaluate("window.notReloaded = true")
    expect(page.locator("h1")).to_have_text("Standup catch-up")
    expect(page.locator(".page-head .badge")).to_have_text("Working…")
    expect(page.locator(".working")).to_contain_text("this page updates by itself")
    expect(page.get_by_role("button", name="Mark read")).to_have_count(0)
    shot(page, "03-recap-working")
    served.release_llm.set()
    expect(page.locator(".page-head .badge")).to_have_text("Ready", timeout=20_000)
    expect(page.locator(".working")).to_have_count(0)
    expect(page.locator(".card h2")).to_have_text(["#Dev", "#Ops"])
    expect(page.locator(".highlights li").first).to_contain_text("The channel discussed")
    expect(page.get_by_role("button", name="Mark read")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True  # it came by server-sent events
    assert len(served.llm.chat_requests) >= 2

    # Times are in the browser's zone (New York), the post links' times of day too.
    stamp = page.locator(".page-head + p time[data-local]")
    instant = dt.datetime.fromisoformat(stamp.get_attribute("datetime") or "")
    local = instant.astimezone(ZoneInfo("America/New_York"))
    expect(stamp).to_have_text(local.strftime("%a %d %b %Y, %H:%M ") + (local.tzname() or ""))
    cite = page.locator(".highlights a.cite time").first
    cited = dt.datetime.fromisoformat(cite.get_attribute("datetime") or "")
    expect(cite).to_have_text(cited.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M %Z"))
    shot(page, "04-recap-ready")

    page.goto("/")
    row = page.locator(".recap-row", has_text="Standup catch-up")
    expect(row.locator(".badge")).to_have_text("Ready")
    expect(row.locator("time")).to_have_text(re.compile(r", \d\d:\d\d E[DS]T$"))
    shot(page, "05-recaps-with-one-off")
    assert refused == []
    context.close()


def test_another_site_cannot_frame_the_pages_and_a_sixth_tab_stops_the_oldest(
    served: Served, browser: Any, shot: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(base_url=served.url, viewport=DESKTOP)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto("/login")
    page.fill("#token", served.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/$"))

    # A page of another origin puts recapd in a frame: the browser refuses to show it.
    other = context.new_page()
    with other.expect_console_message(
        lambda msg: "frame-ancestors" in msg.text or "X-Frame-Options" in msg.text
    ):
        other.set_content(f'<iframe id="f" src="{served.url}/login" width="600"></iframe>')
    expect(other.frame_locator("#f").locator("#token")).to_have_count(0)
    shot(other, "01-framed-refused")
    other.close()

    # Six pages following their recaps: the first one's live updates stop, and it says why.
    tabs = [page]
    for _ in range(5):
        tab = context.new_page()
        tab.goto("/")
        tabs.append(tab)
    expect(page.locator(".live-stopped")).to_contain_text("too many pages with live updates")
    for tab in tabs[1:]:
        expect(tab.locator(".live-stopped")).to_have_count(0)
    shot(page, "02-live-stopped")
    context.close()


def csp_violations(context: Any) -> list[str]:
    """The Content-Security-Policy refusals the context's pages log, as they come."""
    found: list[str] = []

    def check(msg: Any) -> None:
        if "Content Security Policy" in msg.text:
            found.append(msg.text)

    context.on("console", check)
    return found
