"""LocalChatSource: the ChatSource protocol over the workspace tables, on both engines."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from recapd.chat.local import LocalChatSource
from recapd.chat.source import ChatSource
from recapd.model.app_error import AppError
from recapd.model.chat import Post, Reaction
from recapd.model.ids import new_id
from recapd.store.store import Store
from tests.test_workspace_store import T0, Seed, post, seed

R = TypeVar("R")
SITE = "https://chat.example.com/"


def run(coro: Coroutine[Any, Any, R]) -> R:
    return asyncio.run(coro)


async def collect(
    src: ChatSource, channel_id: str, since: int, until: int, size: int
) -> list[Post]:
    return [p async for p in src.iter_posts(channel_id, since, until, page_size=size)]


@pytest.fixture
def seeded(store: Store) -> tuple[ChatSource, Seed]:
    # Typed as the protocol: mypy checks that LocalChatSource implements ChatSource.
    src: ChatSource = LocalChatSource(store, SITE)
    return src, seed(store.workspace)


def test_users_teams_and_channels(seeded: tuple[ChatSource, Seed]) -> None:
    src, s = seeded
    assert run(src.get_user(s.alice.id)) == s.alice
    assert run(src.get_users([s.alice.id, s.bob.id, new_id()])) == {
        s.alice.id: s.alice,
        s.bob.id: s.bob,
    }
    assert run(src.get_team(s.team.id)).name == "acme"
    assert run(src.get_channel(s.town.id)).display_name == "Town Square"
    for call in (src.get_user, src.get_team, src.get_channel):
        with pytest.raises(AppError) as err:
            run(call(new_id()))
        assert err.value.status_code == 404
    assert {c.id for c in run(src.channels_of_user(s.alice.id))} == {s.town.id, s.dm.id}


def test_read_permission_and_last_viewed(seeded: tuple[ChatSource, Seed]) -> None:
    src, s = seeded
    assert run(src.can_read(s.alice.id, s.town.id))
    assert not run(src.can_read(s.alice.id, s.attic.id))  # member, but archived
    assert not run(src.can_read(s.carol.id, s.town.id))  # not a member
    assert not run(src.can_read(s.alice.id, new_id()))
    assert run(src.last_viewed_at(s.alice.id, s.town.id)) == T0
    assert run(src.last_viewed_at(s.carol.id, s.town.id)) == 0


def test_unread_channels(store: Store, seeded: tuple[ChatSource, Seed]) -> None:
    src, s = seeded
    assert run(src.unread_channels(s.alice.id)) == []
    store.workspace.upsert_posts([post(s.town, s.bob, T0 + 1)])
    assert [c.id for c in run(src.unread_channels(s.alice.id))] == [s.town.id]


def test_iter_posts_pages_through_the_window(store: Store, seeded: tuple[ChatSource, Seed]) -> None:
    src, s = seeded
    posts = [post(s.town, s.bob, T0 + 10 * (i // 3), f"m{i}") for i in range(450)]
    posts += [
        post(s.town, s.bob, T0 + 5, "joined", type="system_join_channel"),
        post(s.town, s.bob, T0 + 6, "gone", delete_at=T0 + 7),
    ]
    posts[0].reactions = [Reaction(s.alice.id, "eyes", T0 + 1)]
    store.workspace.upsert_posts(posts)
    got = run(collect(src, s.town.id, T0, T0 + 1500, 100))
    expected = sorted(
        (p for p in posts[:450] if p.create_at < T0 + 1500), key=lambda p: (p.create_at, p.id)
    )
    assert [p.id for p in got] == [p.id for p in expected]
    assert len(got) == 450
    assert next(p for p in got if p.id == posts[0].id).reactions[0].emoji_name == "eyes"
    # A window that ends exactly on a page boundary ends without an extra empty page.
    assert len(run(collect(src, s.town.id, T0, T0 + 1000, 100))) == 300
    assert run(collect(src, s.dm.id, T0, T0 + 1500, 100)) == []

    latest = run(src.latest_posts(s.town.id, 4))
    assert [p.id for p in latest] == [p.id for p in expected[-4:]]
    assert set(run(src.get_posts([posts[0].id, posts[-1].id, new_id()]))) == {posts[0].id}


def test_permalinks(store: Store, seeded: tuple[ChatSource, Seed]) -> None:
    src, s = seeded
    in_town = post(s.town, s.bob, T0)
    in_dm = post(s.dm, s.bob, T0)
    assert run(src.permalink(in_town)) == f"https://chat.example.com/acme/pl/{in_town.id}"
    assert run(src.permalink(in_dm)) == f"https://chat.example.com/_redirect/pl/{in_dm.id}"
    with pytest.raises(AppError):
        run(src.permalink(Post(new_id(), new_id(), s.bob.id, "x", T0)))
