"""The web session: a signed cookie (HttpOnly, SameSite=Lax) holding who signed in with which
token, the CSRF token every form carries, and a one-time notice. Nothing is kept server-side;
the signing key is `session_secret`, else one generated once and shared through the database."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.requests import Request
from starlette.responses import Response

from recapd.model.app_error import AppError
from recapd.runtime import Runtime

COOKIE_NAME = "recapd_session"
# A sign-in lasts this long; revoking its local token ends it at once. A sign-in with a
# Mattermost token ends sooner (viewer.mattermost_session_ended).
MAX_AGE_MS = 30 * 24 * 3600 * 1000
SECRET_NAME = "web_session_secret"
_SALT = "recapd.web.session"
_STATE_KEY = "web_session"


@dataclass
class Session:
    """What the cookie holds. `user_id` empty: not signed in."""

    csrf: str
    user_id: str = ""
    token_id: str = ""
    issued_at: int = 0
    notice: str = ""
    changed: bool = False

    @classmethod
    def fresh(cls, now_ms: int) -> Session:
        """An anonymous session with a new CSRF token (to be sent back)."""
        return cls(csrf=secrets.token_urlsafe(24), issued_at=now_ms, changed=True)

    def sign_in(self, user_id: str, token_id: str, now_ms: int) -> None:
        """Become `user_id`; a new CSRF token, so one planted before sign-in is worthless."""
        self.user_id, self.token_id, self.issued_at = user_id, token_id, now_ms
        self.csrf = secrets.token_urlsafe(24)
        self.changed = True

    def sign_out(self) -> None:
        """Forget the user and the CSRF token."""
        self.user_id = self.token_id = self.notice = ""
        self.csrf = secrets.token_urlsafe(24)
        self.changed = True

    def say(self, notice: str) -> None:
        """A message for the next page (after a redirect)."""
        self.notice = notice
        self.changed = True

    def pop_notice(self) -> str:
        """The pending message, once."""
        notice, self.notice = self.notice, ""
        if notice:
            self.changed = True
        return notice

    def csrf_matches(self, given: str) -> bool:
        """Constant-time comparison with the session's CSRF token."""
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf.encode())


class SessionCodec:
    """Signs and checks session cookies with one key."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt=_SALT)

    def dump(self, session: Session) -> str:
        """The cookie value."""
        data = {"c": session.csrf, "i": session.issued_at, "n": session.notice}
        if session.user_id:
            data |= {"u": session.user_id, "t": session.token_id}
        return str(self._serializer.dumps(data))

    def load(self, raw: str, now_ms: int) -> Session | None:
        """The session in a cookie, or None when it is forged, malformed or too old."""
        try:
            data: Any = self._serializer.loads(raw)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        csrf, issued, notice = data.get("c"), data.get("i"), data.get("n", "")
        user_id, token_id = data.get("u", ""), data.get("t", "")
        if not all(isinstance(v, str) for v in (csrf, notice, user_id, token_id)):
            return None
        if not csrf or not isinstance(issued, int) or now_ms - issued > MAX_AGE_MS:
            return None
        return Session(csrf, user_id, token_id, issued, notice)


async def codec_for(request: Request) -> SessionCodec:
    """The codec of the app's signing key: the setting, else the database's shared secret
    (made by whichever node asks first). Cached per key, so a reloaded setting takes effect."""
    runtime: Runtime = request.app.state.runtime
    configured = runtime.settings.session_secret
    cached: tuple[str, SessionCodec] | None = getattr(request.app.state, "web_codec", None)
    if cached is not None and cached[0] == configured:
        return cached[1]
    secret = configured
    if not secret:
        secret = await asyncio.to_thread(
            runtime.store.secrets.get_or_create,
            SECRET_NAME,
            secrets.token_urlsafe(48),
            runtime.recaps.clock.now_ms(),
        )
    codec = SessionCodec(secret)
    request.app.state.web_codec = (configured, codec)
    return codec


async def session_of(request: Request) -> Session:
    """This request's session (loaded once; a fresh anonymous one when there is none)."""
    found: Session | None = getattr(request.state, _STATE_KEY, None)
    if found is not None:
        return found
    runtime: Runtime = request.app.state.runtime
    now = runtime.recaps.clock.now_ms()
    raw = request.cookies.get(COOKIE_NAME, "")
    session = (await codec_for(request)).load(raw, now) if raw else None
    if session is None:
        session = Session.fresh(now)
    setattr(request.state, _STATE_KEY, session)
    return session


async def save_session(request: Request, response: Response) -> None:
    """Send the cookie back when the session changed during the request."""
    session: Session | None = getattr(request.state, _STATE_KEY, None)
    if session is None or not session.changed:
        return
    response.set_cookie(
        COOKIE_NAME,
        (await codec_for(request)).dump(session),
        max_age=MAX_AGE_MS // 1000,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


CSRF_FIELD = "csrf_token"


def csrf_rejected() -> AppError:
    """The answer to a form without the session's CSRF token."""
    return AppError(
        "web.csrf.invalid.app_error",
        "This form has expired or did not come from recapd. Go back, reload the page and "
        "try again.",
        status_code=403,
    )


async def check_csrf(request: Request) -> None:
    """A dependency of every form POST: the form's CSRF token must be the session's."""
    session = await session_of(request)
    form = await request.form()
    given = form.get(CSRF_FIELD)
    if not isinstance(given, str) or not session.csrf_matches(given):
        raise csrf_rejected()
