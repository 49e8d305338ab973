"""Signing in with a personal access token (`recapd users token USER`) and signing out."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from recapd.model.app_error import AppError
from recapd.web.page_route import PageRoute, local_path, see_other
from recapd.web.session import MAX_AGE_MS, check_csrf, end_session, session_of, start_session
from recapd.web.templating import render
from recapd.web.viewer import RuntimeDep, signed_in_user

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# A token is 43 URL-safe characters; anything much longer is not one.
_MAX_TOKEN_CHARS = 200


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:
    """The sign-in form."""
    session = await session_of(request)
    if session.user_id:
        return see_other(local_path(next))
    return render(request, "login.html", session, next=local_path(next), token_error="")


@router.post("/login", dependencies=[Depends(check_csrf)])
async def login(request: Request, rt: RuntimeDep) -> Response:
    """Check the token; on success, a signed-in session and the page asked for."""
    session = await session_of(request)
    form = await request.form()
    token = str(form.get("token", "")).strip()
    target = local_path(str(form.get("next", "/")))
    found, message = None, ""
    if token and len(token) <= _MAX_TOKEN_CHARS and token.isascii() and token.isprintable():
        try:
            found = await signed_in_user(rt, token)
        except AppError:  # Mattermost could not be asked: not the token's fault
            message = "Mattermost could not be reached to check this token; try again shortly."
    if found is None:
        message = message or (
            "Paste your personal access token."
            if not token
            else "This token is not valid: it may be mistyped or revoked. "
            "An administrator makes a new one with: recapd users token USERNAME"
        )
        return render(
            request, "login.html", session, status_code=400, next=target, token_error=message
        )
    if session.sid:  # signing in again over a live session: that one ends
        await end_session(request, session)
    # The row lasts MAX_AGE_MS; a Mattermost-token session is cut sooner by the viewer check
    # (mattermost_session_ended), which says why.
    await start_session(request, session, *found, MAX_AGE_MS)
    return see_other(target)


@router.post("/logout", dependencies=[Depends(check_csrf)])
async def logout(request: Request) -> Response:
    """End the sign-in on the server (copies of the cookie stop working too)."""
    session = await session_of(request)
    await end_session(request, session)
    session.say("You are signed out.")
    return see_other("/login")
