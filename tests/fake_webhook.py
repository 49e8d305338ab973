"""A webhook receiver double: a real HTTP server on loopback, in a thread, that records every
request and answers with scripted statuses (then 200), like a Slack/Mattermost incoming webhook.
A scripted answer may also be hostile: late, dripped a byte at a time, or with a huge body.
"""

from __future__ import annotations

import contextlib
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


# A hostile answer stops on its own after this long, even if the caller never hangs up.
HOSTILE_LIMIT_S = 10.0


@dataclass(frozen=True)
class Answer:
    """A scripted answer: a status, after an optional delay (to make the caller time out).

    `drip_s`: one byte every `drip_s` seconds, of the head (`drip="head"`: the status line
    never completes in time) or of the body (`drip="body"`: the head comes at once).
    `body_bytes`: the length of the body (announced in Content-Length), sent as fast as the
    caller reads unless dripped.
    """

    status: int
    delay_s: float = 0.0
    drip: str = ""
    drip_s: float = 0.0
    body_bytes: int = 0


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
                # OSError: the caller gave up (timeout) and closed the connection.
                with contextlib.suppress(OSError):
                    self._answer(answer)

            def _answer(self, answer: Answer) -> None:
                text = b"ok" if answer.status < 300 else b"invalid_payload"
                length = answer.body_bytes or len(text)
                head = (
                    f"HTTP/1.1 {answer.status} Scripted\r\nContent-Type: text/plain\r\n"
                    f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
                ).encode()
                give_up = time.monotonic() + HOSTILE_LIMIT_S
                if answer.drip == "head":
                    self._drip(head, answer.drip_s, give_up)
                    return
                self.wfile.write(head)
                self.wfile.flush()
                if answer.drip == "body":
                    self._drip(b"x" * length, answer.drip_s, give_up)
                elif answer.body_bytes:
                    chunk = b"x" * 65536
                    left = length
                    while left > 0 and time.monotonic() < give_up:
                        self.wfile.write(chunk[: min(left, len(chunk))])
                        left -= len(chunk)
                else:
                    self.wfile.write(text)
                self.close_connection = True

            def _drip(self, data: bytes, every_s: float, give_up: float) -> None:
                for i in range(len(data)):
                    if time.monotonic() > give_up:
                        break
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(every_s)
                self.close_connection = True

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
