"""The local workspace's people and channels as a person names them: users and channels found
by name (errors say the name they were given), the channel list, and who is in a channel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recapd.model.app_error import AppError
from recapd.model.chat import Channel, ChannelMember, ChannelType, User
from recapd.model.ids import is_valid_id
from recapd.store.store import Store

USER_NOT_FOUND = "store.sql_workspace.get_user.not_found.app_error"
TEAM_NOT_FOUND = "store.sql_workspace.get_team.not_found.app_error"
CHANNEL_NOT_FOUND = "store.sql_workspace.get_channel.not_found.app_error"
CHANNEL_AMBIGUOUS = "app.workspace.channel_ambiguous.app_error"
NOT_A_TEAM_CHANNEL = "app.workspace.members.not_team_channel.app_error"
ARCHIVED = "app.workspace.members.archived.app_error"


def find_user(store: Store, who: str) -> User:
    """The user with this username (a leading @ is fine) or id; 404 "no user named ..."."""
    name = who.strip().removeprefix("@")
    try:
        return store.workspace.get_user_by_username(name)
    except AppError as exc:
        if exc.status_code != 404:
            raise
    if is_valid_id(name):
        try:
            return store.workspace.get_user(name)
        except AppError as exc:
            if exc.status_code != 404:
                raise
    raise AppError(
        USER_NOT_FOUND, f"no user named {name}", detailed_error=f"username={name}", status_code=404
    )


def find_channel(store: Store, which: str) -> Channel:
    """A channel by `team/name`, by id, or by a name only one team has (a leading # or ~ is
    fine); 404 "no channel named ...", 400 when several teams have one of that name."""
    team_name, _, name = which.strip().rpartition("/")
    name = name.lstrip("#~")
    ws = store.workspace
    if team_name:
        try:
            team = ws.get_team_by_name(team_name)
        except AppError as exc:
            if exc.status_code != 404:
                raise
            raise AppError(
                TEAM_NOT_FOUND,
                f"no team named {team_name}",
                detailed_error=f"name={team_name}",
                status_code=404,
            ) from None
        try:
            return ws.get_channel_by_name(team.id, name)
        except AppError as exc:
            if exc.status_code != 404:
                raise
            raise AppError(
                CHANNEL_NOT_FOUND,
                f"no channel named {name} in team {team_name}",
                detailed_error=f"team={team_name} name={name}",
                status_code=404,
            ) from None
    if is_valid_id(name):
        try:
            return ws.get_channel(name)
        except AppError as exc:
            if exc.status_code != 404:
                raise
    found = ws.find_channels_by_name(name)
    if len(found) == 1:
        return found[0]
    if not found:
        raise AppError(
            CHANNEL_NOT_FOUND,
            f"no channel named {name}",
            detailed_error=f"name={name}",
            status_code=404,
        )
    teams = sorted(ws.get_team(c.team_id).name for c in found if c.team_id)
    raise AppError(
        CHANNEL_AMBIGUOUS,
        f"{len(found)} channels are named {name} (teams {', '.join(teams)}); "
        f"name one as team/{name}",
        detailed_error=f"name={name}",
        status_code=400,
    )


@dataclass(frozen=True, slots=True)
class ChannelListing:
    """A team channel as the channel list shows it."""

    channel: Channel
    team_name: str
    member_count: int

    @property
    def full_name(self) -> str:
        """`team/name`, which finds the channel whatever other teams hold."""
        return f"{self.team_name}/{self.channel.name}"


def list_channels(store: Store, user_id: str | None = None) -> list[ChannelListing]:
    """The team channels (only the user's when given), by team and name, with member counts."""
    team_names: dict[str, str] = {}
    out = []
    for channel, members in store.workspace.team_channels(user_id):
        if channel.team_id not in team_names:
            team_names[channel.team_id] = store.workspace.get_team(channel.team_id).name
        out.append(ChannelListing(channel, team_names[channel.team_id], members))
    return out


def _member_channel(channel: Channel) -> None:
    if not channel.team_id or channel.type in (ChannelType.DIRECT, ChannelType.GROUP):
        raise AppError(
            NOT_A_TEAM_CHANNEL,
            f"{channel.name or channel.id} is a direct or group channel: its members are fixed",
            detailed_error=f"channel_id={channel.id}",
            status_code=400,
        )


def add_members(store: Store, channel: Channel, users: Sequence[User], now_ms: int) -> int:
    """Make the users members of the team channel (those already in stay as they are); how
    many joined. A new member has read nothing yet, as in Mattermost."""
    _member_channel(channel)
    if channel.delete_at:
        raise AppError(
            ARCHIVED,
            f"channel {channel.name} is archived: nobody can join it",
            detailed_error=f"channel_id={channel.id}",
            status_code=400,
        )
    members = [ChannelMember(channel.id, u.id, last_viewed_at=0, create_at=now_ms) for u in users]
    return store.workspace.upsert_members(members).created


def remove_members(store: Store, channel: Channel, users: Sequence[User]) -> int:
    """Take the users out of the team channel; how many were in it."""
    _member_channel(channel)
    with store.transaction() as conn:
        return sum(store.workspace.remove_member(channel.id, u.id, conn=conn) for u in users)
