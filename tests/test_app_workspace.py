"""Users and channels found by name, the channel list and membership (app/workspace.py), on
SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from recapd.app.workspace import (
    ARCHIVED,
    CHANNEL_AMBIGUOUS,
    CHANNEL_NOT_FOUND,
    NOT_A_TEAM_CHANNEL,
    TEAM_NOT_FOUND,
    USER_NOT_FOUND,
    add_members,
    find_channel,
    find_user,
    list_channels,
    remove_members,
)
from recapd.model.app_error import AppError
from recapd.model.chat import Channel, ChannelType
from recapd.model.ids import new_id
from recapd.store.store import Store
from tests.workspace import make_workspace


def _error(call: Callable[..., object], *args: object) -> AppError:
    with pytest.raises(AppError) as err:
        call(*args)
    return err.value


def test_users_and_channels_are_found_by_name_and_missing_ones_named(store: Store) -> None:
    acme = make_workspace(store, ["alice", "bob"], {"dev": ["alice"], "ops": ["bob"]})
    other = make_workspace(store, ["carol"], {"dev": ["carol"]}, site="other")
    alice = acme.users["alice"]
    assert find_user(store, "alice") == find_user(store, "@alice") == alice
    assert find_user(store, alice.id) == alice
    err = _error(find_user, store, "nobody")
    assert (err.id, err.message, err.status_code) == (USER_NOT_FOUND, "no user named nobody", 404)

    ops = acme.channels["ops"]
    assert find_channel(store, "ops") == find_channel(store, "#ops") == ops
    assert find_channel(store, "~ops") == find_channel(store, ops.id) == ops
    assert find_channel(store, "other/dev") == other.channels["dev"]
    assert find_channel(store, "acme/dev") == acme.channels["dev"]
    err = _error(find_channel, store, "dev")
    assert (err.id, err.status_code) == (CHANNEL_AMBIGUOUS, 400)
    assert err.message == "2 channels are named dev (teams acme, other); name one as team/dev"
    err = _error(find_channel, store, "nope")
    assert (err.id, err.message) == (CHANNEL_NOT_FOUND, "no channel named nope")
    err = _error(find_channel, store, "acme/nope")
    assert err.message == "no channel named nope in team acme"
    err = _error(find_channel, store, "gone/dev")
    assert (err.id, err.message) == (TEAM_NOT_FOUND, "no team named gone")


def test_channel_list_and_membership(store: Store) -> None:
    ws = make_workspace(store, ["alice", "bob", "carol"], {"dev": ["alice", "bob"], "ops": []})
    dm = Channel(id=new_id(), team_id="", name="a__b", type=ChannelType.DIRECT)
    store.workspace.upsert_channels([dm])
    alice, bob, carol = (ws.users[n] for n in ("alice", "bob", "carol"))
    dev, ops = ws.channels["dev"], ws.channels["ops"]

    listed = list_channels(store)  # team channels only, by name, with their members
    assert [(c.full_name, c.member_count) for c in listed] == [("acme/dev", 2), ("acme/ops", 0)]
    assert [c.full_name for c in list_channels(store, carol.id)] == []

    assert add_members(store, ops, [alice, carol, alice], now_ms=1000) == 2
    assert add_members(store, ops, [alice, bob], now_ms=2000) == 1  # alice was in already
    member = store.workspace.get_member(ops.id, carol.id)
    assert (member.last_viewed_at, member.create_at) == (0, 1000)  # has read nothing yet
    assert [c.full_name for c in list_channels(store, carol.id)] == ["acme/ops"]
    assert [(c.full_name, c.member_count) for c in list_channels(store)][1] == ("acme/ops", 3)

    assert remove_members(store, ops, [carol, carol]) == 1
    assert remove_members(store, dev, [carol]) == 0
    assert not store.workspace.is_member(ops.id, carol.id)

    assert _error(add_members, store, dm, [carol], 0).id == NOT_A_TEAM_CHANNEL
    assert _error(remove_members, store, dm, [alice]).id == NOT_A_TEAM_CHANNEL
    archived = dataclasses.replace(dev, delete_at=5)
    store.workspace.upsert_channels([archived])
    err = _error(add_members, store, archived, [carol], 0)
    assert (err.id, err.message) == (ARCHIVED, "channel dev is archived: nobody can join it")
