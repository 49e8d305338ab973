"""The route class of every page: a missing sign-in becomes a redirect to /login, an AppError
an HTML page with its message and status (URL text no database can store is one), and a changed
session is sent back as a cookie."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from recapd.api.errors import capped, check_url_text, request_id_of
from recapd.model.app_error import AppError
from recapd.web.session import Session, loaded_session, save_session
from recapd.web.templating import render
from recapd.web.viewer import SignInRequired, viewer_if_known

log = logging.getLogger(__name__)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# Pages say what happened in words; the error's id goes to the log (and the API's JSON).
_WORDS = {
    "store.sql_recap.get.not_found.app_error": (
        "This recap does not exist: it may have been deleted, or it is someone else's."
    ),
    "store.sql_scheduled_recap.get.not_found.app_error": (
        "This schedule does not exist: it may have been deleted, or it is someone else's."
    ),
    "store.sql_job.get.not_found.app_error": (
        "This job does not exist: finished jobs are deleted after a while."
    ),
    "api.context.404.app_error": "There is no page at this address.",
    "api.context.method_not_allowed.app_error": "This address does not take that kind of request.",
    "api.context.invalid_url_param.app_error": (
        "This address holds characters recapd cannot read; check the link."
    ),
}


def local_path(target: str, default: str = "/") -> str:
    """`target` when it is a path on this site, else `default` (no open redirects)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def see_other(url: str) -> RedirectResponse:
    """The redirect after a form POST (303: the browser follows with a GET)."""
    return RedirectResponse(url, status_code=303)


def page_message(err: AppError) -> str:
    """What an error page says: the error in words, as a sentence (never its id)."""
    text = _WORDS.get(err.id) or capped(err.message) or "Something went wrong."
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def error_page(request: Request, err: AppError, session: Any) -> Response:
    """An AppError as a page: its message in words and its status; the id is logged."""
    log.info(
        "page error id=%s status=%d path=%s request_id=%s",
        err.id,
        err.status_code,
        request.url.path,
        request_id_of(request),
    )
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
        message=page_message(err),
        status=err.status_code,
        request_id=request_id_of(request),
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
                # A request refused before its session was read (a form from another site,
                # whose cookie the browser withheld) must not replace the visitor's cookie.
                session = loaded_session(request) or Session.fresh(0)
                response = error_page(request, err, session)
            await save_session(request, response)
            return response

        return page
