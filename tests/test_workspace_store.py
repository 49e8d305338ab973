"""WorkspaceStore on SQLite and PostgreSQL: upserts, lookups, paging, unreads, add_post."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from recapd.model.app_error import AppError
from recapd.model.chat import Channel, ChannelMember, ChannelType, Post, Reaction, Team, User
from recapd.model.ids import new_id
from recapd.store.store import Store
from recapd.store.workspace_store import (
    POST_MESSAGE_MAX_RUNES,
    UpsertCounts,
    WorkspaceStore,
    posts_page_query,
)

T0 = 1_790_000_000_000


@dataclass
class Seed:
    """A small workspace: team acme, channels town (live), attic (archived), a DM."""

    team: Team
    town: Channel
    attic: Channel
    dm: Channel
    alice: User
    bob: User
    carol: User


def seed(ws: WorkspaceStore) -> Seed:
    team = Team(new_id(), "acme", "Acme")
    alice, bob, carol = (User(new_id(), n, n.title()) for n in ("alice", "bob", "carol"))
    town = Channel(new_id(), team.id, "town-square", "Town Square")
    attic = Channel(new_id(), team.id, "attic", "Attic", delete_at=T0)
    dm = Channel(new_id(), "", f"{alice.id}__{bob.id}", "", ChannelType.DIRECT)
    ws.upsert_teams([team])
    ws.upsert_users([alice, bob, carol])
    ws.upsert_channels([town, attic, dm])
    ws.upsert_members(
        [
            ChannelMember(town.id, alice.id, last_viewed_at=T0),
            ChannelMember(town.id, bob.id, last_viewed_at=T0),
            ChannelMember(attic.id, alice.id),
            ChannelMember(dm.id, alice.id, last_viewed_at=T0),
            ChannelMember(dm.id, bob.id),
        ]
    )
    return Seed(team, town, attic, dm, alice, bob, carol)


def post(channel: Channel, user: User, create_at: int, message: str = "hi", **kw: object) -> Post:
    p = Post(new_id(), channel.id, user.id, message, create_at)
    for key, value in kw.items():
        setattr(p, key, value)
    return p


def test_upserts_are_idempotent_and_update_changed_rows(store: Store) -> None:
    ws = store.workspace
    users = [User(new_id(), f"user{i}", f"User {i}", create_at=T0) for i in range(3)]
    assert ws.upsert_users(users) == UpsertCounts(3, 0)
    assert ws.upsert_users(users) == UpsertCounts(0, 0)
    users[1].display_name = "Renamed"
    users[1].create_at = T0 + 5  # creation time is never rewritten
    assert ws.upsert_users(users) == UpsertCounts(0, 1)
    got = ws.get_user(users[1].id)
    assert (got.display_name, got.create_at) == ("Renamed", T0)

    team = Team(new_id(), "acme", "Acme")
    assert ws.upsert_teams([team, team]) == UpsertCounts(1, 0)
    team.display_name = "Acme Inc"
    assert ws.upsert_teams([team]) == UpsertCounts(0, 1)
    assert ws.get_team_by_name("acme").display_name == "Acme Inc"

    channel = Channel(new_id(), team.id, "town", "Town", header="h")
    assert ws.upsert_channels([channel]) == UpsertCounts(1, 0)
    assert ws.upsert_channels([channel]) == UpsertCounts(0, 0)
    channel.header = "new header"
    assert ws.upsert_channels([channel]) == UpsertCounts(0, 1)
    assert ws.get_channel_by_name(team.id, "town").header == "new header"


def test_members_last_viewed_at_only_moves_forward(store: Store) -> None:
    ws = store.workspace
    s = seed(ws)
    assert ws.upsert_members([ChannelMember(s.town.id, s.alice.id, 0)]) == UpsertCounts(0, 0)
    assert ws.get_member(s.town.id, s.alice.id).last_viewed_at == T0
    assert ws.upsert_members([ChannelMember(s.town.id, s.alice.id, T0 + 9)]) == UpsertCounts(0, 1)
    assert ws.get_member(s.town.id, s.alice.id).last_viewed_at == T0 + 9
    ws.set_last_viewed_at(s.town.id, s.alice.id, T0 + 1)  # an explicit set may go back
    assert ws.get_member(s.town.id, s.alice.id).last_viewed_at == T0 + 1


def test_post_upsert_takes_newer_versions_only(store: Store) -> None:
    ws = store.workspace
    s = seed(ws)
    p = post(s.town, s.alice, T0 + 10, "first", reactions=[Reaction(s.bob.id, "+1", T0 + 11)])
    posts, reactions = ws.upsert_posts([p])
    assert (posts, reactions) == (UpsertCounts(1, 0), UpsertCounts(1, 0))
    assert ws.upsert_posts([p]) == (UpsertCounts(0, 0), UpsertCounts(0, 0))

    edited = post(s.town, s.alice, T0 + 10, "second", id=p.id, edit_at=T0 + 20)
    edited.reactions = [Reaction(s.bob.id, "+1", T0 + 11), Reaction(s.alice.id, "tada", T0 + 12)]
    assert ws.upsert_posts([edited]) == (UpsertCounts(0, 1), UpsertCounts(1, 0))
    got = ws.get_posts([p.id])[p.id]
    assert (got.message, got.edit_at, got.update_at) == ("second", T0 + 20, T0 + 20)
    assert [(r.user_id, r.emoji_name) for r in got.reactions] == [
        (s.bob.id, "+1"),
        (s.alice.id, "tada"),
    ]

    stale = post(s.town, s.alice, T0 + 10, "stale", id=p.id, edit_at=T0 + 15)
    assert ws.upsert_posts([stale])[0] == UpsertCounts(0, 0)
    assert ws.get_posts([p.id])[p.id].message == "second"

    deleted = post(s.town, s.alice, T0 + 10, "second", id=p.id, edit_at=T0 + 20)
    deleted.delete_at = T0 + 30
    assert ws.upsert_posts([deleted])[0] == UpsertCounts(0, 1)
    assert ws.get_posts([p.id]) == {}
    assert ws.get_posts([p.id], include_deleted=True)[p.id].delete_at == T0 + 30


def test_post_batch_with_duplicates_and_many_rows(store: Store) -> None:
    ws = store.workspace
    s = seed(ws)
    many = [post(s.town, s.alice, T0 + i) for i in range(2500)]
    newer = post(s.town, s.alice, T0, "newer", id=many[0].id, edit_at=T0 + 1)
    # The same id twice in one batch: the newest version wins, and no row is touched twice.
    assert ws.upsert_posts([*many, newer])[0] == UpsertCounts(2500, 0)
    assert ws.get_posts([many[0].id])[many[0].id].message == "newer"
    assert ws.count_posts(s.town.id) == 2500
    assert ws.count_posts() == 2500
    assert ws.count_posts(s.dm.id) == 0


def test_lookups_of_missing_rows_are_404(store: Store) -> None:
    ws = store.workspace
    s = seed(ws)
    missing = new_id()
    calls: list[Callable[[], object]] = [
        lambda: ws.get_user(missing),
        lambda: ws.get_user_by_username("nobody"),
        lambda: ws.get_team(missing),
        lambda: ws.get_team_by_name("nope"),
        lambda: ws.get_channel(missing),
        lambda: ws.get_channel_by_name(s.team.id, "nope"),
        lambda: ws.get_member(s.town.id, s.carol.id),
        lambda: ws.set_last_viewed_at(s.town.id, s.carol.id, T0),
    ]
    for call in calls:
        with pytest.raises(AppError) as err:
            call()
        assert err.value.status_code == 404
        assert err.value.id.startswith("store.sql_workspace.get_")
    assert ws.get_users([s.alice.id, missing]) == {s.alice.id: s.alice}
    assert ws.user_ids_by_username(["bob", "nobody"]) == {"bob": s.bob.id}
    assert ws.get_user_by_username("carol") == s.carol
    assert ws.get_channel(s.dm.id).type == ChannelType.DIRECT
    other = Channel(new_id(), new_id(), "town-square")
    ws.upsert_channels([other])
    assert {c.id for c in ws.find_channels_by_name("town-square")} == {s.town.id, other.id}
    assert ws.find_channels_by_name("nope") == []


def test_membership_and_channels_of_user(store: Store) -> None:
    ws = store.workspace
    s = seed(ws)
    # By name: the DM's name is made of ids, so it may sort either side of town-square.
    assert [c.name for c in ws.channels_of_user(s.alice.id)] == sorted([s.dm.name, "town-square"])
    assert ws.channels_of_user(s.carol.id) == []
    assert ws.is_member(s.attic.id, s.alice.id)
    assert not ws.is_member(s.attic.id, s.alice.id, live_channel=True)
    assert ws.is_member(s.town.id, s.alice.id, live_channel=True)
    assert not ws.is_member(s.town.id, s.carol.id)


def test_posts_page_keyset_over_equal_create_at(store: Store) -> None:
    ws = store.workspace
    s = seed(ws)
    # 300 posts sharing 6 distinct times: only the (create_at, id) cursor can page them.
    everything = [post(s.town, s.alice, T0 + 1000 * (i % 6)) for i in range(300)]
    ws.upsert_posts(everything)
    since, until = T0 + 1000, T0 + 5000  # [since, until): times 1000..4000
    expected = sorted(
        (p for p in everything if since <= p.create_at < until),
        key=lambda p: (p.create_at, p.id),
    )
    seen: list[Post] = []
    after: tuple[int, str] | None = None
    while True:
        page = ws.posts_page(s.town.id, since, until, after, 7)
        seen.extend(page)
        if len(page) < 7:
            break
        after = (page[-1].create_at, page[-1].id)
    assert [p.id for p in seen] == [p.id for p in expected]
    assert len(seen) == 200


def test_posts_page_walks_the_channel_index(store: Store) -> None:
    # A page costs the same however long the channel: it must be one index range, no sort.
    q = posts_page_query(new_id(), T0, T0 + 1000, (T0 + 5, new_id()), 200)
    sql = str(q.compile(store.db.engine, compile_kwargs={"literal_binds": True}))
    with store.db.engine.connect() as conn:
        if store.db.is_postgres:
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = conn.exec_driver_sql("EXPLAIN " + sql).fetchall()
        else:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).fetchall()
    text = " ".join(str(r) for r in plan)
    assert "ix_posts_channel_id_create_at_id" in text, text
    assert "TEMP B-TREE" not in text.upper()
    assert "Sort" not in text


def test_system_and_deleted_posts_are_left_out(store: Store) -> None:
    ws = store.workspace
    s = seed(ws)
    keep = post(s.town, s.bob, T0 + 1, "keep")
    join = post(s.town, s.bob, T0 + 2, "bob joined", type="system_join_channel")
    gone = post(s.town, s.bob, T0 + 3, "oops", delete_at=T0 + 4)
    # LIKE's "_" is a wildcard: a type that is not system_ but looks like it must stay.
    custom = post(s.town, s.bob, T0 + 5, "custom", type="systemXfoo")
    ws.upsert_posts([keep, join, gone, custom])
    page = ws.posts_page(s.town.id, 0, T0 + 100, None, 50)
    assert [p.id for p in page] == [keep.id, custom.id]
    assert [p.id for p in ws.latest_posts(s.town.id, 1)] == [custom.id]
    assert [p.id for p in ws.latest_posts(s.town.id, 10)] == [keep.id, custom.id]
    assert set(ws.get_posts([keep.id, join.id, gone.id])) == {keep.id, join.id}


def test_post_stamps_are_the_window_posts_without_their_text(store: Store) -> None:
    ws = store.workspace
    s = seed(ws)
    ghost = User(new_id(), "ghost")  # never imported: no username, not a bot
    keep = post(s.town, s.bob, T0 + 1, "keep", update_at=T0 + 9, edit_at=T0 + 8)
    keep.reactions = [Reaction(s.alice.id, "+1", T0), Reaction(s.carol.id, "tada", T0)]
    join = post(s.town, s.bob, T0 + 2, "bob joined", type="system_join_channel")
    gone = post(s.town, s.bob, T0 + 3, "oops", delete_at=T0 + 4)
    reply = post(s.town, ghost, T0 + 3, "reply", root_id=keep.id)
    late = post(s.town, s.alice, T0 + 100, "after the window")
    ws.upsert_posts([keep, join, gone, reply, late])
    ws.upsert_users([User(s.carol.id, "carol", is_bot=True)])
    stamps = ws.post_stamps(s.town.id, T0, T0 + 100)
    # The same posts in the same order as the page a full read gives.
    assert [p.id for p in stamps] == [
        p.id for p in ws.posts_page(s.town.id, T0, T0 + 100, None, 50)
    ]
    first, second = stamps
    assert first == (keep.id, T0 + 1, "", T0 + 9, T0 + 8, s.bob.id, "bob", False, 2)
    assert second.root_id == keep.id and second.thread_id == keep.id
    assert (second.username, second.user_is_bot, second.reaction_count) == ("", False, 0)
    by_id = ws.post_stamps_by_id([keep.id, join.id, gone.id])
    assert set(by_id) == {keep.id, join.id} and by_id[keep.id] == first
    ws.upsert_posts([post(s.town, s.carol, T0 + 4, "bot says")])
    assert ws.post_stamps(s.town.id, T0, T0 + 100)[-1].user_is_bot is True


def test_unread_channels(store: Store) -> None:
    ws = store.workspace
    s = seed(ws)
    assert ws.unread_channels(s.alice.id) == []
    # Alice's own post, a system post, a deleted post and an old post do not make unread.
    ws.upsert_posts(
        [
            post(s.town, s.alice, T0 + 5),
            post(s.town, s.bob, T0 + 6, type="system_join_channel"),
            post(s.town, s.bob, T0 + 7, delete_at=T0 + 8),
            post(s.town, s.bob, T0 - 1),
            post(s.attic, s.bob, T0 + 9),  # archived channel
        ]
    )
    assert ws.unread_channels(s.alice.id) == []
    ws.upsert_posts([post(s.town, s.bob, T0 + 10), post(s.dm, s.bob, T0 + 11)])
    by_name = sorted([s.dm, s.town], key=lambda c: c.name)
    assert [c.id for c in ws.unread_channels(s.alice.id)] == [c.id for c in by_name]
    ws.set_last_viewed_at(s.town.id, s.alice.id, T0 + 10)
    assert [c.id for c in ws.unread_channels(s.alice.id)] == [s.dm.id]
    assert ws.unread_channels(s.carol.id) == []


def _add_post_error(ws: WorkspaceStore, p: Post) -> AppError:
    with pytest.raises(AppError) as err:
        ws.add_post(p)
    return err.value


def test_add_post_validates_channel_membership_and_thread(store: Store) -> None:
    ws = store.workspace
    s = seed(ws)
    root = ws.add_post(post(s.town, s.alice, T0 + 1, "root"))
    reply = ws.add_post(post(s.town, s.bob, T0 + 2, "reply", root_id=root.id))
    assert ws.get_posts([reply.id])[reply.id].root_id == root.id
    dm_post = ws.add_post(post(s.dm, s.bob, T0 + 3, reactions=[Reaction(s.alice.id, "wave")]))
    assert ws.get_posts([dm_post.id])[dm_post.id].reactions[0].emoji_name == "wave"

    prefix = "store.sql_workspace.add_post."
    cases = [
        (post(s.town, s.alice, T0, id="short"), "invalid_id", 400),
        (post(s.town, s.alice, T0, root_id="bad root"), "invalid_root_id", 400),
        (post(s.attic, s.alice, T0), "channel_archived", 400),
        (post(s.town, s.alice, T0, root_id=new_id()), "root_not_found", 400),
        (post(s.town, s.alice, T0, root_id=reply.id), "root_is_reply", 400),
        (post(s.town, s.alice, T0, root_id=dm_post.id), "root_other_channel", 400),
        (post(s.town, s.alice, T0, "x" * (POST_MESSAGE_MAX_RUNES + 1)), "message_length", 400),
        (post(s.town, s.alice, T0, id=root.id), "exists", 409),
    ]
    for p, reason, status in cases:
        err = _add_post_error(ws, p)
        assert (err.id, err.status_code) == (f"{prefix}{reason}.app_error", status)
    # A missing channel, one the user is not in and an archived one the user is not in all
    # answer alike (Mattermost's 403), so posting tells nobody which channels exist.
    assert not ws.is_member(s.attic.id, s.carol.id)
    denied = [
        _add_post_error(ws, p)
        for p in (
            post(s.town, s.carol, T0, id=new_id()),
            post(s.attic, s.carol, T0, id=new_id()),
            Post(new_id(), new_id(), s.carol.id, "x", T0),
        )
    ]
    assert {(e.id, e.status_code, e.message) for e in denied} == {
        ("api.context.permissions.app_error", 403, "You do not have the appropriate permissions.")
    }
    assert {e.detailed_error.split("channelId=")[0] for e in denied} == {f"userId={s.carol.id}, "}
    assert ws.count_posts() == 3
