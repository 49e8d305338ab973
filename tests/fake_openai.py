"""A loopback server speaking the OpenAI chat-completions wire format, for tests and benches.

    with FakeOpenAI() as server:
        server.script(Reply.error(429, retry_after=0.2), Reply.answer({...}))
        agent = OpenAIAgent("llm", AgentSettings(type="openai", base_url=server.base_url, ...))

Scripted replies are used one per request, in order; after them every request gets the
`default` reply (by default an answer citing the first post id of the prompt). Every request
received is recorded in `server.requests` (unless `record=False`, for long benches).

With `count_tokens=True` the usage reported is counted from the request and the answer (one
token per 4 bytes of UTF-8, recapd's own estimate) instead of the reply's fixed figures, and
`server.stats` (also `GET /stats`) adds up calls, tokens, busy seconds and the most requests
in flight at once. `python -m tests.fake_openai --delay 0.3 --count-tokens` runs one in its own
process (benches: the server's threads then do not compete with recapd for the GIL) and prints
its port; `POST /control {"delay_s": x}` changes the delay of the default answers.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAI", "RecordedRequest", "Reply", "delayed_echo", "echo_answer"]


@dataclass
class RecordedRequest:
    """One HTTP request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of the request."""
        messages: list[dict[str, Any]] = self.body.get("messages", [])
        return messages

    def message(self, role: str) -> str:
        """The content of the first message with `role` ("" when none)."""
        for message in self.messages:
            if message.get("role") == role:
                return str(message.get("content", ""))
        return ""

    @property
    def system(self) -> str:
        """The system prompt."""
        return self.message("system")

    @property
    def user(self) -> str:
        """The user prompt."""
        return self.message("user")

    @property
    def response_format(self) -> dict[str, Any] | None:
        """The `response_format` the client asked for, if any."""
        value = self.body.get("response_format")
        return value if isinstance(value, dict) else None


@dataclass
class Reply:
    """What the server does with one request. Build with the class methods."""

    status: int = 200
    body: bytes | None = None
    content: str | None = None
    usage: dict[str, int] | None = field(default_factory=lambda: {"prompt": 100, "completion": 20})
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"
    refusal: str | None = None

    @classmethod
    def answer(
        cls,
        payload: dict[str, Any] | str,
        *,
        prompt_tokens: int = 100,
        completion_tokens: int = 20,
        usage: bool = True,
        delay_s: float = 0.0,
        finish_reason: str = "stop",
    ) -> Reply:
        """A 200 answer whose message content is `payload` (JSON-encoded unless a string)."""
        content = payload if isinstance(payload, str) else json.dumps(payload)
        tokens = {"prompt": prompt_tokens, "completion": completion_tokens} if usage else None
        return cls(content=content, usage=tokens, delay_s=delay_s, finish_reason=finish_reason)

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "error",
        *,
        retry_after: float | None = None,
        param: str | None = None,
        delay_s: float = 0.0,
    ) -> Reply:
        """An OpenAI-style error body with `status`, and Retry-After (seconds) when given."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        kind = "rate_limit_error" if status == 429 else "invalid_request_error"
        if status >= 500:
            kind = "server_error"
        body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
        return cls(status=status, body=json.dumps(body).encode(), headers=headers, delay_s=delay_s)

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Reply:
        """No answer for `seconds` (the client should time out first), then a 200 answer."""
        return cls(content='{"highlights": [], "action_items": []}', delay_s=seconds)

    @classmethod
    def invalid_body(cls) -> Reply:
        """A 200 whose HTTP body is not JSON at all (a broken proxy, a truncated answer)."""
        return cls(body=b'{"id": "chatcmpl-broken", "choices": [', usage=None)

    @classmethod
    def refused(cls, refusal: str = "I can't help with that.") -> Reply:
        """A 200 answer where the model refused (structured-output `refusal` field)."""
        return cls(content=None, refusal=refusal)


_ID_LINE_RE = re.compile(r"^\[\d\d:\d\d\] @\S+ \(([a-z0-9]+)[,)]", re.MULTILINE)


def echo_answer(request: RecordedRequest, delay_s: float = 0.0) -> Reply:
    """A valid answer citing the first post id of the prompt: the default reply."""
    ids = _ID_LINE_RE.findall(request.user)
    cited = ids[:1]
    payload = {
        "highlights": [{"text": f"The channel discussed {len(ids)} posts.", "post_ids": cited}],
        "action_items": [{"text": "Follow up on the discussion.", "owner": "", "post_ids": cited}],
    }
    return Reply.answer(payload, delay_s=delay_s)


def rich_answer(request: RecordedRequest, delay_s: float = 0.0) -> Reply:
    """An answer the size of a real model's: up to 8 highlights and 4 action items, one per
    group of the prompt's post ids, each citing one."""
    ids = _ID_LINE_RE.findall(request.user)
    if not ids:
        # A merge prompt: items cite ids in parentheses.
        ids = re.findall(r"^- \(([a-z0-9]{26})", request.user, re.MULTILINE)
    step = max(1, len(ids) // 8)
    picked = ids[::step][:8]
    payload = {
        "highlights": [
            {
                "text": f"Point {i + 1}: the channel discussed a topic raised in this post.",
                "post_ids": [pid],
            }
            for i, pid in enumerate(picked)
        ],
        "action_items": [
            {"text": f"Follow up on item {i + 1}.", "owner": "", "post_ids": [pid]}
            for i, pid in enumerate(picked[:4])
        ],
    }
    return Reply.answer(payload, delay_s=delay_s)


def delayed_echo(seconds: float) -> Callable[[RecordedRequest], Reply]:
    """A default reply for benches: `echo_answer` after `seconds` (a slow model)."""
    return lambda request: echo_answer(request, delay_s=seconds)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout test): nothing left to tell it.
            self.close_connection = True

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/stats"):
            self._send(200, json.dumps(self.server.fake.stats).encode())
        elif self.path.rstrip("/").endswith("/models"):
            body = {"object": "list", "data": [{"id": self.server.fake.model, "object": "model"}]}
            self._send(200, json.dumps(body).encode())
        else:
            self._send(404, b'{"error": {"message": "not found"}}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        fake = self.server.fake
        if self.path.rstrip("/").endswith("/control"):
            fake.delay_s = float(body.get("delay_s", fake.delay_s))
            self._send(200, b"{}")
            return
        if self.path.rstrip("/").endswith("/stats/reset"):
            fake.reset_stats()
            self._send(200, b"{}")
            return
        started = time.monotonic()
        request = RecordedRequest(
            method="POST",
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body if isinstance(body, dict) else {"_raw": body},
            received_at=time.monotonic(),
        )
        fake._record(request)
        counted: dict[str, int] | None = None
        try:
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, b'{"error": {"message": "not found"}}')
                return
            reply = fake._next_reply(request)
            if reply.delay_s > 0 and fake._stopping.wait(reply.delay_s):
                self.close_connection = True
                return
            if reply.body is not None:
                self._send(reply.status, reply.body, reply.headers)
                return
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.refusal is not None:
                message["refusal"] = reply.refusal
            completion: dict[str, Any] = {
                "id": f"chatcmpl-fake{len(fake.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": str(request.body.get("model", fake.model)),
                "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
            }
            usage = reply.usage
            if usage is not None and fake.count_tokens:
                prompt = sum(_tokens(str(m.get("content", ""))) for m in request.messages)
                usage = {"prompt": prompt, "completion": _tokens(reply.content or "")}
            if usage is not None:
                completion["usage"] = {
                    "prompt_tokens": usage["prompt"],
                    "completion_tokens": usage["completion"],
                    "total_tokens": usage["prompt"] + usage["completion"],
                }
                counted = usage
            self._send(reply.status, json.dumps(completion).encode(), reply.headers)
        finally:
            fake._count(counted, time.monotonic() - started)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Benches open many connections at once; the default backlog of 5 would reset some.
    request_queue_size = 256
    fake: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request (the cluster tests SIGKILL nodes) is not an error here.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeOpenAI:
    """The server. Use as a context manager, or call start() and stop()."""

    def __init__(
        self,
        *,
        default: Reply | Callable[[RecordedRequest], Reply] = echo_answer,
        supports_json_schema: bool = True,
        model: str = "fake-model",
        count_tokens: bool = False,
        record: bool = True,
    ) -> None:
        self.default = default
        self.count_tokens = count_tokens
        self.record = record
        # The delay of the answers of `main()`'s default reply (changed by POST /control).
        self.delay_s = 0.0
        self.stats: dict[str, float] = {}
        self._in_flight = 0
        # False: like servers without structured output, refuse json_schema with a 400.
        self.supports_json_schema = supports_json_schema
        self.model = model
        self.requests: list[RecordedRequest] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.reset_stats()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The base URL for an OpenAI client (ends with /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self._replies.extend(replies)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The chat-completions requests received so far."""
        with self._lock:
            return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._in_flight += 1
            self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self._in_flight)
            if self.record:
                self.requests.append(request)

    def _count(self, usage: dict[str, int] | None, busy_s: float) -> None:
        with self._lock:
            self._in_flight -= 1
            self.stats["calls"] += 1
            self.stats["busy_seconds"] += busy_s
            if usage is not None:
                self.stats["prompt_tokens"] += usage["prompt"]
                self.stats["completion_tokens"] += usage["completion"]

    def reset_stats(self) -> None:
        """Start counting calls, tokens, busy seconds and peak concurrency afresh."""
        with self._lock:
            self.stats = {
                "calls": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "busy_seconds": 0.0,
                "max_in_flight": 0,
            }

    def _next_reply(self, request: RecordedRequest) -> Reply:
        rf = request.response_format
        if not self.supports_json_schema and rf is not None and rf.get("type") == "json_schema":
            return Reply.error(
                400,
                "response_format type 'json_schema' is not supported by this server",
                param="response_format",
            )
        with self._lock:
            if self._replies:
                return self._replies.popleft()
        return self.default(request) if callable(self.default) else self.default

    def start(self) -> FakeOpenAI:
        """Listen on 127.0.0.1, a free port, in a daemon thread."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging replies return at once."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tokens(text: str) -> int:
    """recapd's estimate: one token per 4 bytes of UTF-8."""
    return math.ceil(len(text.encode("utf-8")) / 4)


def main() -> None:
    """Serve until stdin closes; print the port first."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--count-tokens", action="store_true")
    args = parser.parse_args()
    fake = FakeOpenAI(count_tokens=args.count_tokens, record=False)
    fake.default = lambda request: rich_answer(request, delay_s=fake.delay_s)
    fake.delay_s = args.delay
    with fake:
        print(fake.port, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
