"""A webhook receiver double: a real HTTP server on loopback, in a thread, that records every
request and answers with scripted statuses (then 200), like a Slack/Mattermost incoming webhook.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request the receiver got, and what it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    """A scripted answer: a status, after an optional delay (to make the caller time out)."""

    status: int
    delay_s: float = 0.0


class FakeWebhook:
    """The receiver; `url` is where to point a webhook, `requests` what arrived."""

    def __init__(self) -> None:
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                answer = fake._next()
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                fake._record(Received("POST", self.path, dict(self.headers), body, answer.status))
                text = b"ok" if answer.status < 300 else b"invalid_payload"
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                except OSError:
                    pass  # the caller gave up (timeout) and closed the connection

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The hook's URL (the path is Mattermost-like; any path is accepted)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/xyz"

    def script(self, *answers: int | Answer) -> None:
        """Answer the next requests with these statuses, in order; 200 once they run out."""
        with self._lock:
            self._script.extend(a if isinstance(a, Answer) else Answer(a) for a in answers)

    def _next(self) -> Answer:
        with self._lock:
            return self._script.popleft() if self._script else Answer(200)

    def _record(self, received: Received) -> None:
        with self._lock:
            self.requests.append(received)

    def received(self) -> list[Received]:
        """A copy of the requests so far."""
        with self._lock:
            return list(self.requests)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def fake_webhook() -> Iterator[FakeWebhook]:
    """A running receiver, stopped on exit."""
    hook = FakeWebhook()
    hook.start()
    try:
        yield hook
    finally:
        hook.stop()
