"""The loopback Mattermost server answers in the shapes of Mattermost's OpenAPI description
(../shared/reference/mattermost-openapi/), so tests through it say something about the real
server. Skipped when the shared folder is not there."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator

from recapd.chat.mattermost.check import run_check
from recapd.chat.mattermost.client import ClientOptions, MattermostClient
from recapd.chat.mattermost.source import MattermostChatSource
from recapd.clock import FakeClock
from recapd.delivery.mattermost_dm import MattermostDirectMessenger
from recapd.model.app_error import AppError
from tests.fake_mattermost import FakeMattermost, Recorded

T0 = 1_790_000_000_000
MIN = 60_000
HOUR = 60 * MIN

SPEC_DIR = Path(
    os.environ.get(
        "RECAPD_MATTERMOST_OPENAPI",
        Path(__file__).resolve().parents[1].parent / "shared/reference/mattermost-openapi",
    )
)

# Where the description lags the Go server (server/public/model), the wire wins; each entry
# is a JSON-schema patch applied to components.schemas before validating.
SPEC_LAGS: dict[str, dict[str, Any]] = {
    # model.Timezone is a StringMap: "useAutomaticTimezone": "true", not a boolean.
    "Timezone": {"properties": {"useAutomaticTimezone": {"type": "string"}}},
    # Team.PolicyID is a *string: null without a retention policy (the description says so).
    "Team": {"properties": {"policy_id": {"type": ["string", "null"]}}},
}
# Properties the description lists that the server does not send under that name.
NOT_ON_THE_WIRE = {"Post": {"hashtag"}}  # the server's field is "hashtags"
# Shapes whose every described property the fake must send.
COMPLETE_SHAPES = ("Post", "Channel", "ChannelMember", "PostList", "Team")
# Endpoints recapd calls that the bundled description files do not cover.
NOT_IN_THE_FILES = {("GET", "/api/v4/config/client")}


# The C loader when PyYAML has it: the description files are large.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_spec() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    files = sorted((SPEC_DIR / "2023").glob("*.yaml"))
    newer = SPEC_DIR / "v11" / "posts.yaml"
    for path in [*files, *([newer] if newer.exists() else [])]:
        if path.name in ("definitions.yaml", "introduction.yaml"):
            continue
        paths.update(yaml.load(path.read_text(), Loader=_LOADER) or {})
    components = yaml.load((SPEC_DIR / "2023" / "definitions.yaml").read_text(), Loader=_LOADER)[
        "components"
    ]
    for name, patch in SPEC_LAGS.items():
        for prop, schema in patch["properties"].items():
            components["schemas"][name]["properties"][prop] = schema
    return {"paths": paths, "components": components}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not (SPEC_DIR / "2023" / "definitions.yaml").exists():
        pytest.skip(f"Mattermost OpenAPI files not found at {SPEC_DIR}")
    return _load_spec()


def _template_for(spec: dict[str, Any], method: str, path: str) -> str | None:
    """The described path matching `path`, literal segments preferred over parameters."""
    found = []
    for template, ops in spec["paths"].items():
        if method.lower() not in ops:
            continue
        rx = "^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"
        if re.match(rx, path):
            found.append((template.count("{"), template))
    return min(found)[1] if found else None


def _validate(spec: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    doc = {**copy.deepcopy(schema), "components": spec["components"]}
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft4Validator(doc).iter_errors(value)
    ]


def _response_schema(spec: dict[str, Any], template: str, req: Recorded) -> dict[str, Any]:
    op = spec["paths"][template][req.method.lower()]
    answer = op["responses"].get(str(req.status)) or op["responses"].get(req.status)
    assert answer is not None, f"{req.method} {template} has no {req.status} answer described"
    if "$ref" in answer:  # a shared error response
        name = answer["$ref"].rsplit("/", 1)[-1]
        answer = spec["components"]["responses"][name]
    schema: dict[str, Any] = answer["content"]["application/json"]["schema"]
    return schema


@pytest.fixture
def workload() -> Iterator[FakeMattermost]:
    """A server after a run of every call recapd makes, successes and refusals."""
    clock = FakeClock(T0 + 60 * MIN)
    with FakeMattermost(clock, site_url="https://chat.example.com") as mm:
        alice = mm.add_user("alice", automatic_timezone="America/New_York")
        bob = mm.add_user("bob")
        admin = mm.add_user("root", admin=True)
        bot = mm.add_user("recap-bot", bot=True)
        team = mm.add_team("acme", members=[alice, bob, bot])
        dev = mm.add_channel(team, "dev", members=[alice, bob, bot, admin])
        dm = mm.add_direct(alice, bob)
        root = mm.add_post(dev, bob, "root", create_at=T0)
        for i in range(5):
            mm.add_post(dev, alice, f"reply {i}", create_at=T0 + (i + 1) * MIN, root_id=root)
        gone = mm.add_post(dev, bob, "gone", create_at=T0 + 10 * MIN)
        mm.delete_post(gone, T0 + 11 * MIN)
        mm.add_post(dm, bob, "psst", create_at=T0 + 12 * MIN)

        async def calls() -> None:
            for token in (mm.token_for(admin), mm.token_for(bot)):
                client = MattermostClient(
                    mm.url, token, options=ClientOptions(timeout_s=5), clock=clock
                )
                source = MattermostChatSource(client, clock)
                await source.unread_channels(alice)
                posts = [p async for p in source.iter_posts(dev, T0, T0 + HOUR, page_size=2)]
                await source.get_posts([p.id for p in posts] + [root, gone])
                await source.get_users([alice, bob])
                await source.get_user(bot)
                for p in posts[:1]:
                    await source.permalink(p)
                await source.can_read(alice, dm)
                await source.latest_posts(dev, 3)
                await run_check(client, send_test_to="alice")
                with contextlib.suppress(AppError):
                    await client.get("/channels/" + "x" * 26)
            messenger = MattermostDirectMessenger(
                MattermostClient(mm.url, mm.token_for(bot), clock=clock)
            )
            await messenger.send_direct(alice, "#### Recap\n- one item", "k")

        asyncio.run(calls())
        yield mm


def test_every_answer_matches_the_description(
    spec: dict[str, Any], workload: FakeMattermost
) -> None:
    checked: set[tuple[str, str, int]] = set()
    uncovered: set[tuple[str, str]] = set()
    for req in workload.requests:
        assert req.response is not None
        template = _template_for(spec, req.method, req.path)
        if template is None:
            uncovered.add((req.method, req.path))
            continue
        errors = _validate(spec, _response_schema(spec, template, req), req.response)
        assert not errors, f"{req.method} {req.path} -> {req.status}: {errors[:5]}"
        checked.add((req.method, template, req.status))
    assert uncovered == NOT_IN_THE_FILES
    config = next(r.response for r in workload.requests if r.path == "/api/v4/config/client")
    assert all(isinstance(v, str) for v in config.values())  # a flat map of strings
    # The workload reached every endpoint recapd uses, refusals included.
    templates = {t for _, t, _ in checked}
    assert {
        "/api/v4/users/{user_id}",
        "/api/v4/users/ids",
        "/api/v4/users/username/{username}",
        "/api/v4/users/{user_id}/teams",
        "/api/v4/users/{user_id}/channels",
        "/api/v4/users/{user_id}/teams/{team_id}/channels/members",
        "/api/v4/teams/{team_id}",
        "/api/v4/channels/{channel_id}",
        "/api/v4/channels/{channel_id}/posts",
        "/api/v4/channels/{channel_id}/members",
        "/api/v4/channels/{channel_id}/members/{user_id}",
        "/api/v4/channels/direct",
        "/api/v4/posts/ids",
        "/api/v4/posts",
    } <= templates
    statuses = {s for _, _, s in checked}
    assert {200, 201, 403, 404} <= statuses


def test_the_fake_sends_every_described_property(
    spec: dict[str, Any], workload: FakeMattermost
) -> None:
    seen: dict[str, dict[str, Any]] = {}
    for req in workload.requests:
        body = req.response
        if req.path.endswith("/posts") and req.method == "GET" and req.status == 200:
            seen["PostList"] = body
            seen["Post"] = next(iter(body["posts"].values()))
        elif re.fullmatch(r"/api/v4/channels/[a-z0-9]{26}", req.path) and req.status == 200:
            seen["Channel"] = body
        elif re.fullmatch(r"/api/v4/channels/\w+/members/\w+", req.path) and req.status == 200:
            seen["ChannelMember"] = body
        elif re.fullmatch(r"/api/v4/teams/\w+", req.path) and req.status == 200:
            seen["Team"] = body
    for name in COMPLETE_SHAPES:
        described = set(spec["components"]["schemas"][name]["properties"])
        missing = described - set(seen[name]) - NOT_ON_THE_WIRE.get(name, set())
        assert not missing, f"{name} lacks {sorted(missing)}"
