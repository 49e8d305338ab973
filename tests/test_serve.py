"""`recapd serve` as a real process: API, request log, schedulers and workers in one process,
the flags that run fewer, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from recapd.clock import SystemClock
from recapd.serve import EndStreamsOnStop
from recapd.store.store import Store
from tests.processes import FAST_JOBS, ROOT
from tests.workspace import add_posts, make_workspace

START_TIMEOUT_S = 20.0


def _lower(items: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}


class ServeProcess:
    """`python -m recapd serve --port 0 ARGS` in `cwd`, its output in `cwd/<name>.log`."""

    def __init__(
        self,
        url: str | None,
        cwd: Path,
        *args: str,
        name: str = "serve",
        env: dict[str, str] | None = None,
    ) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("RECAPD_")}
        full.update(FAST_JOBS)
        full.update(PYTHONPATH=str(ROOT), RECAPD_JOBS__SHUTDOWN_GRACE_SECONDS="2")
        if url is not None:
            full["RECAPD_DATABASE_URL"] = url
        full.update(env or {})
        self.log_path = cwd / f"{name}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recapd", "serve", "--port", "0", *args],
            cwd=cwd,
            env=full,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.base = ""

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT_S) -> re.Match[str]:
        """The first match of `pattern` in the output, polling until it shows or the process
        exits (an AssertionError with the output then)."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.output())
            if m is not None:
                return m
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in the output:\n{self.output()}")
            time.sleep(0.05)

    def started(self) -> str:
        """Wait for the URL line; the base URL (ending in /)."""
        self.base = self.wait_for(r"recapd serving at (http://\S+/) ")[1]
        return self.base

    def get(self, path: str, token: str = "") -> tuple[int, dict[str, str], Any]:
        """GET base+path: (status, headers by lowercase name, JSON body)."""
        req = urllib.request.Request(self.base + path.lstrip("/"))
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        return self._send(req)

    def post(self, path: str, body: Any, token: str) -> tuple[int, dict[str, str], Any]:
        req = urllib.request.Request(
            self.base + path.lstrip("/"),
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        return self._send(req)

    @staticmethod
    def _send(req: urllib.request.Request) -> tuple[int, dict[str, str], Any]:
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, _lower(resp.headers.items()), json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, _lower(err.headers.items()), json.loads(err.read())

    def stop(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took to exit)."""
        began = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"not stopped in {timeout}s:\n{self.output()}") from None
        self._log.close()
        return self.proc.returncode, time.monotonic() - began

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


def _user_with_token(store: Store) -> tuple[str, str, str]:
    """(user id, token, channel id): alice, member of #dev with a few posts."""
    ws = make_workspace(store, ["alice", "bob"], {"dev": ["alice", "bob"]})
    now = SystemClock().now_ms()
    add_posts(
        store,
        ws,
        "dev",
        [
            ("bob", "The deploy of 2.3 is blocked on the failing migration test."),
            ("alice", "I will fix the migration test today and ping you."),
        ],
        now - 3_600_000,
    )
    token, _ = store.tokens.create(ws.users["alice"].id, "test", now)
    return ws.users["alice"].id, token, ws.channels["dev"].id


def test_serve_answers_logs_each_request_and_stops_on_sigterm(db_url: str, tmp_path: Path) -> None:
    store = Store.open(db_url)
    try:
        user_id, token, _ = _user_with_token(store)
    finally:
        store.close()
    node = ServeProcess(db_url, tmp_path, "--node-id", "serve-test")
    try:
        base = node.started()
        assert base.startswith("http://127.0.0.1:")
        assert "recapd serve serve-test" in node.output()
        assert "schedulers on" in node.output() and "workers off" not in node.output()

        status, headers, body = node.get("/api/v4/system/ping")
        assert status == 200 and body["status"] == "OK" and body["schema_up_to_date"]
        assert body["node_id"] == "serve-test" and "recap" in body["node_runs_jobs"]
        assert body["jobs"] == "ok"
        ping_id = headers["x-request-id"]
        status, headers, body = node.get("/api/v4/recaps", token)
        assert status == 200 and body == []
        recaps_id = headers["x-request-id"]
        status, _, body = node.get("/api/v4/recaps", "not-a-token")
        assert status == 401 and body["id"] == "api.context.session_expired.app_error"

        node.wait_for(
            r"recapd\.http: method=GET path=/api/v4/system/ping status=200 "
            rf"duration_ms=\d+\.\d request_id={ping_id} user_id=-"
        )
        node.wait_for(
            rf"method=GET path=/api/v4/recaps status=200 duration_ms=\S+ "
            rf"request_id={recaps_id} user_id={user_id}"
        )
        node.wait_for(r"method=GET path=/api/v4/recaps status=401 .* user_id=-")
    finally:
        code, took = node.stop()
    assert code == 0, node.output()
    assert took < 5.0, f"took {took:.1f}s to stop"
    assert node.output().rstrip().endswith("recapd serve stopped")


def _lease_holder(url: str) -> str | None:
    store = Store.open(url)
    try:
        lease = store.leases.get("leader")
    finally:
        store.close()
    return None if lease is None else lease.holder


def test_a_node_without_schedulers_never_takes_the_lease(pg_url: str, tmp_path: Path) -> None:
    follower = ServeProcess(pg_url, tmp_path, "--no-schedulers", "--node-id", "f", name="f")
    leader = ServeProcess(pg_url, tmp_path, "--no-api", "--no-jobs", "--node-id", "l", name="l")
    try:
        follower.started()
        assert "schedulers off; API on" in follower.output()
        leader.wait_for(r"workers off; schedulers on; API off")
        deadline = time.monotonic() + 10
        while _lease_holder(pg_url) != "l":
            assert time.monotonic() < deadline, (follower.output(), leader.output())
            time.sleep(0.1)
        # The leader releases the lease as it stops; an elector would take it within one renew
        # interval (0.4 s in FAST_JOBS). The follower does not stand.
        assert leader.stop()[0] == 0
        time.sleep(1.2)
        assert _lease_holder(pg_url) == "l"
    finally:
        leader.kill()
        assert follower.stop()[0] == 0, follower.output()


def _recap_and_job(url: str, recap_id: str) -> tuple[str, str]:
    store = Store.open(url)
    try:
        recap = store.recaps.get(recap_id)
        jobs = [j for j in store.jobs.list_page(per_page=200) if j.type == "recap"]
    finally:
        store.close()
    assert len(jobs) == 1
    return str(recap.status), str(jobs[0].status)


def test_no_jobs_runs_no_workers_and_a_full_node_then_makes_the_recap(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'recapd.db'}"
    node = ServeProcess(url, tmp_path, "--no-jobs", name="api-only")
    try:
        node.started()
        assert "workers off; schedulers on; API on" in node.output()
        store = Store.open(url)  # migrated by serve
        try:
            _, token, channel_id = _user_with_token(store)
        finally:
            store.close()
        status, _, recap = node.post(
            "/api/v4/recaps",
            {"title": "Dev", "channel_ids": [channel_id], "agent_id": "extractive"},
            token,
        )
        assert status == 201, (recap, node.output())
        # A pool in this process would be woken at once; two poll intervals (FAST_JOBS: 0.5 s)
        # cover a wake-up missed.
        time.sleep(1.0)
        assert _recap_and_job(url, recap["id"]) == ("pending", "pending")
    finally:
        code, _ = node.stop()
    assert code == 0, node.output()

    # The same queue under a node with workers (and no API): the recap gets made.
    full = ServeProcess(url, tmp_path, "--no-api", name="workers")
    try:
        full.wait_for(r"workers recap.*; schedulers on; API off")
        deadline = time.monotonic() + 15
        while _recap_and_job(url, recap["id"]) != ("completed", "success"):
            assert time.monotonic() < deadline, full.output()
            time.sleep(0.1)
    finally:
        code, _ = full.stop()
    assert code == 0, full.output()
    assert "recapd serving at" not in full.output()


def test_serve_refuses_to_start_without_work_or_on_a_taken_port(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'recapd.db'}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Both at once: each is a process start.
        busy = ServeProcess(url, tmp_path, "--port", str(port), name="busy")
        nothing = ServeProcess(url, tmp_path, "--no-api", "--no-jobs", "--no-schedulers", name="x")
        assert busy.proc.wait(20) == 1
        assert nothing.proc.wait(20) == 1
    busy.kill()
    nothing.kill()
    assert f"cannot listen on 127.0.0.1:{port}" in busy.output()
    assert "nothing to run" in nothing.output()


def test_event_streams_end_cleanly_when_the_http_server_closes() -> None:
    closing = asyncio.Event()
    cancelled: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        kind = b"text/event-stream" if scope["path"] == "/events" else b"text/plain"
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]}
        )
        try:
            for i in range(100 if scope["path"] == "/events" else 3):
                await send({"type": "http.response.body", "body": b"%d" % i, "more_body": True})
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            cancelled.append(scope["path"])
            raise
        await send({"type": "http.response.body", "body": b"end", "more_body": False})

    async def call(wrapped: EndStreamsOnStop, path: str) -> list[Any]:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> Any:
            await asyncio.Event().wait()

        await wrapped({"type": "http", "path": path}, receive, send)
        return sent

    async def main() -> tuple[list[Any], list[Any]]:
        wrapped = EndStreamsOnStop(app, closing)
        stream = asyncio.create_task(call(wrapped, "/events"))
        plain = asyncio.create_task(call(wrapped, "/plain"))
        await asyncio.sleep(0.01)  # both have started their responses
        closing.set()
        return await asyncio.wait_for(stream, 1), await asyncio.wait_for(plain, 1)

    stream, plain = asyncio.run(main())
    assert cancelled == ["/events"]
    assert stream[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert len(stream) < 10  # ended at once, not after its 100 chunks
    assert [m.get("body") for m in plain[1:]] == [b"0", b"1", b"2", b"end"]  # finished as usual
