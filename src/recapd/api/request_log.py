"""One structured log line per HTTP request: method, path, status, duration, request id and the
signed-in user, as key=value pairs on the `recapd.http` logger."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("recapd.http")


def _value(v: object) -> str:
    text = str(v)
    if not text:
        return "-"
    if any(c in text for c in ' "=\\') or not text.isprintable():
        return json.dumps(text)
    return text


def format_line(fields: dict[str, Any]) -> str:
    """`k=v k=v ...`; values with spaces, quotes or `=` are JSON-quoted, empty ones are `-`."""
    return " ".join(f"{k}={_value(v)}" for k, v in fields.items())


class RequestLogMiddleware:
    """Pure ASGI (streamed responses pass through untouched): the line is written when the
    response ends, with the request id and user id the inner layers left in the request
    state (`request_id` by errors.RequestIdMiddleware, `user_id` by sign-in)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped every handler

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            state = scope["state"]
            log.info(
                format_line(
                    {
                        "method": scope.get("method", ""),
                        "path": scope.get("path", ""),
                        "status": status,
                        "duration_ms": f"{(time.perf_counter() - started) * 1000:.1f}",
                        "request_id": state.get("request_id", ""),
                        "user_id": state.get("user_id", ""),
                    }
                )
            )
