"""Authentication: `Authorization: Bearer <token>` -> the user's id (app/sign_in.py: a local
personal access token, or a Mattermost token when recapd reads a Mattermost server; what cannot
be a token, not 1-200 printable ASCII characters, is refused there without a lookup)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from recapd.model.app_error import AppError
from recapd.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    """The Runtime the app was made on."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def _session_expired() -> AppError:
    return AppError(
        "api.context.session_expired.app_error",
        "Invalid or expired session, please login again.",
        status_code=401,
    )


async def current_user_id(request: Request) -> str:
    """The id of the user whose token came with the request; 401 otherwise."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _session_expired()
    # A local personal access token, or (chat = "mattermost") a Mattermost token.
    identity = await runtime_of(request).sign_in.authenticate(token)
    if identity is None:
        raise _session_expired()
    request.state.user_id = identity.user_id  # for the request log
    return identity.user_id


UserId = Annotated[str, Depends(current_user_id)]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
