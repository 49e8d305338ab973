"""The HTTP client for Mattermost's REST API v4.

Every request carries `Authorization: Bearer <token>`; no cookie is ever kept (Mattermost
prefers its MMAUTHTOKEN cookie over the header and then demands a CSRF header, so a client that
kept the cookie it is sent after creating a post gets 401 on every later POST). A 429 is
retried after its Retry-After; idempotent calls are retried on 502-504 (after their
Retry-After, if any) and transport errors with exponential backoff; a pause asked for beyond
MAX_RETRY_AFTER_S is not waited for. Every call has a timeout. Time is injected (clock and
sleep).
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import math
import random
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from recapd.clock import Clock, SystemClock
from recapd.model.app_error import AppError
from recapd.retry_after import retry_after_seconds

SleepFn = Callable[[float], Awaitable[None]]

# Statuses after which a request that changes nothing may be sent again.
RETRY_STATUSES = frozenset({502, 503, 504})
# Mattermost's post size limit in runes since 5.0 (model.PostMessageMaxRunesV2).
DEFAULT_MAX_POST_SIZE = 16_383
# Below this a "limit" is surely a misreading; recaps would turn into hundreds of posts.
MIN_MAX_POST_SIZE = 200
# A server asking for a longer pause than this is treated as unavailable, not waited for.
MAX_RETRY_AFTER_S = 120.0
# An X-RateLimit-Reset this large (2001-09-09 as Unix seconds) is a time, not a delay.
EPOCH_RESET_MIN_S = 1e9


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """A cookie policy that accepts nothing and sends nothing."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False


def cookie_free_jar() -> http.cookiejar.CookieJar:
    """A cookie jar that drops every cookie it is offered."""
    return http.cookiejar.CookieJar(policy=_NoCookies())


@dataclass(frozen=True)
class ClientOptions:
    """Timeouts and retry limits."""

    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0


class MattermostClient:
    """JSON calls to one Mattermost server with one token (a bot, an admin or a user)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        options: ClientOptions | None = None,
        clock: Clock | None = None,
        sleep: SleepFn | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.options = options or ClientOptions()
        self._clock = clock or SystemClock()
        self._sleep = sleep or asyncio.sleep
        self._transport = transport
        self._rng = rng or random.Random()
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"MattermostClient({self.base_url!r}, token=***)"

    def _http(self) -> httpx.AsyncClient:
        # A connection pool belongs to one event loop; the CLI may run several in turn.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(
                base_url=self.base_url + "/api/v4",
                headers={
                    "Authorization": f"Bearer {self._token}",
                    "Accept": "application/json",
                    "X-Requested-With": "XMLHttpRequest",
                },
                cookies=cookie_free_jar(),
                timeout=httpx.Timeout(
                    self.options.timeout_s, connect=self.options.connect_timeout_s
                ),
                follow_redirects=False,
                transport=self._transport,
            )
            self._client_loop = loop
        return self._client

    @property
    def cookies(self) -> httpx.Cookies:
        """The cookies the client holds (always none; tests check it)."""
        return self._client.cookies if self._client is not None else httpx.Cookies()

    async def aclose(self) -> None:
        """Close the connection pool of the current event loop."""
        if self._client is not None and self._client_loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None
        self._client_loop = None

    # -- calls ---------------------------------------------------------------------------------

    async def get(
        self, path: str, params: Mapping[str, Any] | None = None, *, token: str | None = None
    ) -> Any:
        """GET `path` (relative to /api/v4) and return the decoded JSON; `token` replaces the
        client's own for this call (a user's token checked at sign-in)."""
        return await self.request("GET", path, params=params, token=token)

    async def post(
        self,
        path: str,
        body: Any,
        *,
        params: Mapping[str, Any] | None = None,
        idempotent: bool = False,
    ) -> Any:
        """POST JSON; `idempotent` for lookups by POST (ids) and deduplicated creates."""
        return await self.request("POST", path, params=params, json=body, idempotent=idempotent)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        token: str | None = None,
    ) -> Any:
        """One call with the retry rules; a failure is an AppError naming the endpoint."""
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE")
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        attempt = 0
        while True:
            try:
                resp = await self._http().request(
                    method, path, params=query, json=json, headers=headers
                )
            except httpx.TimeoutException as exc:
                if idempotent and attempt < self.options.max_retries:
                    attempt += 1
                    await self._sleep(self._backoff_s(attempt))
                    continue
                raise _unreachable(method, path, f"timed out: {exc!r}") from exc
            except httpx.TransportError as exc:
                if idempotent and attempt < self.options.max_retries:
                    attempt += 1
                    await self._sleep(self._backoff_s(attempt))
                    continue
                raise _unreachable(method, path, repr(exc)) from exc
            if resp.status_code == 429 and attempt < self.options.max_retries:
                # The server did nothing with a rate-limited request: any method may retry.
                wait = self._retry_after_s(resp)
                if wait is not None and wait <= MAX_RETRY_AFTER_S:
                    attempt += 1
                    await self._sleep(wait)
                    continue
            if (
                resp.status_code in RETRY_STATUSES
                and idempotent
                and attempt < self.options.max_retries
            ):
                asked = self._retry_after_s(resp)
                # A server down for longer than recapd waits is unavailable now (as for 429).
                if asked is None or asked <= MAX_RETRY_AFTER_S:
                    attempt += 1
                    await self._sleep(asked or self._backoff_s(attempt))
                    continue
            return _decode(method, path, resp)

    def _backoff_s(self, attempt: int) -> float:
        """Equal jitter: half fixed, half random, so clients do not retry in lockstep."""
        exp = min(self.options.backoff_max_s, self.options.backoff_base_s * 2.0 ** (attempt - 1))
        return exp / 2 + self._rng.random() * exp / 2

    def _retry_after_s(self, resp: httpx.Response) -> float | None:
        """Seconds to wait from Retry-After (seconds or an HTTP date) or X-RateLimit-Reset."""
        asked = retry_after_seconds(resp.headers.get("Retry-After"), self._clock.now_ms() / 1000)
        if asked is not None:
            return asked
        # Mattermost's own rate limiter sends X-RateLimit-Reset: seconds until the next token;
        # other limiters send the time of the reset (Unix seconds).
        fallback = 1.0 if resp.status_code == 429 else None
        try:
            reset = float(resp.headers.get("X-RateLimit-Reset", "").strip())
        except ValueError:
            return fallback
        if not math.isfinite(reset):
            return fallback
        now_s = self._clock.now_ms() / 1000
        if reset > now_s or reset >= EPOCH_RESET_MIN_S:
            reset -= now_s
        return max(0.0, reset)


def parse_max_post_size(config: Mapping[str, Any]) -> int:
    """MaxPostSize from `GET /config/client` (a string), or the default when absent or odd."""
    try:
        value = int(str(config.get("MaxPostSize", "")).strip())
    except ValueError:
        return DEFAULT_MAX_POST_SIZE
    return value if value >= MIN_MAX_POST_SIZE else DEFAULT_MAX_POST_SIZE


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unreachable(method: str, path: str, detail: str) -> AppError:
    return AppError(
        "chat.mattermost.unreachable.app_error",
        "the Mattermost server could not be reached",
        detailed_error=f"{method} /api/v4{path}: {detail}",
        status_code=502,
    )


def _decode(method: str, path: str, resp: httpx.Response) -> Any:
    if resp.is_success:
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise AppError(
                "chat.mattermost.bad_response.app_error",
                "the Mattermost server answered with something that is not JSON",
                detailed_error=f"{method} /api/v4{path}: {resp.text[:200]!r}",
                status_code=502,
            ) from exc
    raise error_from_response(method, path, resp)


def error_from_response(method: str, path: str, resp: httpx.Response) -> AppError:
    """An AppError for a failed call: the server's error id and message in detailed_error.

    401, 403 and 404 keep their status (a missing channel is a 404 to recapd too); anything
    else from the server is a 502, since recapd's caller did nothing wrong.
    """
    server_id = server_message = ""
    try:
        body = resp.json()
        if isinstance(body, dict):
            server_id = str(body.get("id", ""))
            server_message = str(body.get("message", ""))
    except ValueError:
        server_message = resp.text[:200]  # a 429 from the rate limiter is plain text
    status = resp.status_code
    detail = f"{method} /api/v4{path} -> {status} {server_id} {server_message}".strip()
    if status == 401:
        return AppError(
            "chat.mattermost.unauthorized.app_error",
            "the Mattermost token was refused (expired, revoked or wrong)",
            detailed_error=detail,
            status_code=401,
        )
    if status == 403:
        return AppError(
            "chat.mattermost.forbidden.app_error",
            "the Mattermost token may not do this",
            detailed_error=detail,
            status_code=403,
        )
    if status == 404:
        return AppError(
            "chat.mattermost.not_found.app_error",
            "not found on the Mattermost server",
            detailed_error=detail,
            status_code=404,
        )
    if status == 429:
        return AppError(
            "chat.mattermost.rate_limited.app_error",
            "the Mattermost server is rate limiting recapd; try again later",
            detailed_error=detail,
            status_code=503,
        )
    if status == 400 or status == 413:
        return AppError(
            "chat.mattermost.bad_request.app_error",
            "the Mattermost server refused the request",
            detailed_error=detail,
            status_code=502,
        )
    return AppError(
        "chat.mattermost.server_error.app_error",
        "the Mattermost server failed",
        detailed_error=detail,
        status_code=502,
    )
