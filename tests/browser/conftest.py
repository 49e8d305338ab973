"""Browser tests: a real `recapd serve` process on a seeded SQLite database, driven by
Playwright in Debian's headless Chromium (scripts/install-browser installs it). Without Chromium
or Playwright the tests skip, except under CI=true, where that fails the run."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from recapd.model.chat import Post
from recapd.store.database import Database
from recapd.store.migrate import upgrade
from recapd.store.store import Store
from tests.fake_openai import FakeOpenAI, RecordedRequest, Reply, echo_answer
from tests.test_recaps_app import CHAT
from tests.workspace import Workspace, add_posts, make_workspace

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = Path(os.environ.get("RECAPD_CHROMIUM", "/usr/bin/chromium"))
# Screenshots of every page land here (kept out of git).
OUTPUT = Path(os.environ.get("RECAPD_BROWSER_OUTPUT", ROOT / "tests" / "browser" / "output"))
START_TIMEOUT_S = 30.0
# The held agent answers once the test releases it, or after this long at the latest.
HOLD_MAX_S = 30.0


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


@dataclass
class Served:
    """A running `recapd serve` and what it was seeded with."""

    url: str
    token: str
    ws: Workspace
    log: Path
    # Agent `held` (an OpenAI-compatible server on loopback) answers once this is set.
    release_llm: threading.Event
    llm: FakeOpenAI

    def channel(self, name: str) -> str:
        return self.ws.channels[name].id


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _seed(db_url: str) -> tuple[Workspace, str]:
    """Team `acme`: alice (an administrator, with a token) and bob in #dev and #ops, with
    posts of the last two hours."""
    db = Database(db_url)
    upgrade(db)
    db.dispose()
    store = Store.open(db_url)
    try:
        ws = make_workspace(
            store,
            ["alice", "bob", "carol", "dave"],
            {
                "dev": ["alice", "bob", "carol", "dave"],
                "ops": ["alice", "bob"],
            },
        )
        now = int(time.time() * 1000)
        add_posts(store, ws, "dev", CHAT, now - 2 * 3_600_000, root_of={4: 3})
        add_posts(store, ws, "ops", [("bob", "Disk on db2 is at 91%, expanding tonight.")], now)
        alice = ws.users["alice"].id
        token, _ = store.tokens.create(alice, "browser tests", now)
        store.tokens.set_roles(alice, "system_admin")
    finally:
        store.close()
    return ws, token


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, or a skip (a failure under CI)."""
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM}: run scripts/install-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is missing: pip install -e '.[dev]'")
    return CHROMIUM


@pytest.fixture(scope="module")
def held_llm() -> Iterator[tuple[FakeOpenAI, threading.Event]]:
    """An OpenAI-compatible server whose answers wait until the event is set: a recap made
    with it stays "working" until the test says so."""
    release = threading.Event()

    def held(request: RecordedRequest) -> Reply:
        release.wait(HOLD_MAX_S)
        return echo_answer(request)

    with FakeOpenAI(default=held) as server:
        try:
            yield server, release
        finally:
            release.set()


@pytest.fixture(scope="module")
def served(
    chromium: Path,
    tmp_path_factory: pytest.TempPathFactory,
    held_llm: tuple[FakeOpenAI, threading.Event],
) -> Iterator[Served]:
    """`recapd --database-url sqlite:///<tmp>/r.db serve` on a free port, until the tests end.
    RECAPD_SITE_URL is the server itself, so the chat source's permalinks open its post page.
    Agents: `extractive` (the default) and `held` (see held_llm)."""
    llm, release = held_llm
    tmp = tmp_path_factory.mktemp("browser")
    db_url = f"sqlite:///{tmp}/r.db"
    ws, token = _seed(db_url)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECAPD_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "RECAPD_SITE_URL": url,
        "RECAPD_JOBS__POLL_INTERVAL_SECONDS": "0.2",
        "RECAPD_AI_RECAPS__COOLDOWN_MINUTES": "0",
        "RECAPD_AGENTS__HELD__TYPE": "openai",
        "RECAPD_AGENTS__HELD__DISPLAY_NAME": "Held model (answers when the test says)",
        "RECAPD_AGENTS__HELD__BASE_URL": llm.base_url,
        "RECAPD_AGENTS__HELD__MODEL": llm.model,
    }
    log = tmp / "serve.log"
    args = [sys.executable, "-m", "recapd", "--database-url", db_url, "serve"]
    args += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"recapd serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/api/v4/system/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"recapd serve did not answer in time:\n{log.read_text()}")
            time.sleep(0.1)
        yield Served(url, token, ws, log, release, llm)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Any]:
    """Headless Chromium through Playwright."""
    from playwright.sync_api import sync_playwright

    # Chromium's sandbox refuses to run as root (CI containers); elsewhere it stays on.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium), headless=True, args=args)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """`shot(page, name)`: a full-page screenshot in OUTPUT/<test name>/<name>.png, after
    checking that the page does not scroll sideways."""
    folder = OUTPUT / re.sub(r"[^\w.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        wide, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert wide <= inner, f"{name} ({page.url}) scrolls sideways: {wide} px in {inner} px"
        return path

    return take


def first_cited(posts: list[Post], href: str) -> Post:
    """The seeded post a permalink points at."""
    post_id = href.rstrip("/").rsplit("/", 1)[-1]
    return next(p for p in posts if p.id == post_id)
