"""Who is looking: the signed-in user of a page request, checked against a live token."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from recapd.model.app_error import AppError
from recapd.runtime import Runtime
from recapd.store.token_store import hash_token
from recapd.web.session import Session, end_session, session_of

# The token id of a session signed in with a Mattermost token (local ones name their token).
MATTERMOST_SESSION = "mattermost"


class SignInRequired(Exception):
    """The page needs a signed-in user; the page route answers with a redirect to /login."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a request."""

    user_id: str
    username: str
    display_name: str
    timezone: str
    is_admin: bool
    session: Session

    @property
    def name(self) -> str:
        """How the pages call the user."""
        return self.display_name or self.username


def runtime_of(request: Request) -> Runtime:
    """The Runtime the app was made on."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def _load_viewer(runtime: Runtime, session: Session) -> Viewer | None:
    """The session's user while its token is still live (revoking a token signs out)."""
    tokens = runtime.store.tokens
    if session.token_id not in {t.id for t in tokens.list_for_user(session.user_id)}:
        return None
    try:
        user = runtime.store.workspace.get_user(session.user_id)
    except AppError:
        return None
    if user.delete_at:
        return None
    admin = tokens.is_admin(user.id)
    return Viewer(user.id, user.username, user.display_name, user.timezone, admin, session)


async def _load_mattermost_viewer(runtime: Runtime, session: Session) -> Viewer | None:
    """A session signed in with a Mattermost token: its user, while Mattermost still has them
    active (asked again once the sign-in cache expires)."""
    identity = await runtime.sign_in.mattermost_user(session.user_id)
    if identity is None:
        return None
    admin = await asyncio.to_thread(runtime.store.tokens.is_admin, identity.user_id)
    return Viewer(
        identity.user_id,
        identity.username,
        identity.display_name,
        identity.timezone,
        admin,
        session,
    )


def mattermost_session_ended(runtime: Runtime, session: Session) -> bool:
    """True once a Mattermost-token session is older than `mattermost_web_session_hours`.

    The session cannot see the token being revoked (it keeps no token, and the bot's lookup
    only sees deactivation), so it is kept short instead."""
    lifetime_ms = runtime.settings.mattermost_web_session_hours * 3_600_000
    return runtime.recaps.clock.now_ms() - session.issued_at >= lifetime_ms


async def viewer_of(request: Request) -> Viewer:
    """The signed-in user; SignInRequired otherwise."""
    session = await session_of(request)
    if not session.user_id:
        raise SignInRequired
    runtime = runtime_of(request)
    if session.token_id == MATTERMOST_SESSION:
        if mattermost_session_ended(runtime, session):
            hours = f"{runtime.settings.mattermost_web_session_hours:g}"
            await end_session(request, session)
            session.say(
                f"Your sign-in with a Mattermost token has ended after {hours} hours; "
                "sign in again."
            )
            raise SignInRequired
        viewer = await _load_mattermost_viewer(runtime, session)
    else:
        viewer = await asyncio.to_thread(_load_viewer, runtime, session)
    if viewer is None:
        await end_session(request, session)
        raise SignInRequired
    request.state.web_viewer = viewer
    request.state.user_id = viewer.user_id  # for the request log
    return viewer


def viewer_if_known(request: Request) -> Viewer | None:
    """The viewer when this request already identified one (error pages show the menu)."""
    found: Viewer | None = getattr(request.state, "web_viewer", None)
    return found


def token_user(runtime: Runtime, token: str, now_ms: int) -> tuple[str, str] | None:
    """(user id, token id) of a live personal access token, or None."""
    user_id = runtime.store.tokens.lookup(token, now_ms)
    if user_id is None:
        return None
    wanted = hash_token(token)
    for t in runtime.store.tokens.list_for_user(user_id):
        if t.token_hash == wanted:
            return user_id, t.id
    return None


async def signed_in_user(runtime: Runtime, token: str) -> tuple[str, str] | None:
    """(user id, session token id) for a sign-in token: a local personal access token, else
    (with `chat = "mattermost"`) a Mattermost token, whose session re-checks its user rather
    than keeping the token. Raises AppError (502) when Mattermost cannot be asked."""
    found = await asyncio.to_thread(token_user, runtime, token, runtime.recaps.clock.now_ms())
    if found is not None or runtime.settings.chat != "mattermost":
        return found
    identity = await runtime.sign_in.authenticate(token)
    if identity is None or identity.source != "mattermost":
        return None
    return identity.user_id, MATTERMOST_SESSION


CurrentViewer = Annotated[Viewer, Depends(viewer_of)]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
