"""A loopback Mattermost server: the REST API v4 endpoints recapd uses, with the real JSON
shapes, permissions and traps, for tests.

    with FakeMattermost(clock) as mm:
        alice = mm.add_user("alice")
        team = mm.add_team("acme", members=[alice])
        town = mm.add_channel(team, "town-square", members=[alice])
        mm.add_post(town, alice, "hello", create_at=...)
        client = MattermostClient(mm.url, mm.token_for(alice))

What it reproduces, as the Go server does (server/channels/api4, app, store):
- auth by `Authorization: Bearer|Token`, but the `MMAUTHTOKEN` cookie wins over the header,
  and a cookie-authenticated non-GET request without `X-CSRF-Token` gets 401;
- `Set-Cookie: MMAUTHTOKEN ...` in the answer to `POST /posts` (session extension);
- channel paging: `page`/`per_page` (max 200), `before`/`after` by strict CreateAt comparison,
  the cursor ids of AddCursorIdsForPostList, `posts` holding more than `order` (the roots of
  replies on the page), `since` = updated after, deleted included, at most 1,000;
- deleted posts hidden from paging and from `POST /posts/ids`, edited posts with edit_at;
- permissions: a user's channel list / teams / unread members only for that user or a
  system admin; a channel readable by its members (public ones by team members) and admins;
- `POST /channels/direct` (team-less "D" channel, idempotent), `pending_post_id` dedupe for
  30 s, the post size limit in runes, `GET /config/client` with MaxPostSize as a string;
- scripted failures (`fail(...)`): 429 with Retry-After (plain-text body, as the rate
  limiter), 502/503/504 from a proxy, for the next N matching requests;
- changes between requests (`before_request(...)`): e.g. a post deleted while a client pages;
- custom slash commands: `slash_form(...)` is the form the server POSTs to a command's request
  URL, and its `response_url` (`{SiteURL}/hooks/commands/{id}`, no auth) takes up to 5
  CommandResponse posts within 30 minutes (`command_responses` keeps them);
- a SiteURL with a sub-path (`site_url=".../chat"`): requests are served below it too;
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from recapd.clock import Clock
from recapd.model.ids import new_id

PENDING_POST_TTL_MS = 30_000
SINCE_LIMIT = 1000
PER_PAGE_MAX = 200
PER_PAGE_DEFAULT = 60
COMMAND_WEBHOOK_USES = 5
COMMAND_WEBHOOK_LIFETIME_MS = 30 * 60_000


class ApiError(Exception):
    """A Mattermost AppError answer."""

    def __init__(self, status: int, error_id: str, message: str = "") -> None:
        super().__init__(error_id)
        self.status = status
        self.error_id = error_id
        self.message = message or error_id


@dataclass
class Failure:
    """A scripted failure for the next `times` requests matching method and path regex."""

    method: str
    path: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    body: str
    delay_s: float = 0.0


@dataclass
class Hook:
    """An action run just before the `nth` request matching method and path is answered."""

    method: str
    path: re.Pattern[str]
    nth: int
    action: Callable[[], None]
    seen: int = 0


@dataclass
class Recorded:
    """One request the server answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0
    response: Any = None
    response_headers: dict[str, str] = field(default_factory=dict)


def _title(name: str, display_name: str | None) -> str:
    return name.replace("-", " ").title() if display_name is None else display_name


def _sorted_posts(posts: list[dict[str, Any]], desc: bool = True) -> list[dict[str, Any]]:
    return sorted(posts, key=lambda p: (p["create_at"], p["id"]), reverse=desc)


class FakeMattermost:
    """The server and its state; build the workspace with the add_* methods."""

    def __init__(self, clock: Clock, *, site_url: str = "", max_post_size: int = 16383) -> None:
        self.clock = clock
        self.site_url_override = site_url
        self.max_post_size = max_post_size
        self.version = "11.1.0"
        self.users: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}
        self.teams: dict[str, dict[str, Any]] = {}
        self.team_members: dict[str, set[str]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.members: dict[tuple[str, str], dict[str, Any]] = {}
        self.posts: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, tuple[int, str]] = {}
        self.failures: list[Failure] = []
        self.hooks: list[Hook] = []
        self.requests: list[Recorded] = []
        self.set_cookie_on_post = True
        # hook id -> (created at, CommandResponse bodies posted to it)
        self.command_hooks: dict[str, tuple[int, list[Any]]] = {}
        self._last_api_create = 0
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> FakeMattermost:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Listen on a free loopback port in a background thread."""
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        """The server's base URL (http://127.0.0.1:PORT)."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def site_url(self) -> str:
        """The SiteURL reported by /config/client."""
        return self.site_url_override or self.url

    # -- building the workspace ----------------------------------------------------------------

    def add_user(
        self,
        username: str,
        *,
        admin: bool = False,
        bot: bool = False,
        timezone: str = "UTC",
        automatic_timezone: str = "",
        locale: str = "en",
        first_name: str = "",
        last_name: str = "",
    ) -> str:
        """A user (or bot); returns its id."""
        now = self.clock.now_ms()
        uid = new_id()
        roles = "system_user system_admin" if admin else "system_user"
        with self.lock:
            self.users[uid] = {
                "id": uid,
                "create_at": now,
                "update_at": now,
                "delete_at": 0,
                "username": username,
                "auth_data": "",
                "auth_service": "",
                "email": f"{username}@example.com",
                "nickname": "",
                "first_name": first_name,
                "last_name": last_name,
                "position": "",
                "roles": roles,
                "locale": locale,
                "props": {},
                "last_picture_update": 0,
                "is_bot": bot,
                # The server sends these as strings, whatever the spec says.
                "timezone": {
                    "useAutomaticTimezone": "true" if automatic_timezone else "false",
                    "automaticTimezone": automatic_timezone,
                    "manualTimezone": timezone,
                },
            }
        return uid

    def token_for(self, user_id: str) -> str:
        """A personal access token (or bot token) of the user."""
        token = new_id()
        with self.lock:
            self.tokens[token] = user_id
        return token

    def deactivate(self, user_id: str) -> None:
        """Deactivate a user (delete_at set)."""
        with self.lock:
            now = self.clock.now_ms()
            self.users[user_id].update(delete_at=now, update_at=now)

    def add_team(self, name: str, *, members: list[str] | None = None) -> str:
        """A team (open); returns its id."""
        now = self.clock.now_ms()
        tid = new_id()
        with self.lock:
            self.teams[tid] = {
                "id": tid,
                "create_at": now,
                "update_at": now,
                "delete_at": 0,
                "display_name": name.title(),
                "name": name,
                "description": "",
                "email": "",
                "type": "O",
                "company_name": "",
                "allowed_domains": "",
                "invite_id": new_id(),
                "allow_open_invite": True,
                "scheme_id": None,
                "group_constrained": None,
                "policy_id": None,
                "cloud_limits_archived": False,
            }
            self.team_members[tid] = set(members or [])
        return tid

    def rename_team(self, team_id: str, name: str) -> None:
        """Change a team's URL name."""
        with self.lock:
            self.teams[team_id]["name"] = name

    def add_channel(
        self,
        team_id: str,
        name: str,
        *,
        type: str = "O",
        members: list[str] | None = None,
        display_name: str | None = None,
    ) -> str:
        """A channel of a team with its members; returns its id."""
        now = self.clock.now_ms()
        cid = new_id()
        with self.lock:
            self.channels[cid] = self._channel_json(cid, team_id, name, type, now, display_name)
            for uid in members or []:
                self.join(cid, uid)
        return cid

    def _channel_json(
        self, cid: str, team_id: str, name: str, type: str, now: int, display_name: str | None
    ) -> dict[str, Any]:
        return {
            "id": cid,
            "create_at": now,
            "update_at": now,
            "delete_at": 0,
            "team_id": team_id,
            "type": type,
            "display_name": name.replace("-", " ").title()
            if display_name is None
            else display_name,
            "name": name,
            "header": "",
            "purpose": "",
            "last_post_at": 0,
            "total_msg_count": 0,
            "extra_update_at": 0,
            "creator_id": "",
            "scheme_id": None,
            "props": None,
            "group_constrained": None,
            "shared": None,
            "total_msg_count_root": 0,
            "policy_id": None,
            "last_root_post_at": 0,
        }

    def add_direct(self, user_a: str, user_b: str) -> str:
        """The direct channel of two users (no team), made once; returns its id."""
        with self.lock:
            name = "__".join(sorted((user_a, user_b)))
            for c in self.channels.values():
                if c["name"] == name and c["type"] == "D":
                    return str(c["id"])
            cid = new_id()
            now = self.clock.now_ms()
            self.channels[cid] = self._channel_json(cid, "", name, "D", now, "")
            for uid in {user_a, user_b}:
                self.join(cid, uid)
            return cid

    def join(self, channel_id: str, user_id: str) -> None:
        """Make the user a member of the channel (nothing read yet)."""
        now = self.clock.now_ms()
        with self.lock:
            self.members[(channel_id, user_id)] = {
                "channel_id": channel_id,
                "user_id": user_id,
                "roles": "channel_user",
                "last_viewed_at": 0,
                "msg_count": 0,
                "mention_count": 0,
                "mention_count_root": 0,
                "urgent_mention_count": 0,
                "msg_count_root": 0,
                "notify_props": {
                    "desktop": "default",
                    "email": "default",
                    "ignore_channel_mentions": "default",
                    "mark_unread": "all",
                    "push": "default",
                },
                "last_update_at": now,
                "scheme_guest": False,
                "scheme_user": True,
                "scheme_admin": False,
                "explicit_roles": "",
            }

    def leave(self, channel_id: str, user_id: str) -> None:
        """The user leaves the channel."""
        with self.lock:
            self.members.pop((channel_id, user_id), None)

    def archive(self, channel_id: str) -> None:
        """Archive the channel."""
        with self.lock:
            now = self.clock.now_ms()
            self.channels[channel_id].update(delete_at=now, update_at=now)

    def add_post(
        self,
        channel_id: str,
        user_id: str,
        message: str,
        *,
        create_at: int | None = None,
        root_id: str = "",
        type: str = "",
        props: dict[str, Any] | None = None,
    ) -> str:
        """A post (the author's own channel view moves with it, as when posting)."""
        with self.lock:
            return self._create_post(channel_id, user_id, message, create_at, root_id, type, props)

    def _create_post(
        self,
        channel_id: str,
        user_id: str,
        message: str,
        create_at: int | None,
        root_id: str,
        type: str,
        props: dict[str, Any] | None,
        pending_post_id: str = "",
    ) -> str:
        if create_at is None:
            # Posts made through the API get distinct, growing times, as on a real server.
            at = self._last_api_create = max(self.clock.now_ms(), self._last_api_create + 1)
        else:
            at = create_at
        pid = new_id()
        self.posts[pid] = {
            "id": pid,
            "create_at": at,
            "update_at": at,
            "edit_at": 0,
            "delete_at": 0,
            "is_pinned": False,
            "user_id": user_id,
            "channel_id": channel_id,
            "root_id": root_id,
            "original_id": "",
            "message": message,
            "type": type,
            "props": dict(props or {}),
            "hashtags": "",
            "file_ids": [],
            "pending_post_id": pending_post_id,
            "reply_count": 0,
            "last_reply_at": 0,
            "participants": None,
            "metadata": {},
        }
        channel = self.channels[channel_id]
        channel["last_post_at"] = max(channel["last_post_at"], at)
        if not type.startswith("system_"):
            channel["total_msg_count"] += 1
            if not root_id:
                channel["total_msg_count_root"] += 1
                channel["last_root_post_at"] = max(channel["last_root_post_at"], at)
        if root_id and root_id in self.posts:
            root = self.posts[root_id]
            root["reply_count"] += 1
            root["last_reply_at"] = max(root["last_reply_at"], at)
        member = self.members.get((channel_id, user_id))
        if member is not None:  # posting marks the channel read for the author
            member.update(
                last_viewed_at=max(member["last_viewed_at"], at),
                msg_count=channel["total_msg_count"],
                msg_count_root=channel["total_msg_count_root"],
            )
        return pid

    def edit_post(self, post_id: str, message: str, at: int) -> None:
        """Edit a post's message at time `at`."""
        with self.lock:
            self.posts[post_id].update(message=message, edit_at=at, update_at=at)

    def delete_post(self, post_id: str, at: int) -> None:
        """Soft-delete a post at time `at`."""
        with self.lock:
            self.posts[post_id].update(delete_at=at, update_at=at, message="")

    def view(self, channel_id: str, user_id: str, at: int) -> None:
        """The user reads the channel at `at`: last_viewed_at and the seen counts move."""
        with self.lock:
            channel = self.channels[channel_id]
            self.members[(channel_id, user_id)].update(
                last_viewed_at=at,
                msg_count=channel["total_msg_count"],
                msg_count_root=channel["total_msg_count_root"],
            )

    def fail(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: str = "",
        delay_s: float = 0.0,
    ) -> None:
        """Answer the next `times` matching requests with `status` (plain-text body); status 0
        answers normally after `delay_s` seconds (a slow server, for client timeouts)."""
        default = {429: "limit exceeded\n", 502: "Bad Gateway", 503: "Service Unavailable"}
        with self.lock:
            self.failures.append(
                Failure(
                    method.upper(),
                    re.compile(path_regex),
                    status,
                    times,
                    dict(headers or {}),
                    body or default.get(status, "error"),
                    delay_s,
                )
            )

    def before_request(
        self, method: str, path_regex: str, nth: int, action: Callable[[], None]
    ) -> None:
        """Run `action` (under the server's lock) just before the `nth` (1-based) request
        matching method and path is answered: the server's state changing between calls."""
        with self.lock:
            self.hooks.append(Hook(method.upper(), re.compile(path_regex), nth, action))

    def slash_form(
        self,
        user_id: str,
        channel_id: str,
        text: str,
        *,
        token: str,
        command: str = "/recap",
    ) -> dict[str, str]:
        """The form a custom slash command's request URL receives (app/command.go
        DoCommandRequest), with a fresh response URL."""
        with self.lock:
            channel = self.channels[channel_id]
            team_id = channel["team_id"]
            hook_id = new_id()
            self.command_hooks[hook_id] = (self.clock.now_ms(), [])
            return {
                "channel_id": channel_id,
                "channel_name": channel["name"],
                "command": command,
                "response_url": f"{self.site_url}/hooks/commands/{hook_id}",
                "team_domain": self.teams[team_id]["name"] if team_id else "",
                "team_id": team_id,
                "text": text,
                "token": token,
                "trigger_id": new_id(),
                "user_id": user_id,
                "user_name": self.users[user_id]["username"],
            }

    def command_responses(self, response_url: str) -> list[Any]:
        """The CommandResponse bodies posted to a response URL so far."""
        hook_id = response_url.rstrip("/").rsplit("/", 1)[-1]
        with self.lock:
            return list(self.command_hooks[hook_id][1])

    def use_command_hook(self, hook_id: str, body: Any) -> tuple[int, str]:
        """A post to `/hooks/commands/{id}` (web/webhook.go commandWebhook): "ok", or 400."""
        with self.lock:
            found = self.command_hooks.get(hook_id)
            if found is None:
                return 400, "web.command_webhook.invalid.app_error"
            created, posts = found
            if self.clock.now_ms() - created > COMMAND_WEBHOOK_LIFETIME_MS:
                return 400, "app.command_webhook.handle_command_webhook.expired.app_error"
            if len(posts) >= COMMAND_WEBHOOK_USES:
                return 400, "app.command_webhook.try_use.invalid.app_error"
            if not isinstance(body, dict):
                return 400, "web.command_webhook.parse.app_error"
            posts.append(body)
            return 200, "ok"

    def posts_in(self, channel_id: str) -> list[dict[str, Any]]:
        """The channel's live posts, oldest first."""
        with self.lock:
            live = [
                p
                for p in self.posts.values()
                if p["channel_id"] == channel_id and not p["delete_at"]
            ]
            return _sorted_posts(live, desc=False)

    def calls(self, method: str, path_regex: str) -> list[Recorded]:
        """The recorded requests matching method and path."""
        rx = re.compile(path_regex)
        with self.lock:
            return [r for r in self.requests if r.method == method and rx.fullmatch(r.path)]

    # -- request handling ----------------------------------------------------------------------

    def scripted_failure(self, method: str, path: str) -> Failure | None:
        """The scripted failure for this request, used up by one."""
        with self.lock:
            for f in self.failures:
                if f.times > 0 and f.method == method and f.path.fullmatch(path):
                    f.times -= 1
                    return f
        return None

    def handle(self, req: Recorded, cookies: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """Route one request; returns (status, JSON body, extra headers)."""
        with self.lock:
            for hook in self.hooks:
                if hook.method == req.method and hook.path.fullmatch(req.path):
                    hook.seen += 1
                    if hook.seen == hook.nth:
                        hook.action()
            caller = self._authenticate(req, cookies)
            for method, pattern, name in _ROUTES:
                if method != req.method:
                    continue
                m = pattern.fullmatch(req.path)
                if m is None:
                    continue
                handler = getattr(self, name)
                result: tuple[int, Any, dict[str, str]] = handler(caller, req, **m.groupdict())
                return result
            raise ApiError(404, "api.context.404.app_error", "Sorry, we could not find the page.")

    def _authenticate(self, req: Recorded, cookies: dict[str, str]) -> dict[str, Any] | None:
        # ParseAuthTokenFromRequest: the cookie first, then the header, then the query.
        token = cookies.get("MMAUTHTOKEN", "")
        from_cookie = bool(token)
        if not token:
            auth = req.headers.get("authorization", "")
            scheme, _, value = auth.partition(" ")
            if scheme.lower() in ("bearer", "token"):
                token = value.strip()
        if not token:
            token = req.query.get("access_token", "")
        if not token:
            if req.path == "/api/v4/config/client":
                return None
            raise ApiError(
                401, "api.context.session_expired.app_error", "Invalid or expired session"
            )
        csrf_ok = req.headers.get("x-csrf-token", "") == cookies.get("MMCSRF", "\0")
        if from_cookie and req.method != "GET" and not csrf_ok:
            raise _expired("CSRF check failed: a cookie session needs X-CSRF-Token")
        uid = self.tokens.get(token)
        if uid is None or self.users[uid]["delete_at"]:
            raise ApiError(
                401, "api.context.session_expired.app_error", "Invalid or expired session"
            )
        return self.users[uid]

    # permissions

    def _me(self, caller: dict[str, Any] | None) -> dict[str, Any]:
        if caller is None:
            raise ApiError(401, "api.context.session_expired.app_error")
        return caller

    @staticmethod
    def _is_admin(user: dict[str, Any]) -> bool:
        return "system_admin" in str(user["roles"]).split()

    def _user_id(self, caller: dict[str, Any], user_id: str) -> str:
        return str(caller["id"]) if user_id == "me" else user_id

    def _self_or_admin(self, caller: dict[str, Any], user_id: str) -> str:
        uid = self._user_id(caller, user_id)
        if uid != caller["id"] and not self._is_admin(caller):
            raise ApiError(403, "api.context.permissions.app_error", "You do not have permission")
        return uid

    def _channel(self, channel_id: str) -> dict[str, Any]:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise ApiError(404, "app.channel.get.existing.app_error", "Unable to find the channel")
        return channel

    def _readable_channel(self, caller: dict[str, Any], channel_id: str) -> dict[str, Any]:
        channel = self._channel(channel_id)
        if self._is_admin(caller) or (channel_id, caller["id"]) in self.members:
            return channel
        if channel["type"] == "O" and caller["id"] in self.team_members.get(channel["team_id"], ()):
            return channel
        raise ApiError(403, "api.context.permissions.app_error", "You do not have permission")

    # routes

    def get_user(self, caller: Any, req: Recorded, user_id: str) -> tuple[int, Any, dict[str, str]]:
        me = self._me(caller)
        user = self.users.get(self._user_id(me, user_id))
        if user is None:
            raise ApiError(404, "app.user.missing_account.const", "Unable to find the user")
        return 200, user, {}

    def user_by_name(
        self, caller: Any, req: Recorded, username: str
    ) -> tuple[int, Any, dict[str, str]]:
        self._me(caller)
        for user in self.users.values():
            if user["username"] == username:
                return 200, user, {}
        raise ApiError(404, "app.user.missing_account.const", "Unable to find the user")

    def users_by_ids(self, caller: Any, req: Recorded) -> tuple[int, Any, dict[str, str]]:
        self._me(caller)
        if not isinstance(req.body, list):
            raise ApiError(400, "api.context.invalid_body_param.app_error", "Invalid user_ids")
        return 200, [self.users[i] for i in req.body if i in self.users], {}

    def user_teams(
        self, caller: Any, req: Recorded, user_id: str
    ) -> tuple[int, Any, dict[str, str]]:
        uid = self._self_or_admin(self._me(caller), user_id)
        teams = [t for tid, t in self.teams.items() if uid in self.team_members[tid]]
        return 200, teams, {}

    def get_team(self, caller: Any, req: Recorded, team_id: str) -> tuple[int, Any, dict[str, str]]:
        me = self._me(caller)
        team = self.teams.get(team_id)
        if team is None:
            raise ApiError(404, "app.team.get.find.app_error", "Unable to find the team")
        if me["id"] not in self.team_members[team_id] and not self._is_admin(me):
            raise ApiError(403, "api.context.permissions.app_error", "You do not have permission")
        return 200, team, {}

    def user_channels(
        self, caller: Any, req: Recorded, user_id: str
    ) -> tuple[int, Any, dict[str, str]]:
        uid = self._self_or_admin(self._me(caller), user_id)
        include_deleted = req.query.get("include_deleted") == "true"
        found = [
            self.channels[cid]
            for (cid, member) in self.members
            if member == uid and (include_deleted or not self.channels[cid]["delete_at"])
        ]
        return 200, found, {}

    def user_team_members(
        self, caller: Any, req: Recorded, user_id: str, team_id: str
    ) -> tuple[int, Any, dict[str, str]]:
        uid = self._self_or_admin(self._me(caller), user_id)
        rows = [
            m
            for (cid, member), m in self.members.items()
            if member == uid and self.channels[cid]["team_id"] in (team_id, "")
        ]
        return 200, rows, {}

    def get_channel(
        self, caller: Any, req: Recorded, channel_id: str
    ) -> tuple[int, Any, dict[str, str]]:
        return 200, self._readable_channel(self._me(caller), channel_id), {}

    def channel_member(
        self, caller: Any, req: Recorded, channel_id: str, user_id: str
    ) -> tuple[int, Any, dict[str, str]]:
        me = self._me(caller)
        self._readable_channel(me, channel_id)
        member = self.members.get((channel_id, self._user_id(me, user_id)))
        if member is None:
            raise ApiError(404, "app.channel.get_member.missing.app_error", "No channel member")
        return 200, member, {}

    def channel_members(
        self, caller: Any, req: Recorded, channel_id: str
    ) -> tuple[int, Any, dict[str, str]]:
        self._readable_channel(self._me(caller), channel_id)
        page, per_page = _paging(req)
        rows = [m for (cid, _), m in sorted(self.members.items()) if cid == channel_id]
        return 200, rows[page * per_page : (page + 1) * per_page], {}

    def channel_posts(
        self, caller: Any, req: Recorded, channel_id: str
    ) -> tuple[int, Any, dict[str, str]]:
        me = self._me(caller)
        self._readable_channel(me, channel_id)
        q = req.query
        include_deleted = q.get("include_deleted") == "true"
        if include_deleted and not self._is_admin(me):
            raise ApiError(403, "api.context.permissions.app_error", "You do not have permission")
        mine = [p for p in self.posts.values() if p["channel_id"] == channel_id]
        since = int(q.get("since") or 0)
        if since > 0:
            # GetPostsSince: *updated* after since, deleted ones too, newest 1,000 only.
            changed = _sorted_posts([p for p in mine if p["update_at"] > since])[:SINCE_LIMIT]
            return 200, self._post_list(changed, prev="", next=""), {}
        live = [p for p in mine if include_deleted or not p["delete_at"]]
        page, per_page = _paging(req)
        before, after = q.get("before", ""), q.get("after", "")
        if before or after:
            anchor = self.posts.get(before or after)
            if anchor is None:
                return 200, self._post_list([], prev="", next=""), {}
            if before:
                pool = _sorted_posts([p for p in live if p["create_at"] < anchor["create_at"]])
                chosen = pool[page * per_page : (page + 1) * per_page]
            else:
                pool = _sorted_posts(
                    [p for p in live if p["create_at"] > anchor["create_at"]], desc=False
                )
                chosen = _sorted_posts(pool[page * per_page : (page + 1) * per_page])
        else:
            chosen = _sorted_posts(live)[page * per_page : (page + 1) * per_page]
        # AddCursorIdsForPostList
        prev = next_ = None
        if after and page == 0:
            prev = after
        if after and len(chosen) < per_page:
            next_ = ""
        if before and page == 0:
            next_ = before
        if before and len(chosen) < per_page:
            prev = ""
        if next_ is None:
            newer = [p for p in live if chosen and p["create_at"] > chosen[0]["create_at"]]
            next_ = _sorted_posts(newer, desc=False)[0]["id"] if newer else ""
        if prev is None:
            older = [p for p in live if chosen and p["create_at"] < chosen[-1]["create_at"]]
            prev = _sorted_posts(older)[0]["id"] if older else ""
        return 200, self._post_list(chosen, prev=prev, next=next_), {}

    def _post_list(self, chosen: list[dict[str, Any]], *, prev: str, next: str) -> dict[str, Any]:
        posts = {p["id"]: p for p in chosen}
        for p in chosen:  # the roots of replies come along, beyond `order`
            root = self.posts.get(p["root_id"]) if p["root_id"] else None
            if root is not None and not root["delete_at"]:
                posts.setdefault(root["id"], root)
        return {
            "order": [p["id"] for p in chosen],
            "posts": posts,
            "next_post_id": next,
            "prev_post_id": prev,
            "has_next": bool(next),
            "first_inaccessible_post_time": 0,
        }

    def posts_by_ids(self, caller: Any, req: Recorded) -> tuple[int, Any, dict[str, str]]:
        me = self._me(caller)
        if not isinstance(req.body, list) or len(req.body) > 1000:
            raise ApiError(400, "api.context.invalid_body_param.app_error", "Invalid post_ids")
        found = []
        for pid in req.body:
            p = self.posts.get(pid)
            if p is None or p["delete_at"]:
                continue
            try:
                self._readable_channel(me, p["channel_id"])
            except ApiError:
                continue
            found.append(p)
        if not found:
            raise ApiError(404, "app.post.get.app_error", "Unable to get the post")
        return 200, _sorted_posts(found), {}

    def create_direct(self, caller: Any, req: Recorded) -> tuple[int, Any, dict[str, str]]:
        me = self._me(caller)
        ids = req.body
        if not isinstance(ids, list) or len(ids) != 2 or any(i not in self.users for i in ids):
            raise ApiError(400, "api.context.invalid_body_param.app_error", "Invalid user_ids")
        if me["id"] not in ids and not self._is_admin(me):
            raise ApiError(403, "api.context.permissions.app_error", "You do not have permission")
        cid = self.add_direct(ids[0], ids[1])
        return 201, self.channels[cid], {}

    def create_post(self, caller: Any, req: Recorded) -> tuple[int, Any, dict[str, str]]:
        me = self._me(caller)
        body = req.body if isinstance(req.body, dict) else {}
        channel_id = str(body.get("channel_id", ""))
        channel = self._channel(channel_id)
        if (channel_id, me["id"]) not in self.members and not self._is_admin(me):
            raise ApiError(403, "api.context.permissions.app_error", "You do not have permission")
        message = str(body.get("message", ""))
        if len(message) > self.max_post_size:
            raise ApiError(
                400, "model.post.is_valid.message_length.app_error", "Invalid Message property"
            )
        now = self.clock.now_ms()
        pending = str(body.get("pending_post_id", ""))
        seen = self.pending.get(pending) if pending else None
        if seen is not None and now - seen[0] < PENDING_POST_TTL_MS:
            post = self.posts[seen[1]]  # deduplicateCreatePost: the post already made
        else:
            pid = self._create_post(
                channel["id"],
                me["id"],
                message,
                None,
                str(body.get("root_id", "")),
                "",
                {**dict(body.get("props") or {}), **({"from_bot": "true"} if me["is_bot"] else {})},
                pending,
            )
            if pending:
                self.pending[pending] = (now, pid)
            post = self.posts[pid]
        headers: dict[str, str] = {}
        if self.set_cookie_on_post:
            # ExtendSessionExpiryIfNeeded -> AttachSessionCookies
            token = req.headers.get("authorization", "").partition(" ")[2]
            headers["Set-Cookie"] = f"MMAUTHTOKEN={token}; Path=/; Max-Age=2592000; HttpOnly"
        return 201, post, headers

    def client_config(self, caller: Any, req: Recorded) -> tuple[int, Any, dict[str, str]]:
        config: dict[str, str] = {
            "SiteURL": self.site_url,
            "Version": self.version,
            "BuildNumber": "dev",
            "SiteName": "Mattermost",
        }
        if caller is not None:
            config["MaxPostSize"] = str(self.max_post_size)
        return 200, config, {}


def _expired(message: str) -> ApiError:
    return ApiError(401, "api.context.session_expired.app_error", message)


def _paging(req: Recorded) -> tuple[int, int]:
    try:
        page = max(0, int(req.query.get("page") or 0))
        per_page = int(req.query.get("per_page") or PER_PAGE_DEFAULT)
    except ValueError:
        raise ApiError(400, "api.context.invalid_url_param.app_error", "Invalid paging") from None
    return page, min(PER_PAGE_MAX, max(1, per_page))


_ID = r"[a-z0-9]{26}"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), name)
    for m, p, name in [
        ("POST", r"/api/v4/users/ids", "users_by_ids"),
        ("GET", rf"/api/v4/users/(?P<user_id>me|{_ID})/teams", "user_teams"),
        ("GET", rf"/api/v4/users/(?P<user_id>me|{_ID})/channels", "user_channels"),
        (
            "GET",
            rf"/api/v4/users/(?P<user_id>me|{_ID})/teams/(?P<team_id>{_ID})/channels/members",
            "user_team_members",
        ),
        ("GET", rf"/api/v4/users/(?P<user_id>me|{_ID})", "get_user"),
        ("GET", r"/api/v4/users/username/(?P<username>[a-z0-9._-]+)", "user_by_name"),
        ("GET", rf"/api/v4/teams/(?P<team_id>{_ID})", "get_team"),
        ("POST", r"/api/v4/channels/direct", "create_direct"),
        ("GET", rf"/api/v4/channels/(?P<channel_id>{_ID})", "get_channel"),
        ("GET", rf"/api/v4/channels/(?P<channel_id>{_ID})/posts", "channel_posts"),
        ("GET", rf"/api/v4/channels/(?P<channel_id>{_ID})/members", "channel_members"),
        (
            "GET",
            rf"/api/v4/channels/(?P<channel_id>{_ID})/members/(?P<user_id>me|{_ID})",
            "channel_member",
        ),
        ("POST", r"/api/v4/posts/ids", "posts_by_ids"),
        ("POST", r"/api/v4/posts", "create_post"),
        ("GET", r"/api/v4/config/client", "client_config"),
    ]
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One buffered write per answer and no Nagle delay: otherwise every call waits ~40 ms
    # for a delayed ACK.
    wbufsize = -1
    disable_nagle_algorithm = True
    server_state: FakeMattermost

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        fake = self.server_state
        parts = urlsplit(self.path)
        path = parts.path
        # A server under a sub-path (SiteURL https://host/chat) serves everything below it;
        # the root is served too, as by a proxy that forwards both.
        prefix = urlsplit(fake.site_url).path.rstrip("/")
        if prefix and path.startswith(prefix + "/"):
            path = path[len(prefix) :]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        req = Recorded(
            method=self.command,
            path=path,
            query={k: v[-1] for k, v in parse_qs(parts.query).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        cookies: dict[str, str] = {}
        for chunk in self.headers.get("Cookie", "").split(";"):
            name, sep, value = chunk.strip().partition("=")
            if sep:
                cookies[name] = value
        hook = re.fullmatch(r"/hooks/commands/([a-z0-9]{26})", req.path)
        if hook is not None and req.method == "POST":  # no auth: the URL is the secret
            status, text = fake.use_command_hook(hook.group(1), body)
            self._send(req, status, text.encode(), "text/plain", {})
            return
        failure = fake.scripted_failure(req.method, req.path)
        if failure is not None and failure.delay_s:
            time.sleep(failure.delay_s)  # a slow answer: the client's timeout is real time
        if failure is not None and failure.status:
            self._send(req, failure.status, failure.body.encode(), "text/plain", failure.headers)
            return
        try:
            status, payload, headers = fake.handle(req, cookies)
        except ApiError as err:
            status, headers = err.status, {}
            payload = {
                "id": err.error_id,
                "message": err.message,
                "detailed_error": "",
                "request_id": new_id(),
                "status_code": err.status,
            }
        req.response = json.loads(json.dumps(payload))  # a snapshot, as sent
        self._send(req, status, json.dumps(payload).encode(), "application/json", headers)

    def _send(
        self, req: Recorded, status: int, data: bytes, ctype: str, headers: dict[str, str]
    ) -> None:
        req.status = status
        req.response_headers = dict(headers)
        with self.server_state.lock:
            self.server_state.requests.append(req)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Request-Id", new_id())
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()


@contextmanager
def running(clock: Clock, **kwargs: Any) -> Iterator[FakeMattermost]:
    """A started FakeMattermost, stopped on exit."""
    fake = FakeMattermost(clock, **kwargs)
    with fake:
        yield fake
