"""The REST API in-process (FastAPI TestClient) on both engines: every route's happy path,
authentication, ownership, validation ids, the feature flag, the cooldown, paging, ping and
metrics."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message

from recapd.api.app import create_app
from recapd.api.body_limit import MAX_BODY_BYTES
from recapd.clock import FakeClock
from recapd.model.ids import new_id
from recapd.model.job import JobType
from recapd.runtime import Runtime
from recapd.store import migrate
from recapd.store.store import Store
from tests.test_recaps_app import T0, runtime_for, team_workspace
from tests.workspace import Workspace


@dataclass
class Api:
    rt: Runtime
    ws: Workspace
    client: TestClient
    tokens: dict[str, str]
    clock: FakeClock

    def call(self, method: str, path: str, user: str | None = "alice", **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if user is not None:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        return self.client.request(method, "/api/v4" + path, headers=headers, **kw)

    def channel(self, name: str) -> str:
        return self.ws.channels[name].id


def make_api(store: Store, **overrides: Any) -> Api:
    ws = team_workspace(store)
    clock = FakeClock(T0 + 3_600_000)
    rt = runtime_for(store, clock, **overrides)
    tokens = {
        name: store.tokens.create(ws.users[name].id, "test", clock.now_ms())[0]
        for name in ("alice", "bob")
    }
    return Api(rt, ws, TestClient(create_app(rt)), tokens, clock)


async def _no_progress(_: int) -> None:
    return None


def schedule_body(api: Api, **fields: Any) -> dict[str, Any]:
    return {
        "title": "Morning",
        "days_of_week": 62,
        "time_of_day": "09:00",
        "timezone": "America/New_York",
        "time_period": "last_24h",
        "channel_mode": "specific",
        "channel_ids": [api.channel("dev")],
        "agent_id": "extractive",
    } | fields


def recap_body(api: Api, *channels: str, **fields: Any) -> dict[str, Any]:
    """A POST /recaps body as the original's client sends it: title, channels, agent."""
    ids = [api.channel(c) for c in channels or ("dev",)]
    return {"title": "Dev", "channel_ids": ids, "agent_id": "extractive"} | fields


def assert_error(resp: Any, status: int, error_id: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert set(body) == {"id", "message", "detailed_error", "request_id", "status_code"}
    assert (body["id"], body["status_code"]) == (error_id, status)
    assert body["request_id"] == resp.headers["X-Request-Id"]
    return body


def test_recap_routes_happy_path(store: Store) -> None:
    api = make_api(store)
    resp = api.call("POST", "/recaps", json=recap_body(api))
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["status"] == "pending" and created["title"] == "Dev"
    # No channels yet: left out, as the original's omitempty does.
    assert created["user_id"] == api.ws.users["alice"].id and "channels" not in created
    for key in ("create_at", "update_at", "delete_at", "read_at", "viewed_at", "bot_id"):
        assert key in created
    rid = created["id"]
    asyncio.run(api.rt.recaps.process_recap(rid, _no_progress))

    got = api.call("GET", f"/recaps/{rid}").json()
    assert got["status"] == "completed" and got["total_message_count"] > 0
    (channel,) = got["channels"]
    assert channel["channel_id"] == api.channel("dev") and channel["recap_id"] == rid
    assert channel["highlights"] and all(isinstance(h, str) for h in channel["highlights"])
    assert channel["highlights"] == [h["text"] for h in channel["highlight_items"]]
    assert set(channel["highlight_items"][0]) == {"text", "post_ids"}
    assert set(channel) >= {"action_items", "source_post_ids", "status", "error", "create_at"}

    listed = api.call("GET", "/recaps").json()
    assert [r["id"] for r in listed] == [rid] and "channels" not in listed[0]
    status = api.call("GET", "/recaps/limit_status").json()
    assert status["daily"]["used"] == 1 and status["effective_limits"]["max_recaps_per_day"] == 10
    assert api.call("POST", "/recaps/mark_viewed").json() == {"recap_ids": [rid]}
    read = api.call("POST", f"/recaps/{rid}/read").json()
    assert read["read_at"] == api.clock.now_ms() and read["viewed_at"] > 0

    regen = api.call("POST", f"/recaps/{rid}/regenerate")
    assert regen.status_code == 200 and regen.json()["status"] == "pending"
    assert_error(
        api.call("POST", f"/recaps/{rid}/regenerate"),
        409,
        "app.recap.regenerate.in_progress.app_error",
    )
    assert api.call("DELETE", f"/recaps/{rid}").json() == {"status": "OK"}
    assert api.call("GET", "/recaps").json() == []


def test_scheduled_recap_routes_happy_path(store: Store) -> None:
    api = make_api(store)
    resp = api.call("POST", "/scheduled_recaps", json=schedule_body(api))
    assert resp.status_code == 201, resp.text
    sr = resp.json()
    assert sr["enabled"] is True and sr["next_run_at"] > api.clock.now_ms()
    sid = sr["id"]
    assert api.call("GET", f"/scheduled_recaps/{sid}").json() == sr
    assert [s["id"] for s in api.call("GET", "/scheduled_recaps").json()] == [sid]

    # A whole object sent back is fine: the server's fields (update_at too) are ignored.
    updated = api.call("PUT", f"/scheduled_recaps/{sid}", json={**sr, "time_of_day": "18:30"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["time_of_day"] == "18:30"
    old = api.call("PUT", f"/scheduled_recaps/{sid}", json={**sr, "update_at": 1})
    assert old.status_code == 200 and old.json()["time_of_day"] == "09:00"

    assert api.call("POST", f"/scheduled_recaps/{sid}/pause").json()["enabled"] is False
    assert api.call("POST", f"/scheduled_recaps/{sid}/resume").json()["enabled"] is True
    run = api.call("POST", f"/scheduled_recaps/{sid}/run_now").json()
    assert run["status"] == "OK" and run["job_id"]
    job = api.rt.store.jobs.get(run["job_id"])
    assert job.data["scheduled_recap_id"] == sid and job.data["run_now"] is True

    assert api.call("DELETE", f"/scheduled_recaps/{sid}").json() == {"status": "OK"}
    assert_error(
        api.call("GET", f"/scheduled_recaps/{sid}"),
        404,
        "app.scheduled_recap.get.app_error",
    )


def test_without_or_with_a_bad_token_is_401(store: Store) -> None:
    api = make_api(store)
    expired = "api.context.session_expired.app_error"
    assert_error(api.call("GET", "/recaps", user=None), 401, expired)
    bad = {"Authorization": "Bearer not-a-token"}
    assert_error(api.call("GET", "/recaps", user=None, headers=bad), 401, expired)
    basic = {"Authorization": "Basic " + api.tokens["alice"]}
    assert_error(api.call("GET", "/scheduled_recaps", user=None, headers=basic), 401, expired)
    assert_error(api.call("POST", "/scheduled_recaps/x/pause", user=None), 401, expired)


def test_someone_elses_objects_answer_like_missing_ones(store: Store) -> None:
    api = make_api(store)
    rid = api.call("POST", "/recaps", json=recap_body(api)).json()["id"]
    sid = api.call("POST", "/scheduled_recaps", json=schedule_body(api)).json()["id"]
    missing = new_id()
    for method, path in [
        ("GET", "/recaps/{}"),
        ("POST", "/recaps/{}/read"),
        ("POST", "/recaps/{}/regenerate"),
        ("DELETE", "/recaps/{}"),
    ]:
        theirs = api.call(method, path.format(rid), user="bob")
        absent = api.call(method, path.format(missing), user="bob")
        assert theirs.status_code == absent.status_code == 404
        assert theirs.json()["id"] == absent.json()["id"]
    for method, path in [
        ("GET", "/scheduled_recaps/{}"),
        ("PUT", "/scheduled_recaps/{}"),
        ("DELETE", "/scheduled_recaps/{}"),
        ("POST", "/scheduled_recaps/{}/pause"),
        ("POST", "/scheduled_recaps/{}/resume"),
        ("POST", "/scheduled_recaps/{}/run_now"),
    ]:
        kw: dict[str, Any] = {"json": {"title": "x"}} if method == "PUT" else {}
        theirs = api.call(method, path.format(sid), user="bob", **kw)
        absent = api.call(method, path.format(missing), user="bob", **kw)
        assert theirs.status_code == absent.status_code == 404
        assert theirs.json()["id"] == absent.json()["id"]
    assert api.call("GET", "/recaps", user="bob").json() == []
    assert api.call("GET", "/scheduled_recaps", user="bob").json() == []
    # Nothing of alice's changed.
    assert api.call("GET", f"/recaps/{rid}").json()["delete_at"] == 0
    assert api.call("GET", f"/scheduled_recaps/{sid}").json()["title"] == "Morning"


def test_validation_errors_answer_400_with_their_ids(store: Store) -> None:
    api = make_api(store)
    assert_error(
        api.call("POST", "/scheduled_recaps", json=schedule_body(api, time_of_day="25:00")),
        400,
        "model.scheduled_recap.is_valid.time_of_day.app_error",
    )
    invalid_body = "api.context.invalid_body_param.app_error"
    malformed = api.call(
        "POST",
        "/scheduled_recaps",
        content=b'{"title": ',
        headers={"Content-Type": "application/json"},
    )
    assert_error(malformed, 400, invalid_body)
    assert_error(api.call("POST", "/scheduled_recaps", json=[1, 2]), 400, invalid_body)
    assert_error(
        api.call("POST", "/recaps", content=b"nope", headers={"Content-Type": "application/json"}),
        400,
        invalid_body,
    )
    assert_error(api.call("POST", "/recaps", json={"channel_ids": "dev"}), 400, invalid_body)
    for empty in ("title", "agent_id", "channel_ids"):
        blank: Any = [] if empty == "channel_ids" else ""
        resp = api.call("POST", "/recaps", json=recap_body(api) | {empty: blank})
        assert f"Invalid or missing {empty}" in assert_error(resp, 400, invalid_body)["message"]
    assert_error(api.call("GET", "/recaps?page=-1"), 400, invalid_body)
    assert_error(api.call("GET", "/scheduled_recaps?per_page=abc"), 400, invalid_body)
    assert_error(
        api.call("POST", "/recaps", json=recap_body(api) | {"channel_ids": ["not-an-id"]}),
        400,
        "app.recap.create.channel_ids.app_error",
    )
    assert_error(
        api.call("POST", "/scheduled_recaps", json=schedule_body(api, colour="red")),
        400,
        "app.scheduled_recap.create.unknown_field.app_error",
    )
    sid = api.call("POST", "/scheduled_recaps", json=schedule_body(api)).json()["id"]
    assert_error(
        api.call("PUT", f"/scheduled_recaps/{sid}", json={"timezone": "Mars/Olympus"}),
        400,
        "model.scheduled_recap.is_valid.timezone.app_error",
    )
    assert_error(
        api.call("POST", "/recaps", json=recap_body(api, "hr")),
        403,
        "app.recap.permission_denied",
    )


def test_wrong_types_and_unstorable_text_are_400_not_500(store: Store) -> None:
    api = make_api(store)
    # A null title is a missing one (the original's Go decoder makes it ""): invalid_param.
    assert_error(
        api.call("POST", "/scheduled_recaps", json=schedule_body(api, title=None)),
        400,
        "api.context.invalid_body_param.app_error",
    )
    for field, value in [("title", ["x"]), ("is_recurring", "yes")]:
        assert_error(
            api.call("POST", "/scheduled_recaps", json=schedule_body(api, **{field: value})),
            400,
            f"model.scheduled_recap.is_valid.{field}.app_error",
        )
    sid = api.call("POST", "/scheduled_recaps", json=schedule_body(api)).json()["id"]
    assert_error(
        api.call("PUT", f"/scheduled_recaps/{sid}", json={"title": None}),
        400,
        "model.scheduled_recap.is_valid.title.app_error",
    )
    json_headers = {"Content-Type": "application/json"}
    dev = api.channel("dev")
    for text in ("a\\u0000b", "\\ud800"):
        raw = f'{{"title": "{text}", "channel_ids": ["{dev}"], "agent_id": "a"}}'.encode()
        assert_error(
            api.call("POST", "/recaps", content=raw, headers=json_headers),
            400,
            "api.context.invalid_body_param.app_error",
        )
        assert_error(
            api.call("PUT", f"/scheduled_recaps/{sid}", content=raw, headers=json_headers),
            400,
            "api.context.invalid_body_param.app_error",
        )
    for path in ("/recaps/a%00b", "/scheduled_recaps/a%00b/pause", "/recaps?page=%00"):
        resp = api.call("POST" if path.endswith("pause") else "GET", path)
        assert resp.status_code == 400, resp.text
        assert resp.json()["id"] in (
            "api.context.invalid_url_param.app_error",
            "api.context.invalid_body_param.app_error",
        )


def test_feature_flag_off_is_501(store: Store) -> None:
    api = make_api(store, enable_ai_recaps=False)
    disabled = "api.recap.disabled.app_error"
    assert_error(api.call("GET", "/recaps"), 501, disabled)
    assert_error(
        api.call("POST", "/recaps", json={"channel_ids": [api.channel("dev")]}), 501, disabled
    )
    assert_error(api.call("GET", "/recaps/limit_status"), 501, disabled)
    assert_error(api.call("GET", "/scheduled_recaps"), 501, disabled)
    assert_error(api.call("POST", "/scheduled_recaps", json=schedule_body(api)), 501, disabled)


def test_cooldown_is_429_with_retry_after(store: Store) -> None:
    api = make_api(store, ai_recaps={"cooldown_minutes": 10})
    body = recap_body(api)
    assert api.call("POST", "/recaps", json=body).status_code == 201
    api.clock.advance(4 * 60_000)
    resp = api.call("POST", "/recaps", json=body)
    assert_error(resp, 429, "app.recap.cooldown_active.app_error")
    assert resp.headers["Retry-After"] == "360"
    api.clock.advance(6 * 60_000)
    assert api.call("POST", "/recaps", json=body).status_code == 201


def test_limits_are_400(store: Store) -> None:
    api = make_api(store, ai_recaps={"max_scheduled_recaps": 1, "max_channels_per_recap": 1})
    two = [api.channel("dev"), api.channel("ops")]
    assert_error(
        api.call("POST", "/recaps", json=recap_body(api) | {"channel_ids": two}),
        400,
        "app.recap.max_channels_exceeded.app_error",
    )
    assert api.call("POST", "/scheduled_recaps", json=schedule_body(api)).status_code == 201
    assert_error(
        api.call("POST", "/scheduled_recaps", json=schedule_body(api)),
        400,
        "app.scheduled_recap.limit_reached.app_error",
    )


def test_paging_and_the_per_page_cap(store: Store) -> None:
    api = make_api(store, ai_recaps={"max_scheduled_recaps": 5})
    made = []
    for i in range(3):
        made.append(
            api.call("POST", "/scheduled_recaps", json=schedule_body(api, title=f"s{i}")).json()
        )
        api.clock.advance(1000)
    first = api.call("GET", "/scheduled_recaps?page=0&per_page=2").json()
    second = api.call("GET", "/scheduled_recaps?page=1&per_page=2").json()
    assert [s["title"] for s in first + second] == ["s2", "s1", "s0"]
    assert api.call("GET", "/scheduled_recaps?page=2&per_page=2").json() == []

    asked: list[tuple[int, int]] = []
    real_recaps, real_schedules = api.rt.recaps.list_for_user, api.rt.schedules.list_for_user

    async def recaps_spy(user_id: str, page: int = 0, per_page: int = 60) -> Any:
        asked.append((page, per_page))
        return await real_recaps(user_id, page, per_page)

    async def schedules_spy(user_id: str, page: int = 0, per_page: int = 60) -> Any:
        asked.append((page, per_page))
        return await real_schedules(user_id, page, per_page)

    api.rt.recaps.list_for_user = recaps_spy  # type: ignore[method-assign]
    api.rt.schedules.list_for_user = schedules_spy  # type: ignore[method-assign]
    assert api.call("GET", "/recaps?per_page=5000").status_code == 200
    assert api.call("GET", "/scheduled_recaps?page=3&per_page=201").status_code == 200
    assert api.call("GET", "/recaps").status_code == 200
    assert asked == [(0, 200), (3, 200), (0, 60)]


def test_ping_metrics_request_ids_and_docs(store: Store) -> None:
    api = make_api(store)
    ping = api.client.get("/api/v4/system/ping")
    assert ping.status_code == 200
    body = ping.json()
    assert body["status"] == "OK" and body["database"] == "ok"
    assert body["schema_revision"] == migrate.head_revision(store.db) == body["schema_head"]
    assert (body["jobs"], body["oldest_due_job_waited_seconds"]) == ("ok", 0)
    assert (body["node_runs_jobs"], body["node_is_leader"]) == ([], False)  # not running here
    # A due job nobody claims for five minutes shows as waiting; the node stays healthy.
    api.rt.jobs.create_job(JobType.RECAP, {"recap_id": new_id()})
    api.clock.advance(301_000)
    late = api.client.get("/api/v4/system/ping")
    assert late.status_code == 200
    assert (late.json()["jobs"], late.json()["oldest_due_job_waited_seconds"]) == ("waiting", 301)
    metrics = api.client.get("/metrics")
    assert metrics.status_code == 200
    assert "recapd_scheduled_recaps_due_backlog" in metrics.text
    echoed = api.call("GET", "/recaps", headers={"X-Request-Id": "abc-123"})
    assert echoed.headers["X-Request-Id"] == "abc-123"
    fresh = api.call("GET", "/recaps/" + new_id())
    assert len(fresh.headers["X-Request-Id"]) == 26
    assert fresh.json()["request_id"] == fresh.headers["X-Request-Id"]
    assert api.client.get("/docs").status_code == 200
    paths = api.client.get("/openapi.json").json()["paths"]
    assert "/api/v4/scheduled_recaps/{scheduled_recap_id}/run_now" in paths
    assert_error(api.call("GET", "/nowhere"), 404, "api.context.404.app_error")


def test_an_unexpected_failure_is_500_without_details(store: Store) -> None:
    api = make_api(store)

    async def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internals")

    api.rt.recaps.limit_status = boom  # type: ignore[method-assign]
    client = TestClient(create_app(api.rt), raise_server_exceptions=False)
    resp = client.get(
        "/api/v4/recaps/limit_status", headers={"Authorization": f"Bearer {api.tokens['alice']}"}
    )
    body = assert_error(resp, 500, "api.internal.app_error")
    assert "secret" not in resp.text and body["detailed_error"] == ""


@pytest.mark.parametrize("path", ["/recaps", "/scheduled_recaps"])
def test_lists_start_empty(store: Store, path: str) -> None:
    api = make_api(store)
    assert api.call("GET", path).json() == []


TOO_LARGE = "api.context.request_body_too_large.app_error"


def _asgi_post(
    api: Api, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[str, Any], int]:
    """POST a body in `chunks` straight to the ASGI app, as a server receiving a chunked body
    passes it on (one http.request message per chunk); (status, JSON body, chunks read)."""
    app = create_app(api.rt)
    token = api.tokens["alice"].encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"recapd.test"),
            (b"authorization", b"Bearer " + token),
            (b"transfer-encoding", b"chunked"),
            *headers,
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("recapd.test", 80),
    }
    read = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        if read < len(chunks):
            read += 1
            return {"type": "http.request", "body": chunks[read - 1], "more_body": True}
        if read == len(chunks):
            read += 1
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect: the app must not wait for one
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read


def test_request_bodies_beyond_the_limit_are_413(store: Store) -> None:
    api = make_api(store)
    dev = api.channel("dev")
    before = store.workspace.count_posts(dev)
    big = b'{"channel_id": "' + dev.encode() + b'", "message": "' + b"x" * MAX_BODY_BYTES + b'"}'
    # Said by Content-Length: refused before the body is read.
    declared = api.call("POST", "/posts", content=big, headers={"Content-Type": "application/json"})
    assert "content-length" in {k.lower() for k in declared.request.headers}
    assert_error(declared, 413, TOO_LARGE)

    # Chunked, without Content-Length: counted as it arrives.
    def stream() -> Any:
        step = 1 << 20
        for i in range(0, len(big), step):
            yield big[i : i + step]

    chunked = api.call(
        "POST", "/posts", content=stream(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in {k.lower() for k in chunked.request.headers}
    assert_error(chunked, 413, TOO_LARGE)

    # Many small chunks, as a server hands them on: reading stops at the limit.
    piece = 64 * 1024
    huge = big + b" " * MAX_BODY_BYTES
    chunks = [huge[i : i + piece] for i in range(0, len(huge), piece)]
    ctype = [(b"content-type", b"application/json")]
    status, body, read = _asgi_post(api, "/api/v4/posts", chunks, ctype)
    assert (status, body["id"], body["status_code"]) == (413, TOO_LARGE, 413)
    assert len(body["request_id"]) == 26
    assert read == MAX_BODY_BYTES // piece + 1 < len(chunks)
    assert store.workspace.count_posts(dev) == before

    # Below the limit, a chunked body is handed on whole.
    small = json.dumps({"channel_id": dev, "message": "in pieces"}).encode()
    status, body, _ = _asgi_post(api, "/api/v4/posts", [small[:10], small[10:]], ctype)
    assert (status, body["message"]) == (201, "in pieces")
    assert store.workspace.count_posts(dev) == before + 1
