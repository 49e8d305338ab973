"""Who a token belongs to: a local personal access token, or (with `chat = "mattermost"`) a
Mattermost personal access token or session token checked with `GET /api/v4/users/me`.

The API (`api/auth.py`) and the web sign-in use this one lookup, which refuses at once what
cannot be a token (not 1-200 printable ASCII characters). Mattermost answers are cached
for `mattermost_signin_cache_seconds` (injected clock), keyed by the token's SHA-256, never the
token itself, so a client sending its token with every request costs one call a minute, and a
revoked Mattermost token stops working within that time. Refused tokens are cached the same way,
so a client retrying a bad token does not turn into a stream of calls to Mattermost.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Literal

from recapd.chat.mattermost.client import MattermostClient
from recapd.chat.mattermost.source import user_from_json
from recapd.clock import Clock
from recapd.config import Settings
from recapd.model.app_error import AppError
from recapd.store.store import Store

# Bounds the cache whatever stream of distinct tokens arrives.
MAX_CACHED_TOKENS = 10_000
# Tokens are 26 (Mattermost) or 43 (local) characters; anything this long is no token.
MAX_TOKEN_CHARS = 200


@dataclass(frozen=True)
class Identity:
    """The user a token signs in: recapd's user id (the Mattermost user id for Mattermost
    tokens) and, for Mattermost users, their profile's name and effective time zone."""

    user_id: str
    source: Literal["local", "mattermost"]
    username: str = ""
    display_name: str = ""
    timezone: str = ""


def token_key(token: str) -> str:
    """The cache key of a token: its SHA-256 (the token itself is never kept)."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_token_shaped(token: str) -> bool:
    """Whether `token` could be a token at all: 1-200 printable ASCII characters, no spaces
    (others could not be sent on to Mattermost in a header, and are nobody's token)."""
    return 0 < len(token) <= MAX_TOKEN_CHARS and all("!" <= c <= "~" for c in token)


class Authenticator:
    """Turns a bearer token into an Identity, or None when nobody holds it."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        mattermost: MattermostClient | None,
        settings: Settings,
    ) -> None:
        self.store = store
        self.clock = clock
        self.mattermost = mattermost
        self._cache: dict[str, tuple[int, Identity | None]] = {}
        self.apply_settings(settings)

    def apply_settings(self, settings: Settings) -> None:
        """Take a new cache lifetime."""
        self.ttl_ms = int(settings.mattermost_signin_cache_seconds * 1000)

    async def authenticate(self, token: str) -> Identity | None:
        """The token's user: a live local personal access token first, then Mattermost.

        Raises AppError (502) only when Mattermost cannot be asked; a refused token is None,
        as is one that is not token-shaped (not looked up nor sent anywhere).
        """
        if not is_token_shaped(token):
            return None
        now = self.clock.now_ms()
        user_id = await asyncio.to_thread(self.store.tokens.lookup, token, now)
        if user_id is not None:
            return Identity(user_id, "local")
        if self.mattermost is None:
            return None
        key = token_key(token)
        cached = self._cache.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        identity = await self._ask_mattermost(token)
        self._remember(key, identity, self.clock.now_ms())
        return identity

    async def _ask_mattermost(self, token: str) -> Identity | None:
        assert self.mattermost is not None
        try:
            data = await self.mattermost.get("/users/me", token=token)
        except AppError as err:
            if err.status_code in (401, 403):
                return None
            raise
        if not isinstance(data, dict) or not data.get("id"):
            return None
        user = user_from_json(data)
        if user.delete_at:
            return None
        return Identity(user.id, "mattermost", user.username, user.display_name, user.timezone)

    async def mattermost_user(self, user_id: str) -> Identity | None:
        """A Mattermost user by id, looked up with recapd's own token and cached like tokens;
        None when missing or deactivated (a web session signed in with a Mattermost token
        re-checks its user with this, since the session does not keep the token)."""
        if self.mattermost is None:
            return None
        key = "user:" + user_id
        now = self.clock.now_ms()
        cached = self._cache.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        try:
            data = await self.mattermost.get(f"/users/{user_id}")
        except AppError as err:
            if err.status_code not in (400, 403, 404):
                raise
            data = None
        identity = None
        if isinstance(data, dict) and data.get("id") == user_id:
            user = user_from_json(data)
            if not user.delete_at:
                identity = Identity(
                    user.id, "mattermost", user.username, user.display_name, user.timezone
                )
        self._remember(key, identity, self.clock.now_ms())
        return identity

    def _remember(self, key: str, identity: Identity | None, now: int) -> None:
        if self.ttl_ms <= 0:
            return
        if len(self._cache) >= MAX_CACHED_TOKENS:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            while len(self._cache) >= MAX_CACHED_TOKENS:  # all live: drop the oldest
                del self._cache[next(iter(self._cache))]
        self._cache[key] = (now + self.ttl_ms, identity)

    def forget(self, token: str) -> None:
        """Drop the cached answer for a token (e.g. after signing out)."""
        self._cache.pop(token_key(token), None)
