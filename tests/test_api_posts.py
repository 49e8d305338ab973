"""POST /api/v4/posts on both engines: Mattermost's body and Post JSON, membership, bad ids and
bodies, missing and archived channels, threads, create_at for administrators only."""

from __future__ import annotations

import dataclasses
import json

from recapd.model.ids import new_id
from recapd.store.store import Store
from tests.test_api import assert_error, make_api
from tests.test_recaps_app import T0

INVALID_BODY = "api.context.invalid_body_param.app_error"
POST_FIELDS = {
    "id",
    "create_at",
    "update_at",
    "edit_at",
    "delete_at",
    "is_pinned",
    "user_id",
    "channel_id",
    "root_id",
    "original_id",
    "message",
    "type",
    "props",
    "hashtags",
    "file_ids",
    "pending_post_id",
    "metadata",
}


def test_a_member_posts_and_replies(store: Store) -> None:
    api = make_api(store)
    dev = api.channel("dev")
    alice = api.ws.users["alice"].id
    before = store.workspace.count_posts(dev)
    resp = api.call(
        "POST",
        "/posts?set_online=true",
        json={
            "channel_id": dev,
            "message": "Deploy is done, rolling back is no longer needed.",
            "props": {"source": "ci"},
            "pending_post_id": f"{alice}:123",
            "metadata": {"priority": {"priority": "important"}},
        },
    )
    assert resp.status_code == 201, resp.text
    post = resp.json()
    assert set(post) == POST_FIELDS
    assert post["user_id"] == alice and post["channel_id"] == dev and post["root_id"] == ""
    assert post["create_at"] == post["update_at"] == api.clock.now_ms()
    assert post["props"] == {"source": "ci"} and post["pending_post_id"] == f"{alice}:123"
    assert len(post["id"]) == 26
    stored = store.workspace.get_posts([post["id"]])[post["id"]]
    assert stored.message == "Deploy is done, rolling back is no longer needed."
    assert stored.props == {"source": "ci"}
    assert store.workspace.count_posts(dev) == before + 1
    # As in Mattermost, posting marks the channel read for the author.
    assert store.workspace.get_member(dev, alice).last_viewed_at == api.clock.now_ms()

    api.clock.advance(1000)
    body = {"channel_id": dev, "message": "👍", "root_id": post["id"]}
    reply = api.call("POST", "/posts", user="bob", json=body)
    assert reply.status_code == 201, reply.text
    assert reply.json()["root_id"] == post["id"] and reply.json()["message"] == "👍"
    # The author's read position only moves forward; an integration's post leaves it alone.
    bob = api.ws.users["bob"].id
    seen = store.workspace.get_member(dev, bob).last_viewed_at
    api.clock.advance(1000)
    bot = api.call(
        "POST",
        "/posts",
        user="bob",
        json={"channel_id": dev, "message": "build ok", "props": {"from_bot": "true"}},
    )
    assert bot.status_code == 201, bot.text
    assert store.workspace.get_member(dev, bob).last_viewed_at == seen


def test_the_largest_props_fit_within_the_body_limit(store: Store) -> None:
    # 800,000 characters of props JSON, each 4 bytes in UTF-8: 3.2 MB of body still posts.
    api = make_api(store)
    props = {"big": "\U0001f600" * (800_000 - len('{"big": ""}'))}
    assert len(json.dumps(props, ensure_ascii=False)) == 800_000
    data = json.dumps(
        {"channel_id": api.channel("dev"), "message": "x", "props": props}, ensure_ascii=False
    ).encode()
    assert len(data) > 3_200_000
    resp = api.call("POST", "/posts", content=data, headers={"Content-Type": "application/json"})
    assert resp.status_code == 201, resp.text[:300]
    assert resp.json()["props"] == props


def test_create_at_is_for_administrators_only(store: Store) -> None:
    api = make_api(store)
    dev = api.channel("dev")
    body = {"channel_id": dev, "message": "from the archive", "create_at": T0 - 86_400_000}
    ignored = api.call("POST", "/posts", json=body).json()
    assert ignored["create_at"] == api.clock.now_ms()
    store.tokens.set_roles(api.ws.users["alice"].id, "system_admin")
    honoured = api.call("POST", "/posts", json=body).json()
    assert honoured["create_at"] == honoured["update_at"] == T0 - 86_400_000


def test_not_a_member_and_missing_or_archived_channels(store: Store) -> None:
    api = make_api(store)
    hr = api.channel("hr")
    before = store.workspace.count_posts()
    alice = api.ws.users["alice"].id

    def denied(channel_id: str) -> dict[str, object]:
        resp = api.call("POST", "/posts", json={"channel_id": channel_id, "message": "hi"})
        return assert_error(resp, 403, "api.context.permissions.app_error")

    def archive(name: str) -> None:
        channel = dataclasses.replace(api.ws.channels[name], delete_at=api.clock.now_ms())
        store.workspace.upsert_channels([channel])

    # Not a member, no such channel, archived and not a member: one answer, as in Mattermost,
    # so posting does not tell which channels exist.
    assert not store.workspace.is_member(hr, alice)
    answers = [denied(hr), denied(new_id())]
    archive("hr")
    answers.append(denied(hr))
    assert len({(a["message"], a["status_code"]) for a in answers}) == 1
    assert store.workspace.count_posts() == before
    # A member of an archived channel learns that it is archived.
    ops = api.ws.channels["ops"]
    assert store.workspace.is_member(ops.id, alice)
    archive("ops")
    assert_error(
        api.call("POST", "/posts", json={"channel_id": ops.id, "message": "hello"}),
        400,
        "store.sql_workspace.add_post.channel_archived.app_error",
    )
    assert_error(
        api.call("POST", "/posts", user=None, json={"channel_id": ops.id, "message": "hello"}),
        401,
        "api.context.session_expired.app_error",
    )


def test_bad_ids_and_bodies_are_400(store: Store) -> None:
    api = make_api(store)
    dev = api.channel("dev")
    before = store.workspace.count_posts()

    def post(body: object, error_id: str, status: int = 400) -> None:
        assert_error(api.call("POST", "/posts", json=body), status, error_id)

    post(
        {"channel_id": "dev", "message": "x"},
        "store.sql_workspace.add_post.invalid_channel_id.app_error",
    )
    post(
        {"channel_id": dev, "message": "x", "root_id": "nope"},
        "store.sql_workspace.add_post.invalid_root_id.app_error",
    )
    post(
        {"channel_id": dev, "message": "x", "root_id": new_id()},
        "store.sql_workspace.add_post.root_not_found.app_error",
    )
    ops_post = api.ws.posts[-1]
    assert ops_post.channel_id == api.channel("ops")
    post(
        {"channel_id": dev, "message": "x", "root_id": ops_post.id},
        "store.sql_workspace.add_post.root_other_channel.app_error",
    )
    reply = next(p for p in api.ws.posts if p.root_id)
    post(
        {"channel_id": dev, "message": "x", "root_id": reply.id},
        "store.sql_workspace.add_post.root_is_reply.app_error",
    )
    post(
        {"channel_id": dev, "message": "x" * 16384},
        "store.sql_workspace.add_post.message_length.app_error",
    )
    post(
        {"channel_id": dev, "message": "x", "props": {"big": "y" * 800_000}},
        "model.post.is_valid.props.app_error",
    )
    post(
        {"channel_id": dev, "message": "x", "file_ids": ["abc"]},
        "api.post.create_post.file_ids.app_error",
    )
    for bad in (
        {"message": "no channel"},
        {"channel_id": dev},
        {"channel_id": 7, "message": "x"},
        {"channel_id": dev, "message": None},
        {"channel_id": dev, "message": "x", "props": ["a"]},
        {"channel_id": dev, "message": "x", "create_at": -1},
        {"channel_id": dev, "message": "x", "create_at": "12"},
        {"channel_id": dev, "message": "x", "create_at": 10**30},
        {"channel_id": dev, "message": "x\u0000"},
        {"channel_id": dev, "message": "x", "props": {"k\u0000": 1}},
        [dev, "x"],
        "text",
    ):
        post(bad, INVALID_BODY)
    malformed = api.call(
        "POST", "/posts", content=b'{"channel_id": ', headers={"Content-Type": "application/json"}
    )
    assert_error(malformed, 400, INVALID_BODY)
    assert store.workspace.count_posts() == before
