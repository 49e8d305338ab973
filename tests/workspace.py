"""Build small workspaces for tests through the real WorkspaceStore."""

from __future__ import annotations

from dataclasses import dataclass, field

from recapd.model.chat import Channel, ChannelMember, Post, Team, User
from recapd.model.ids import new_id
from recapd.store.store import Store


@dataclass
class Workspace:
    """What a test made: users by name, channels by name, posts in order."""

    team: Team
    users: dict[str, User] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    posts: list[Post] = field(default_factory=list)


def make_workspace(
    store: Store,
    users: list[str],
    channels: dict[str, list[str]],
    site: str = "acme",
) -> Workspace:
    """A team `site`, the users, and channels with their members (by username)."""
    team = Team(id=new_id(), name=site, display_name=site.title())
    ws = Workspace(team)
    ws.users = {u: User(id=new_id(), username=u, timezone="UTC") for u in users}
    ws.channels = {
        name: Channel(id=new_id(), team_id=team.id, name=name, display_name=name.title())
        for name in channels
    }
    store.workspace.upsert_teams([team])
    store.workspace.upsert_users(list(ws.users.values()))
    store.workspace.upsert_channels(list(ws.channels.values()))
    store.workspace.upsert_members(
        [
            ChannelMember(channel_id=ws.channels[c].id, user_id=ws.users[u].id)
            for c, members in channels.items()
            for u in members
        ]
    )
    return ws


def add_posts(
    store: Store,
    ws: Workspace,
    channel: str,
    lines: list[tuple[str, str]],
    start_ms: int,
    step_ms: int = 60_000,
    root_of: dict[int, int] | None = None,
) -> list[Post]:
    """Posts (author, text) in `channel`, `step_ms` apart; root_of maps index -> root index."""
    made: list[Post] = []
    for i, (author, text) in enumerate(lines):
        root = ""
        if root_of and i in root_of:
            root = made[root_of[i]].id
        t = start_ms + i * step_ms
        made.append(
            Post(
                id=new_id(),
                channel_id=ws.channels[channel].id,
                user_id=ws.users[author].id,
                message=text,
                create_at=t,
                update_at=t,
                root_id=root,
            )
        )
    for i in range(0, len(made), 1000):
        store.workspace.upsert_posts(made[i : i + 1000])
    ws.posts.extend(made)
    return made
