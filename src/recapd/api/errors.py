"""Errors on the wire: every failure answers Mattermost's `{id, message, detailed_error,
request_id, status_code}`; bad input is 400, never 422 or 500."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from recapd.model.app_error import AppError
from recapd.model.ids import new_id

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
INVALID_BODY = "api.context.invalid_body_param.app_error"
INTERNAL = "api.internal.app_error"
INVALID_URL = "api.context.invalid_url_param.app_error"
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_of(request: Request) -> str:
    """This request's id (set by RequestIdMiddleware)."""
    return str(getattr(request.state, "request_id", ""))


# Errors quote what they refuse (an agent id, a value); a huge input is quoted this far only.
MAX_ECHO_CHARS = 500


def capped(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """`text`, cut to `limit` characters with a note of how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def error_response(request: Request, err: AppError) -> JSONResponse:
    """The JSON answer for an AppError, with Retry-After on a 429 that says how long. The
    message and detail are capped (`capped`): they may quote user input of any size."""
    headers = {REQUEST_ID_HEADER: request_id_of(request)}
    retry = err.params.get("retry_after_seconds")
    if err.status_code == 429 and isinstance(retry, int | float):
        headers["Retry-After"] = str(max(0, int(retry)))
    body = err.to_dict(request_id_of(request))
    body["message"] = capped(body["message"])
    body["detailed_error"] = capped(body["detailed_error"])
    return JSONResponse(body, status_code=err.status_code, headers=headers)


class RequestIdMiddleware(BaseHTTPMiddleware):
    """A request id per request: the client's X-Request-Id when sane, else a new id; echoed."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        request.state.request_id = given if _CLIENT_REQUEST_ID.fullmatch(given) else new_id()
        try:
            response = await call_next(request)
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.url.path)
            response = error_response(request, _internal())
        response.headers[REQUEST_ID_HEADER] = request.state.request_id
        return response


# Deeper JSON than this is refused: nothing recapd stores nests so deep, and walking or
# encoding it recursively could exhaust the stack (a 500).
MAX_JSON_DEPTH = 64


def _bad_text(value: Any) -> bool:
    """True when text anywhere in `value` holds NUL or a lone surrogate (which databases and
    encoders reject), or when `value` nests deeper than MAX_JSON_DEPTH."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or any("\ud800" <= ch <= "\udfff" for ch in item):
                return True
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                return True
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def check_text(value: Any, where: str = "body") -> None:
    """AppError 400 when `value` holds text no database can store or nests too deeply."""
    if _bad_text(value):
        raise AppError(
            INVALID_BODY if where == "body" else INVALID_URL,
            f"Invalid request {where}: NUL or unpaired surrogate characters, "
            f"or JSON nested deeper than {MAX_JSON_DEPTH} levels.",
            status_code=400,
        )


async def check_url_text(request: Request) -> None:
    """A router dependency: path and query parameters hold storable text."""
    check_text(dict(request.path_params), "url")
    check_text(list(request.query_params.multi_items()), "url")


def _internal() -> AppError:
    return AppError(INTERNAL, "An internal error occurred.", status_code=500)


def install(app: FastAPI) -> None:
    """Register the handlers and the request-id middleware on `app`."""

    async def on_app_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        return error_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        details = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return error_response(
            request, AppError(INVALID_BODY, "Invalid or missing parameters.", details, 400)
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        ids = {
            400: INVALID_BODY,  # e.g. a body FastAPI could not parse
            404: "api.context.404.app_error",
            405: "api.context.method_not_allowed.app_error",
        }
        err = AppError(
            ids.get(exc.status_code, "api.context.http_error.app_error"),
            str(exc.detail),
            status_code=exc.status_code,
        )
        return error_response(request, err)

    async def on_unknown(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_response(request, _internal())

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unknown)
    app.add_middleware(RequestIdMiddleware)
