"""The web session: a signed cookie (HttpOnly, SameSite=Lax) holding the CSRF token every form
carries, a one-time notice and, once signed in, the id of the session's row (web_sessions), which
says who signed in with which token until sign-out, token revocation or expiry deletes it. The
signing key is `session_secret`, else one generated once and shared through the database. Form
posts must carry the CSRF token and, when the browser names one, come from this site's origin."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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
    """What the cookie holds (`sid`: the session row's id), and who its row says signed in.
    `user_id` empty: not signed in."""

    csrf: str
    user_id: str = ""
    token_id: str = ""
    issued_at: int = 0
    notice: str = ""
    changed: bool = False
    sid: str = ""

    @classmethod
    def fresh(cls, now_ms: int) -> Session:
        """An anonymous session with a new CSRF token (to be sent back)."""
        return cls(csrf=secrets.token_urlsafe(24), issued_at=now_ms, changed=True)

    def sign_in(self, sid: str, user_id: str, token_id: str, now_ms: int) -> None:
        """Become `user_id` through the session row `sid`; a new CSRF token, so one planted
        before sign-in is worthless."""
        self.sid, self.user_id, self.token_id, self.issued_at = sid, user_id, token_id, now_ms
        self.csrf = secrets.token_urlsafe(24)
        self.changed = True

    def sign_out(self) -> None:
        """Forget the session row, the user and the CSRF token."""
        self.sid = self.user_id = self.token_id = self.notice = ""
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
        if session.sid:
            data["s"] = session.sid
        return str(self._serializer.dumps(data))

    def load(self, raw: str, now_ms: int) -> Session | None:
        """The session in a cookie, or None when it is forged, malformed or too old (who
        signed in is the row's to say: see session_of)."""
        try:
            data: Any = self._serializer.loads(raw)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        csrf, issued, notice, sid = (
            data.get("c"),
            data.get("i"),
            data.get("n", ""),
            data.get("s", ""),
        )
        if not all(isinstance(v, str) for v in (csrf, notice, sid)):
            return None
        if not csrf or not isinstance(issued, int) or now_ms - issued > MAX_AGE_MS:
            return None
        return Session(csrf, issued_at=issued, notice=notice, sid=sid)


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


def loaded_session(request: Request) -> Session | None:
    """The session this request already loaded (see session_of), else None."""
    found: Session | None = getattr(request.state, _STATE_KEY, None)
    return found


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
    elif session.sid:
        # Signed out, revoked or expired on any node: the row is gone, and so is the sign-in.
        row = await asyncio.to_thread(runtime.store.web_sessions.get, session.sid, now)
        if row is None:
            session.sign_out()
        else:
            session.user_id, session.token_id = row.user_id, row.token_id
            session.issued_at = row.create_at
    setattr(request.state, _STATE_KEY, session)
    return session


async def start_session(
    request: Request, session: Session, user_id: str, token_id: str, lifetime_ms: int
) -> None:
    """Sign `session` in as `user_id` (signed in with `token_id`) for `lifetime_ms`: a new
    session row, named in the cookie."""
    runtime: Runtime = request.app.state.runtime
    now = runtime.recaps.clock.now_ms()
    sid = await asyncio.to_thread(
        runtime.store.web_sessions.create, user_id, token_id, now, now + lifetime_ms
    )
    session.sign_in(sid, user_id, token_id, now)


async def end_session(request: Request, session: Session) -> None:
    """Sign out: the session row is deleted (every node then refuses copies of the cookie)."""
    if session.sid:
        runtime: Runtime = request.app.state.runtime
        await asyncio.to_thread(runtime.store.web_sessions.end, session.sid)
    session.sign_out()


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


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL, lowercased, the default port left out ("" if none)."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def own_origins(request: Request) -> set[str]:
    """The origins this site's pages have: the request's own (its Host), and recapd's
    configured addresses (public_url, site_url), which a proxy may serve under another Host."""
    runtime: Runtime = request.app.state.runtime
    found = {_origin(str(request.base_url))}
    found |= {_origin(runtime.settings.public_url), _origin(runtime.settings.site_url)}
    return found - {""}


def foreign_origin(origin: str) -> AppError:
    """The answer to a form sent from another site's page."""
    shown = origin if len(origin) <= 100 else origin[:100] + "…"
    return AppError(
        "web.origin.foreign.app_error",
        f"This form was sent from another site ({shown}); recapd takes forms from its own "
        "pages only. Open recapd and send it from there.",
        status_code=403,
    )


def check_origin(request: Request) -> None:
    """A form POST whose browser names its origin must come from this site. Without an
    Origin header (older browsers, privacy tools) the CSRF token alone decides: Referer is
    not used as a stand-in, since the same tools strip it and it adds nothing to the token."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    if _origin(origin) not in own_origins(request):  # "null" (an opaque origin) included
        raise foreign_origin(origin)


async def check_csrf(request: Request) -> None:
    """A dependency of every form POST: the browser's Origin, when it sends one, must be
    this site's, and the form's CSRF token must be the session's."""
    check_origin(request)
    session = await session_of(request)
    form = await request.form()
    given = form.get(CSRF_FIELD)
    if not isinstance(given, str) or not session.csrf_matches(given):
        raise csrf_rejected()
