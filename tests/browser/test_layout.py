"""Every page with the demo's recaps, at a phone's and a laptop's width: none scrolls sideways
(`document.documentElement.scrollWidth <= innerWidth`), and a screenshot of each. The server is
`recapd demo` then `recapd serve --port 0` with RECAPD_SITE_URL unset, so the recaps' links
must point at the port it actually bound."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import ROOT, START_TIMEOUT_S

WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 860}}
READY_TIMEOUT_S = 60.0


@dataclass
class Demo:
    """`recapd serve` on the demo's database."""

    url: str
    token: str
    log: Path


def _wait_for_url(proc: subprocess.Popen[bytes], log: Path) -> str:
    """The URL `recapd serve` prints once it listens."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = re.search(r"recapd serving at (http://\S+?)/? ", log.read_text())
        if found:
            return found.group(1)
        if proc.poll() is not None:
            pytest.fail(f"recapd serve exited with {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.1)
    pytest.fail(f"recapd serve did not start in time:\n{log.read_text()}")


def _wait_for_recaps(url: str, token: str, log: Path) -> None:
    """Until the demo's first recaps are made."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        recaps = httpx.get(f"{url}/api/v4/recaps", headers=headers, timeout=5).json()
        if len(recaps) >= 2 and all(r["status"] == "completed" for r in recaps):
            return
        time.sleep(0.2)
    pytest.fail(f"the demo's recaps were not made in time:\n{log.read_text()}")


@pytest.fixture(scope="module")
def demo(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`recapd demo` then `recapd serve --port 0`, RECAPD_SITE_URL unset."""
    tmp = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECAPD_")}
    env |= {"PYTHONPATH": str(ROOT), "RECAPD_JOBS__POLL_INTERVAL_SECONDS": "0.2"}
    base = [sys.executable, "-m", "recapd", "--database-url", f"sqlite:///{tmp}/demo.db"]
    token_file = tmp / "token.txt"
    subprocess.run(
        [*base, "demo", "--token-file", str(token_file)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    token = token_file.read_text().strip()
    log = tmp / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*base, "serve", "--port", "0"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        url = _wait_for_url(proc, log)
        _wait_for_recaps(url, token, log)
        yield Demo(url, token, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _pages(demo: Demo) -> list[tuple[str, str]]:
    """(name, path) of every page, from the demo's recaps, schedules and a cited post."""
    headers = {"Authorization": f"Bearer {demo.token}"}
    recaps = httpx.get(f"{demo.url}/api/v4/recaps", headers=headers).json()
    schedules = httpx.get(f"{demo.url}/api/v4/scheduled_recaps", headers=headers).json()
    pages = [("recaps", "/"), ("recap-form", "/recaps/new")]
    pages += [(f"recap-{i + 1}", f"/recaps/{r['id']}") for i, r in enumerate(recaps)]
    pages += [("schedules", "/schedules"), ("schedule-form", "/schedules/new")]
    for i, s in enumerate(schedules):
        pages += [(f"schedule-{i + 1}", f"/schedules/{s['id']}")]
        pages += [(f"schedule-{i + 1}-edit", f"/schedules/{s['id']}/edit")]
    pages += [("jobs", "/jobs"), ("not-found", "/recaps/" + "x" * 26)]
    return pages


@pytest.mark.parametrize("size", sorted(WIDTHS))
def test_no_page_scrolls_sideways_with_the_demo(
    demo: Demo, browser: Any, shot: Callable[[Any, str], Path], size: str
) -> None:
    from playwright.sync_api import expect

    viewport = WIDTHS[size]
    context = browser.new_context(
        base_url=demo.url, viewport=viewport, is_mobile=viewport["width"] < 600
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    too_wide: list[str] = []

    def check(name: str) -> None:
        wide, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        # A phone zooms out of a page wider than itself, which widens innerWidth too.
        if wide > inner or inner > viewport["width"]:
            too_wide.append(f"{name} ({page.url}): {wide} px wide in {inner} px")
        shot(page, f"{viewport['width']}-{name}")

    page.goto("/login")
    check("login")
    page.fill("#token", demo.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/$"))
    for name, path in _pages(demo):
        page.goto(path)
        check(name)
        if name == "recap-1":
            # The links of the recap point at the address `serve --port 0` bound.
            cite = page.locator("a.cite").first
            href = cite.get_attribute("href") or ""
            assert href.startswith(demo.url + "/demo/pl/"), href
            cite.click()
            expect(page.locator(".post-target")).to_be_visible()
            check("post")
    context.close()
    assert too_wide == []


def test_a_form_posted_from_another_site_is_refused_and_sign_out_ends_the_session(
    demo: Demo, browser: Any, shot: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(base_url=demo.url, viewport=WIDTHS["desktop"])
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto("/login")
    page.fill("#token", demo.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/$"))
    cookie = next(c for c in context.cookies() if c["name"] == "recapd_session")

    # A page of another site posts a sign-out form to recapd: refused, in words.
    evil = "http://evil.example/"
    form = f'<form method="post" action="{demo.url}/logout"><button>Go</button></form>'
    page.route(evil, lambda route: route.fulfill(content_type="text/html", body=form))
    page.goto(evil)
    page.get_by_role("button", name="Go").click()
    expect(page.locator(".error-message")).to_contain_text("sent from another site")
    expect(page.locator("body")).not_to_contain_text("app_error")
    shot(page, "01-foreign-form-refused")
    page.goto("/")
    expect(page.locator("h1")).to_have_text("Recaps")  # still signed in

    # Signing out ends the session on the server: a copy of the cookie opens nothing.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    copy = browser.new_context(base_url=demo.url)
    copy.add_cookies([cookie])
    other = copy.new_page()
    other.goto("/")
    expect(other).to_have_url(re.compile(r"/login\?next=/$"))
    shot(other, "02-copied-cookie-signed-out")
    copy.close()
    context.close()
