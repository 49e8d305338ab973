"""The browser pages: server-rendered Jinja2 templates, a signed session cookie, CSRF-checked
forms and live updates by server-sent events; static files under /static, no build step."""

from __future__ import annotations

import inspect

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from recapd.model.app_error import AppError
from recapd.web import (
    live,
    routes_auth,
    routes_jobs,
    routes_permalinks,
    routes_recaps,
    routes_schedules,
)
from recapd.web.page_route import error_page
from recapd.web.session import save_session, session_of
from recapd.web.templating import STATIC_DIR

__all__ = ["install"]


def favicon() -> Response:
    """The site's icon, where browsers look for it without being told."""
    return FileResponse(
        STATIC_DIR / "favicon.ico",
        media_type="image/x-icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )


def install(app: FastAPI) -> None:
    """Add the pages (/, /login, /recaps, /schedules, /jobs, /events, permalinks), /static and
    /favicon.ico."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_api_route("/favicon.ico", favicon, methods=["GET", "HEAD"], include_in_schema=False)
    _html_for_browsers(app)
    app.state.live_streams = live.StreamLimit()
    for router in (
        routes_auth.router,
        routes_recaps.router,
        routes_schedules.router,
        routes_jobs.router,
        live.router,
        routes_permalinks.router,
    ):
        app.include_router(router)


# A browser that asks for an address nobody serves gets a page in words; the API keeps its JSON.
_BROWSER_ERRORS = {
    404: "api.context.404.app_error",
    405: "api.context.method_not_allowed.app_error",
}


def _html_for_browsers(app: FastAPI) -> None:
    """Wrap the API's HTTP error handler (api/errors.py): a 404 or 405 outside /api/ for a
    client that accepts HTML is an error page; everything else stays the API's JSON."""
    json_handler = app.exception_handlers[StarletteHTTPException]

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        wants_html = "text/html" in request.headers.get("accept", "")
        error_id = _BROWSER_ERRORS.get(exc.status_code)
        if request.url.path.startswith("/api/") or not wants_html or error_id is None:
            answer = json_handler(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        err = AppError(error_id, str(exc.detail), status_code=exc.status_code)
        page = error_page(request, err, await session_of(request))
        await save_session(request, page)
        return page

    app.add_exception_handler(StarletteHTTPException, handler)
