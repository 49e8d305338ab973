"""The route class of every page: a missing sign-in becomes a redirect to /login, an AppError
an HTML page with its message and status (URL text no database can store is one), and a changed
session is sent back as a cookie."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from recapd.api.errors import check_url_text
from recapd.model.app_error import AppError
from recapd.web.session import save_session, session_of
from recapd.web.templating import render
from recapd.web.viewer import SignInRequired, viewer_if_known

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def local_path(target: str, default: str = "/") -> str:
    """`target` when it is a path on this site, else `default` (no open redirects)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def see_other(url: str) -> RedirectResponse:
    """The redirect after a form POST (303: the browser follows with a GET)."""
    return RedirectResponse(url, status_code=303)


def error_page(request: Request, err: AppError, session: Any) -> Response:
    """An AppError as a page: its message, status and id."""
    titles = {
        400: "That did not work",
        403: "Not allowed",
        404: "Not found",
        409: "Changed meanwhile",
        429: "Too soon",
        501: "Recaps are turned off",
    }
    return render(
        request,
        "error.html",
        session,
        status_code=err.status_code,
        viewer=viewer_if_known(request),
        title=titles.get(err.status_code, "Something went wrong"),
        error=err,
    )


class PageRoute(APIRoute):
    """An APIRoute for HTML pages."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                # Path and query text a database cannot store (NUL) is a 400 page, not a 500.
                await check_url_text(request)
                response = await handler(request)
            except SignInRequired:
                back = request.url.path if request.method == "GET" else "/"
                if request.method == "GET" and request.url.query:
                    back += "?" + request.url.query
                response = see_other("/login?next=" + quote(back, safe="/"))
            except AppError as err:
                response = error_page(request, err, await session_of(request))
            await save_session(request, response)
            return response

        return page
