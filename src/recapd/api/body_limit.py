"""A cap on request bodies: the bytes actually received are counted (a chunked body has no
Content-Length to trust), and a body beyond its path's limit is answered 413 with the usual
AppError JSON before any route reads it."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recapd.model.app_error import AppError

TOO_LARGE = "api.context.request_body_too_large.app_error"
# A post's props may hold 800,000 characters of JSON (app/posts.py), up to 4 bytes each in
# UTF-8, plus its message: 4 MiB keeps every valid post acceptable.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Smaller limits by path: Mattermost caps a slash command's text well below this.
PATH_LIMITS: dict[str, int] = {"/api/v4/slash/recap": 64 * 1024}


def limit_for(path: str) -> int:
    """The body limit in bytes for a request path."""
    return PATH_LIMITS.get(path.rstrip("/") or "/", MAX_BODY_BYTES)


class BodyLimitMiddleware:
    """Pure ASGI: reads the whole body (at most the limit) before the app runs, then hands it
    on; beyond the limit, a 413 without reading further. Install it inside the request-id
    middleware, whose id the error carries."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(str(scope.get("path", "")))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(scope, receive, send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > limit:
                await _too_large(scope, receive, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only the disconnect is left to hear

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    err = AppError(
        TOO_LARGE,
        f"The request body is too large: at most {limit} bytes.",
        status_code=413,
    )
    request_id = str(scope.get("state", {}).get("request_id", ""))
    # The rest of the body is not read: close the connection rather than reuse it.
    response = JSONResponse(
        err.to_dict(request_id), status_code=413, headers={"Connection": "close"}
    )
    await response(scope, receive, send)
