"""Authentication: `Authorization: Bearer <personal access token>` -> the user's id."""

from __future__ import annotations

import asyncio
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
    runtime = runtime_of(request)
    now = runtime.recaps.clock.now_ms()
    user_id = await asyncio.to_thread(runtime.store.tokens.lookup, token, now)
    if user_id is None:
        raise _session_expired()
    return user_id


UserId = Annotated[str, Depends(current_user_id)]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
