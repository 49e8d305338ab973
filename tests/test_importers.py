"""Importers on both engines: counts, idempotence, errors that write nothing, real data files."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tracemalloc
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from recapd.chat.importers import (
    ImportFailed,
    ImportReport,
    import_log,
    import_mattermost,
    import_slack,
)
from recapd.chat.importers import common as importers_common
from recapd.model.chat import ChannelType, Post
from recapd.model.ids import is_valid_id, stable_id
from recapd.store.store import Store
from recapd.store.tables import channel_members, channels, posts, reactions, teams, users
from recapd.store.workspace_store import UpsertCounts

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MM_EXPORTS = SHARED / "mattermost-export"
IRC_SHARED = SHARED / "irc"
T = 1_700_000_000_000


def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the workspace tables, sorted: two equal dumps mean nothing changed."""
    out = {}
    with store.db.engine.connect() as c:
        for table in (users, teams, channels, channel_members, posts, reactions):
            rows = c.execute(sa.select(table))
            out[table.name] = sorted(
                tuple(json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for v in r)
                for r in rows
            )
    return out


def counts(report: ImportReport) -> dict[str, tuple[int, int]]:
    return {
        k: (c.created, c.updated)
        for k, c in (
            ("users", report.users),
            ("teams", report.teams),
            ("channels", report.channels),
            ("members", report.members),
            ("posts", report.posts),
            ("reactions", report.reactions),
        )
    }


def created(report: ImportReport) -> dict[str, int]:
    return {k: c for k, (c, _) in counts(report).items()}


def all_posts(store: Store, channel_id: str) -> list[Post]:
    """Every post of a channel (system and deleted too), in (create_at, id) order."""
    with store.db.engine.connect() as c:
        rows = c.execute(
            sa.select(posts.c.id)
            .where(posts.c.channel_id == channel_id)
            .order_by(posts.c.create_at, posts.c.id)
        ).all()
    found = store.workspace.get_posts([r.id for r in rows], include_deleted=True)
    return [found[r.id] for r in rows]


@pytest.fixture
def tiny_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Write every row as soon as it is read, so a failing import has written rows to undo."""
    monkeypatch.setattr(importers_common, "BATCH_SIZE", 1)


def assert_fails_cleanly(store: Store, call: Any, id_: str, message: str) -> ImportFailed:
    """The import raises ImportFailed with this id and message and leaves no trace."""
    before = dump(store)
    with pytest.raises(ImportFailed) as err:
        call()
    assert err.value.id == id_
    assert err.value.message == message
    assert err.value.status_code == 400
    assert dump(store) == before
    return err.value


# ---------------------------------------------------------------------------- Mattermost


def mm_lines() -> list[dict[str, Any]]:
    """A small bulk export of our own: every line type, threads, reactions, DM and GM."""
    return [
        {"type": "version", "version": 1},
        {"type": "team", "team": {"name": "acme", "display_name": "Acme", "type": "O"}},
        {
            "type": "channel",
            "channel": {
                "team": "acme",
                "name": "town-square",
                "display_name": "Town Square",
                "type": "O",
                "header": "Welcome",
            },
        },
        {
            "type": "channel",
            "channel": {"team": "acme", "name": "secret", "display_name": "Secret", "type": "P"},
        },
        {
            "type": "user",
            "user": {
                "username": "alice",
                "email": "alice@example.com",
                "first_name": "Alice",
                "last_name": "Archer",
                "locale": "fr",
                "teams": [
                    {
                        "name": "acme",
                        "channels": [
                            {"name": "town-square", "last_viewed_at": T + 3},
                            {"name": "secret"},
                        ],
                    }
                ],
            },
        },
        {
            "type": "user",
            "user": {
                "username": "bob",
                "nickname": "bobby",
                "teams": [{"name": "acme", "channels": [{"name": "town-square"}]}],
            },
        },
        {"type": "user", "user": {"username": "carol", "delete_at": T}},
        {
            "type": "post",
            "post": {
                "team": "acme",
                "channel": "town-square",
                "user": "alice",
                "message": "Release is Friday",
                "create_at": T + 1,
                "reactions": [{"user": "bob", "emoji_name": "+1", "create_at": T + 2}],
                "replies": [
                    {"user": "bob", "message": "ok", "create_at": T + 3},
                    {"user": "alice", "message": "thanks", "create_at": T + 4, "edit_at": T + 5},
                ],
            },
        },
        {
            "type": "post",
            "post": {
                "team": "acme",
                "channel": "secret",
                "user": "alice",
                "message": "shh",
                "create_at": T + 6,
                "props": {"from_bot": "true"},
            },
        },
        {
            "type": "direct_channel",
            "direct_channel": {"members": ["alice", "bob"], "header": "dm header"},
        },
        {
            "type": "direct_post",
            "direct_post": {
                "channel_members": ["bob", "alice"],
                "user": "bob",
                "message": "hi alice",
                "create_at": T + 7,
            },
        },
        {
            "type": "direct_post",
            "direct_post": {
                "channel_members": ["alice", "bob", "carol"],
                "user": "carol",
                "message": "group hello",
                "create_at": T + 8,
                "replies": [{"user": "alice", "message": "hey", "create_at": T + 9}],
            },
        },
    ]


def write_jsonl(path: Path, lines: Sequence[dict[str, Any] | str]) -> Path:
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


MM_COUNTS = {"users": 3, "teams": 1, "channels": 4, "members": 8, "posts": 7, "reactions": 1}


def test_mattermost_jsonl_imports_everything(store: Store, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "export.jsonl", mm_lines())
    report = import_mattermost(store, path, progress=False)
    assert created(report) == MM_COUNTS
    assert report.records == 12
    ws = store.workspace
    alice = ws.get_user_by_username("alice")
    assert (alice.display_name, alice.email, alice.locale) == (
        "Alice Archer",
        "alice@example.com",
        "fr",
    )
    assert ws.get_user_by_username("bob").display_name == "bobby"
    assert ws.get_user_by_username("carol").delete_at == T
    assert all(is_valid_id(u.id) for u in ws.get_users([alice.id]).values())
    team = ws.get_team_by_name("acme")
    town = ws.get_channel_by_name(team.id, "town-square")
    assert (town.header, town.type) == ("Welcome", "O")
    assert ws.get_channel_by_name(team.id, "secret").type == ChannelType.PRIVATE
    assert ws.get_member(town.id, alice.id).last_viewed_at == T + 3

    root, reply, edited = all_posts(store, town.id)
    assert (root.message, root.root_id, reply.root_id, edited.root_id) == (
        "Release is Friday",
        "",
        root.id,
        root.id,
    )
    assert [(r.emoji_name, r.create_at) for r in root.reactions] == [("+1", T + 2)]
    assert (edited.edit_at, edited.update_at) == (T + 5, T + 5)

    by_type = {c.type: c for c in ws.channels_of_user(alice.id)}
    dm, gm = by_type[ChannelType.DIRECT], by_type[ChannelType.GROUP]
    assert (dm.team_id, dm.header, dm.display_name) == ("", "dm header", "alice, bob")
    assert dm.name == "__".join(sorted([alice.id, ws.get_user_by_username("bob").id]))
    assert len(gm.name) == 40
    assert [p.message for p in all_posts(store, dm.id)] == ["hi alice"]
    gm_root, gm_reply = all_posts(store, gm.id)
    assert gm_reply.root_id == gm_root.id
    # Town square: bob's reply is at alice's last_viewed_at, the later post is her own.
    assert {c.id for c in ws.unread_channels(alice.id)} == {dm.id, gm.id}


def test_mattermost_import_twice_changes_nothing_and_edits_update(
    store: Store, tmp_path: Path
) -> None:
    lines = mm_lines()
    path = write_jsonl(tmp_path / "export.jsonl", lines)
    import_mattermost(store, path, progress=False)
    before = dump(store)
    again = import_mattermost(store, path, progress=False)
    assert not again.changed
    assert dump(store) == before

    lines[7]["post"]["replies"][1].update(message="thanks!", edit_at=T + 50)
    lines[9]["direct_channel"]["header"] = "new header"
    report = import_mattermost(store, write_jsonl(path, lines), progress=False)
    assert counts(report)["posts"] == (0, 1)
    assert counts(report)["channels"] == (0, 1)
    assert sum(c + u for c, u in counts(report).values()) == 2


def test_mattermost_zip_with_root_or_nested_jsonl(store: Store, tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "import.jsonl", mm_lines())
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(nested, "w") as zf:
        zf.write(jsonl, "my-export/import.jsonl")
        zf.writestr("my-export/data/decoy.jsonl", '{"invalid": true}\n')
    assert created(import_mattermost(store, nested, progress=False)) == MM_COUNTS
    flat = tmp_path / "flat.zip"
    with zipfile.ZipFile(flat, "w") as zf:
        zf.write(jsonl, "import.jsonl")
    assert not import_mattermost(store, flat, progress=False).changed

    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("data/other.jsonl", "{}\n")
    assert_fails_cleanly(
        store,
        lambda: import_mattermost(store, empty, progress=False),
        "import.mattermost.open.app_error",
        "empty.zip: no import.jsonl at the root of the zip",
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            {
                "type": "post",
                "post": {
                    "team": "acme",
                    "channel": "nope",
                    "user": "bob",
                    "message": "x",
                    "create_at": T,
                },
            },
            "post.channel: unknown channel 'nope' in team 'acme'",
        ),
        (
            {
                "type": "post",
                "post": {
                    "team": "acme",
                    "channel": "town-square",
                    "user": "bob",
                    "message": "x",
                    "create_at": T,
                    "replies": [
                        {"user": "bob", "create_at": T + 1},
                        {"user": "zed", "create_at": T + 2},
                    ],
                },
            },
            "post.replies[1].user: unknown user 'zed'",
        ),
        (
            {
                "type": "post",
                "post": {
                    "team": "acme",
                    "channel": "town-square",
                    "user": "bob",
                    "message": "no time",
                },
            },
            "post.create_at: missing",
        ),
        (
            {"type": "channel", "channel": {"team": "acme", "name": "d", "type": "D"}},
            "channel.type: expected 'O' or 'P', got 'D'",
        ),
        (
            {
                "type": "direct_post",
                "direct_post": {
                    "channel_members": ["bob"],
                    "user": "bob",
                    "message": "x",
                    "create_at": T,
                },
            },
            "direct_post.channel_members: a direct channel has 2 to 8 members, got 1",
        ),
        ({"type": "webhook", "webhook": {}}, "type: unknown line type 'webhook'"),
        (
            {"type": "version", "version": 1},
            "type: the first line must be the version line, and only the first",
        ),
        ('{"type": "post", "post": {', None),
    ],
)
@pytest.mark.usefixtures("tiny_batches")
def test_mattermost_bad_line_names_it_and_imports_nothing(
    store: Store, tmp_path: Path, line: dict[str, Any] | str, message: str | None
) -> None:
    import_mattermost(store, write_jsonl(tmp_path / "a.jsonl", mm_lines()), progress=False)
    # New rows come before the bad line: the rollback must take them away too.
    new_team = {"type": "team", "team": {"name": "other", "display_name": "Other"}}
    bad = write_jsonl(tmp_path / "bad.jsonl", [*mm_lines(), new_team, line])
    before = dump(store)
    with pytest.raises(ImportFailed) as err:
        import_mattermost(store, bad, progress=False)
    assert err.value.id == "import.mattermost.invalid_line.app_error"
    assert err.value.line == 14
    if message is None:
        assert err.value.message.startswith("bad.jsonl line 14: not valid JSON")
    else:
        assert err.value.message == f"bad.jsonl line 14: {message}"
    assert dump(store) == before


def test_mattermost_first_line_must_be_version(store: Store, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "v.jsonl", mm_lines()[1:])
    assert_fails_cleanly(
        store,
        lambda: import_mattermost(store, path, progress=False),
        "import.mattermost.invalid_line.app_error",
        "v.jsonl line 1: type: the first line must be the version line, and only the first",
    )


MM_REAL = {
    "import_test.zip": {
        "users": 16,
        "teams": 2,
        "channels": 103,
        "members": 400,
        "posts": 4182,
        "reactions": 712,
    },
    "export_test.zip": {
        "users": 61,
        "teams": 2,
        "channels": 114,
        "members": 976,
        "posts": 4213,
        "reactions": 741,
    },
}


@pytest.mark.parametrize("name", sorted(MM_REAL))
def test_mattermost_real_exports(store: Store, name: str) -> None:
    path = MM_EXPORTS / name
    if not path.exists():
        pytest.skip(f"{path} is absent (shared data folder not available)")
    report = import_mattermost(store, path, progress=False)
    assert created(report) == MM_REAL[name]
    assert store.workspace.count_posts() == MM_REAL[name]["posts"]
    with store.db.engine.connect() as c:
        replies = c.execute(sa.select(sa.func.count()).where(posts.c.root_id != "")).scalar()
        kinds: dict[str, int] = dict(
            c.execute(sa.select(channels.c.type, sa.func.count()).group_by("type")).all()
        )
    assert replies == (1280 if name == "import_test.zip" else 1310)
    assert kinds["O"] + kinds["P"] == 24
    assert kinds["D"] + kinds["G"] == MM_REAL[name]["channels"] - 24
    before = dump(store)
    assert not import_mattermost(store, path, progress=False).changed
    assert dump(store) == before


def test_mattermost_real_export_ignores_nested_decoy(store: Store) -> None:
    path = MM_EXPORTS / "export_test_with_nested_jsonl.zip"
    if not path.exists():
        pytest.skip(f"{path} is absent (shared data folder not available)")
    report = import_mattermost(store, path, progress=False)
    assert (report.records, report.changed) == (1, False)


# ---------------------------------------------------------------------------- Slack


SLACK_COUNTS = {"users": 7, "teams": 1, "channels": 6, "members": 16, "posts": 23, "reactions": 5}


def test_slack_export_folder(store: Store) -> None:
    report = import_slack(store, DATA / "slack", team="acme", progress=False)
    assert created(report) == SLACK_COUNTS
    ws = store.workspace
    team = ws.get_team_by_name("acme")
    general = ws.get_channel_by_name(team.id, "general")
    assert (general.header, general.create_at) == ("Company-wide announcements", 1705000000000)
    assert ws.get_channel_by_name(team.id, "old-launch").delete_at > 0
    assert ws.get_channel_by_name(team.id, "design-private").type == ChannelType.PRIVATE
    ana = ws.get_user_by_username("ana")
    assert (ana.display_name, ana.timezone) == ("ana", "Europe/Lisbon")
    assert ws.get_user_by_username("dora").delete_at > 0
    assert ws.get_user_by_username("deploybot").is_bot
    assert ws.get_user_by_username("slackbot").is_bot

    msgs = {p.message: p for p in all_posts(store, general.id)}
    root = msgs[
        "Can someone review the Q1 budget draft by Thursday? @chen you know the numbers best."
    ]
    reply = msgs["Sure, I'll review it tomorrow morning."]
    edited = msgs["We decided to move the offsite to March 14."]
    assert (reply.root_id, edited.root_id, root.root_id) == (root.id, root.id, "")
    assert edited.edit_at == 1706084400000
    assert [r.emoji_name for r in reply.reactions] == ["pray"]
    assert msgs["@chen has joined the channel"].type == "system_join_channel"
    assert msgs["@dora has left the channel"].type == "system_leave_channel"
    assert msgs["is heading to the airport"].type == "me"
    assert "Please read [the handbook](https://wiki.acme.example/handbook) before" in "".join(msgs)
    assert "@here the office wifi is down, use the guest network & the VPN" in msgs
    assert "Thanks @chen. Details in ~engineering." in msgs

    engineering = ws.get_channel_by_name(team.id, "engineering")
    eng = all_posts(store, engineering.id)
    assert [ws.get_user(p.user_id).username for p in eng[:2]] == ["deploybot", "bot-b09ci"]
    tombstone = next(p for p in eng if p.message == "This message was deleted.")
    assert tombstone.delete_at > 0
    orphan = next(p for p in eng if p.message.startswith("Replying to a message"))
    assert orphan.root_id == tombstone.id
    assert eng[-1].type == "system_header_change"

    directs = {c.type: c for c in ws.channels_of_user(ana.id) if not c.team_id}
    assert directs[ChannelType.DIRECT].display_name == "ana, ben"
    assert directs[ChannelType.GROUP].display_name == "ana, ben, chen"
    assert [p.message for p in all_posts(store, directs[ChannelType.DIRECT].id)] == [
        "Hey, can you send me the signed contract?",
        "Sent!",
    ]


def test_slack_import_twice_and_as_zip_changes_nothing(store: Store, tmp_path: Path) -> None:
    import_slack(store, DATA / "slack", progress=False)
    before = dump(store)
    assert not import_slack(store, DATA / "slack", progress=False).changed
    archive = tmp_path / "Acme Slack export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted((DATA / "slack").rglob("*.json")):
            zf.write(f, "acme-export/" + f.relative_to(DATA / "slack").as_posix())
    assert not import_slack(store, archive, progress=False).changed
    assert dump(store) == before


@pytest.mark.usefixtures("tiny_batches")
def test_slack_bad_message_names_it_and_imports_nothing(store: Store, tmp_path: Path) -> None:
    import_slack(store, DATA / "slack", progress=False)
    bad = tmp_path / "export"
    shutil.copytree(DATA / "slack", bad)
    day = bad / "engineering" / "2024-01-24.json"
    messages = json.loads(day.read_text())
    messages[2]["ts"] = "soon"
    day.write_text(json.dumps(messages))
    # Into another team, so that everything before the bad message would be new rows.
    assert_fails_cleanly(
        store,
        lambda: import_slack(store, bad, team="other", progress=False),
        "import.slack.invalid_line.app_error",
        "engineering/2024-01-24.json: [2].ts: not a Slack timestamp: 'soon'",
    )
    (bad / "users.json").unlink()
    assert_fails_cleanly(
        store,
        lambda: import_slack(store, bad, progress=False),
        "import.slack.open.app_error",
        "export: no users.json: not a Slack export",
    )


# ---------------------------------------------------------------------------- logs

MEDIAWIKI = DATA / "irc" / "mediawiki.1.head300.ascii.txt"
UBUNTU = DATA / "irc" / "ubuntu-2005-07-06_14.head300.raw.txt"


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp() * 1000)


def test_log_with_a_date_per_line(store: Store) -> None:
    report = import_log(store, MEDIAWIKI, progress=False)
    assert created(report) == {
        "users": 31,
        "teams": 1,
        "channels": 1,
        "members": 31,
        "posts": 300,
        "reactions": 0,
    }
    ws = store.workspace
    channel = ws.get_channel_by_name(ws.get_team_by_name("irc").id, "mediawiki")
    got = all_posts(store, channel.id)
    assert [p.create_at for p in got] == sorted({p.create_at for p in got})  # strictly rising
    first = got[0]
    assert (first.create_at, first.type, first.message) == (
        ms("2019-02-18T04:19:02"),
        "me",
        "explodefs.",
    )
    assert ws.get_user(first.user_id).username == "azxiana"
    assert ws.get_user(first.user_id).display_name == "Azxiana"
    third = got[2]
    assert third.message.startswith("bd808: If you desire a case study on moving to Gitlab")
    assert got[-1].create_at == ms("2019-02-20T04:31:37")
    # Members only: every nick is in the channel, nothing read yet.
    assert len(ws.unread_channels(first.user_id)) == 1
    assert ws.get_member(channel.id, first.user_id).last_viewed_at == 0

    before = dump(store)
    assert not import_log(store, MEDIAWIKI, progress=False).changed
    # The dates on the lines win over a date argument.
    assert not import_log(store, MEDIAWIKI, date="2001-01-01", progress=False).changed
    assert dump(store) == before


def test_log_with_times_only_needs_a_date(store: Store) -> None:
    assert_fails_cleanly(
        store,
        lambda: import_log(store, UBUNTU, channel="ubuntu", progress=False),
        "import.log.invalid_line.app_error",
        f"{UBUNTU.name} line 1: date: this log's lines carry no date: give the date of its first "
        "line (date=YYYY-MM-DD)",
    )
    report = import_log(store, UBUNTU, channel="#Ubuntu", date="2005-07-06", progress=False)
    assert created(report) == {
        "users": 55,
        "teams": 1,
        "channels": 1,
        "members": 55,
        "posts": 300,
        "reactions": 0,
    }
    ws = store.workspace
    channel = ws.get_channel_by_name(ws.get_team_by_name("irc").id, "ubuntu")
    got = all_posts(store, channel.id)
    assert got[0].create_at == ms("2005-07-06T11:11:00")
    assert got[0].message == "Amaranth, the US peer is probably breaking the law"
    kinds = [p.type for p in got]
    assert kinds.count("system_join_channel") == 41
    # 47 "===" lines: 44 joins, nick and mode changes, and 3 old-style "=== nick does" actions.
    assert sum(k.startswith("system_") for k in kinds) == 44
    assert kinds.count("me") >= 3
    assert len(ws.posts_page(channel.id, 0, ms("2006-01-01T00:00:00"), None, 1000)) == 300 - 44
    assert not import_log(
        store, UBUNTU, channel="ubuntu", date="2005-07-06", progress=False
    ).changed


def write_log(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_log_times_roll_over_midnight_and_twelve_hour_clocks(store: Store, tmp_path: Path) -> None:
    day_log = write_log(
        tmp_path / "night.txt",
        [
            "=== early [~e@host] has joined #night",  # before any time: takes the first time
            "[23:58] <ann> still up?",
            "[23:58] <bo> yes",
            "=== cy [~c@host] has joined #night",
            "[00:01] <ann> happy new day",
        ],
    )
    import_log(store, day_log, date="2024-02-28", progress=False)
    ws = store.workspace
    night = ws.get_channel_by_name(ws.get_team_by_name("irc").id, "night")
    got = all_posts(store, night.id)
    base = ms("2024-02-28T23:58:00")
    assert [p.create_at for p in got] == [
        base,
        base + 1,
        base + 2,
        base + 3,
        ms("2024-02-29T00:01:00"),
    ]
    assert got[0].type == "system_join_channel"

    clock12 = write_log(
        tmp_path / "twelve.txt",
        ["[11:58] <ann> morning", "[12:30] <bo> noon", "[01:05] <ann> one pm"],
    )
    import_log(store, clock12, date="2005-07-06", progress=False)
    twelve = ws.get_channel_by_name(night.team_id, "twelve")
    assert [p.create_at for p in all_posts(store, twelve.id)] == [
        ms("2005-07-06T11:58:00"),
        ms("2005-07-06T12:30:00"),
        ms("2005-07-06T13:05:00"),
    ]


def test_log_annotations_make_threads(store: Store, tmp_path: Path) -> None:
    log = write_log(
        tmp_path / "dev.1.ascii.txt",
        [
            "dev 2024-05-01 [10:00:00] <ann> how do I reset the cache?",
            "dev 2024-05-01 [10:00:30] <bo> ann: run make clean",
            "dev 2024-05-01 [10:01:00] <ann> bo: thanks, that worked",
            "dev 2024-05-01 === cy [~c@host] has joined #dev",
            "dev 2024-05-01 [10:02:00] <cy> unrelated: lunch?",
            "dev 2024-05-01 [10:03:00] <bo> ann: also delete ~/.cache",
        ],
    )
    write_log(
        tmp_path / "dev.1.annotation.txt",
        ["0 0 -", "0 1 -", "1 2 -", "3 3 -", "4 4 -", "0 5 -", "1 5 -"],
    )
    import_log(store, log, progress=False)
    ws = store.workspace
    dev = ws.get_channel_by_name(ws.get_team_by_name("irc").id, "dev")
    got = all_posts(store, dev.id)
    root = got[0].id
    assert [p.root_id for p in got] == ["", root, root, "", "", root]
    assert got[3].type == "system_join_channel"

    bad = write_log(tmp_path / "odd.1.ascii.txt", ["odd 2024-05-01 [10:00:00] <ann> hi"])
    write_log(tmp_path / "odd.1.annotation.txt", ["0 0 -", "zero one"])
    assert_fails_cleanly(
        store,
        lambda: import_log(store, bad, progress=False),
        "import.log.invalid_line.app_error",
        "odd.1.annotation.txt line 2: expected '<earlier line> <later line> -'",
    )


def test_log_into_an_existing_workspace_keeps_its_profiles(store: Store, tmp_path: Path) -> None:
    import_mattermost(store, write_jsonl(tmp_path / "mm.jsonl", mm_lines()), progress=False)
    log = write_log(
        tmp_path / "town.txt",
        ["[09:00] <Alice> morning all", "[09:01] <dave> hi Alice", "[09:02] <bob> o/"],
    )
    report = import_log(
        store, log, team="acme", channel="town-square", date="2024-01-02", progress=False
    )
    # Only dave is new; alice and bob keep their names, the channel its header.
    assert created(report) == {
        "users": 1,
        "teams": 0,
        "channels": 0,
        "members": 1,
        "posts": 3,
        "reactions": 0,
    }
    assert sum(u for _, u in counts(report).values()) == 0
    ws = store.workspace
    alice = ws.get_user_by_username("alice")
    assert (alice.display_name, alice.locale) == ("Alice Archer", "fr")
    town = ws.get_channel_by_name(ws.get_team_by_name("acme").id, "town-square")
    assert (town.header, town.display_name) == ("Welcome", "Town Square")
    assert ws.get_member(town.id, alice.id).last_viewed_at == T + 3


@pytest.mark.usefixtures("tiny_batches")
def test_log_bad_line_names_it_and_imports_nothing(store: Store, tmp_path: Path) -> None:
    import_log(store, MEDIAWIKI, progress=False)
    lines = MEDIAWIKI.read_text(encoding="utf-8").splitlines()[:40]
    lines[37] = "mediawiki 2019-02-18 this line has no time or nick"
    bad = write_log(tmp_path / "mw.txt", lines)
    assert_fails_cleanly(
        store,
        lambda: import_log(store, bad, team="other", progress=False),
        "import.log.invalid_line.app_error",
        "mw.txt line 38: not a chat line: 'this line has no time or nick'",
    )
    assert_fails_cleanly(
        store,
        lambda: import_log(store, MEDIAWIKI, date="2019-13-01", progress=False),
        "import.log.invalid_line.app_error",
        f"{MEDIAWIKI.name}: date: expected YYYY-MM-DD, got '2019-13-01'",
    )


def test_log_real_channel_with_annotations(store: Store) -> None:
    path = IRC_SHARED / "new-domains" / "mediawiki.1.ascii.txt"
    if not path.exists():
        pytest.skip(f"{path} is absent (shared data folder not available)")
    report = import_log(store, path, progress=False)
    assert created(report)["posts"] == 1200
    ws = store.workspace
    channel = ws.get_channel_by_name(ws.get_team_by_name("irc").id, "mediawiki")
    got = all_posts(store, channel.id)
    days = {dt.datetime.fromtimestamp(p.create_at / 1000, dt.UTC).date() for p in got}
    assert (min(days), max(days), len(days)) == (dt.date(2019, 2, 18), dt.date(2019, 3, 2), 13)
    threaded = [p for p in got if p.root_id]
    assert len(threaded) > 50
    ids = {p.id for p in got}
    assert all(p.root_id in ids for p in threaded)


def test_stable_ids_look_like_mattermost_ids() -> None:
    a = stable_id("user", "alice")
    assert is_valid_id(a)
    assert a == stable_id("user", "alice") != stable_id("user", "alicf")
    assert stable_id("a", "bc") != stable_id("ab", "c")


def _generated_log(path: Path, lines: int) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i in range(lines):
            second = i // 4
            stamp = f"[{second // 3600 % 24:02}:{second // 60 % 60:02}:{second % 60:02}]"
            day = 1 + second // 86400
            f.write(f"big 2024-01-{day:02} {stamp} <nick{i % 300}> message {i} of the log\n")
    return path


def test_log_import_memory_is_flat(sqlite_template: Path, tmp_path: Path) -> None:
    """Peak traced memory does not grow with the file: 6x the lines, the same peak.

    (tracemalloc slows the import about tenfold, so the files stay modest; a 200,000-line
    file peaks at the same few MB.) SQLite only: the streaming is the importer's, not the
    engine's.
    """
    small = _generated_log(tmp_path / "small.txt", 3_000)
    large = _generated_log(tmp_path / "large.txt", 18_000)
    db = tmp_path / "big.db"
    shutil.copy(sqlite_template, db)
    store = Store.open(f"sqlite:///{db}")
    try:
        import_log(store, small, channel="warmup", progress=False)  # first-use caches
        tracemalloc.start()
        try:
            import_log(store, small, progress=False)
            _, small_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            report = import_log(store, large, progress=False)
            _, large_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert report.posts == UpsertCounts(18_000, 0)
        assert store.workspace.count_posts() == 3_000 * 2 + 18_000
        mb = 1024 * 1024
        assert large_peak < small_peak + 2 * mb, (small_peak / mb, large_peak / mb)
        assert large_peak < 20 * mb
    finally:
        store.close()
