"""Mattermost's own JavaScript client against a real `recapd serve`: Client4 of
`@mattermost/client` 11.9.0 calls every recap method it has (createRecap, getRecaps, getRecap,
markRecapAsRead, markRecapsAsViewed, regenerateRecap, deleteRecap; it has no scheduled-recap
method), each answer is checked against `@mattermost/types` at run time by guards that
`tsc --strict` checks against the types, and the error path is checked as `ClientError`s.

The client is installed by scripts/install-mattermost-client (scripts/test passes its folder in
RECAPD_MM_CLIENT). Without Node.js the test is skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from recapd.clock import SystemClock
from recapd.store.store import Store
from tests.processes import ROOT
from tests.test_serve import ServeProcess
from tests.workspace import add_posts, make_workspace

SOURCES = ROOT / "tests" / "mattermost_client"
DEFAULT_DIR = ROOT / ".node" / "mattermost-client"
# Every Client4 recap method, and the errors, as the script reports them when they check out.
METHODS = {
    "createRecap",
    "getRecap",
    "getRecaps",
    "markRecapAsRead",
    "markRecapsAsViewed",
    "regenerateRecap",
    "deleteRecap",
}
ERRORS = {
    "getRecap -> 404 app.recap.get.app_error",
    "createRecap -> 400 api.context.invalid_body_param.app_error",
    "createRecap -> 403 app.recap.permission_denied",
    "createRecap -> 429 app.recap.cooldown_active.app_error",
    "getRecaps -> 401 api.context.session_expired.app_error",
}


def _client_dir() -> Path:
    """The installed client's folder; skips (fails under CI=true) when it is not there."""
    folder = Path(os.environ.get("RECAPD_MM_CLIENT") or DEFAULT_DIR)
    ready = (folder / "node_modules" / ".bin" / "tsc").exists() and shutil.which("node")
    if not ready:
        why = f"no Mattermost client in {folder}: run scripts/install-mattermost-client"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {why}")
        pytest.skip(why)
    return folder


def _compile(client: Path, tmp_path: Path) -> Path:
    """The script compiled with `tsc --strict` next to the client's node_modules."""
    build = client / f"build-{tmp_path.name}"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir()
    for name in ("recap_client.ts", "tsconfig.json"):
        shutil.copy(SOURCES / name, build / name)
    tsc = subprocess.run(
        ["node", str(client / "node_modules" / "typescript" / "bin" / "tsc"), "-p", "."],
        cwd=build,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tsc.returncode == 0, tsc.stdout + tsc.stderr
    return build


def test_the_official_client_reads_every_recap_route(tmp_path: Path, sqlite_template: Path) -> None:
    client = _client_dir()
    build = _compile(client, tmp_path)
    try:
        shutil.copy(sqlite_template, tmp_path / "recapd.db")
        url = f"sqlite:///{tmp_path / 'recapd.db'}"
        store = Store.open(url)
        try:
            ws = make_workspace(store, ["alice", "bob"], {"dev": ["alice", "bob"], "hr": ["bob"]})
            now = SystemClock().now_ms()
            add_posts(
                store,
                ws,
                "dev",
                [
                    ("bob", "The deploy of 2.3 is blocked on the failing migration test."),
                    ("alice", "I will fix the migration test today and ping you."),
                    ("bob", "Thanks. Release notes are due on Friday."),
                ],
                now - 3_600_000,
            )
            token, _ = store.tokens.create(ws.users["alice"].id, "test", now)
        finally:
            store.close()
        node = ServeProcess(url, tmp_path)
        try:
            base = node.started()
            run = subprocess.run(
                [
                    "node",
                    str(build / "out" / "recap_client.js"),
                    base,
                    token,
                    ws.channels["dev"].id,
                    ws.channels["hr"].id,
                    "extractive",
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            node.stop()
        assert run.returncode == 0, (run.stdout, run.stderr, node.output()[-3000:])
        report = json.loads(run.stdout.strip().splitlines()[-1])
        assert report["problems"] == []
        assert set(report["done"]) >= METHODS, report["done"]
        assert set(report["done"]) >= ERRORS, report["done"]
    finally:
        shutil.rmtree(build, ignore_errors=True)
