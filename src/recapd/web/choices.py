"""What the forms offer: the channels a user may read (named for people, direct messages with
bots left out) and the configured agents."""

from __future__ import annotations

from recapd.config import Settings
from recapd.model.chat import Channel, ChannelType, User
from recapd.runtime import Runtime


def _label(channel: Channel, people: dict[str, User], viewer_id: str) -> str:
    """How a channel is named on the pages: `#name`, or `@someone` for a direct message."""
    if channel.type == ChannelType.DIRECT:
        others = [u for u in channel.name.split("__") if u != viewer_id]
        if not others:
            return "Notes to yourself"
        who = people.get(others[0])
        return "@" + (who.username if who is not None else "someone")
    return "#" + (channel.display_name or channel.name)


async def channel_labels(
    rt: Runtime, viewer_id: str, channels: list[Channel]
) -> tuple[dict[str, str], set[str]]:
    """Labels of the channels, and the ids of direct messages with bots (not worth a recap)."""
    direct = [c for c in channels if c.type == ChannelType.DIRECT]
    ids = {u for c in direct for u in c.name.split("__") if u != viewer_id}
    people = await rt.chat.get_users(sorted(ids)) if ids else {}
    bots = {
        c.id
        for c in direct
        if any(people[u].is_bot for u in c.name.split("__") if u in people and u != viewer_id)
    }
    return {c.id: _label(c, people, viewer_id) for c in channels}, bots


async def channel_choices(
    rt: Runtime, viewer_id: str, chosen: list[str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """The picker: (id, label) of each channel the user may read, and the chosen ids the user
    can no longer read (kept visible, so unticking them is possible)."""
    member_of: list[Channel] = await rt.chat.channels_of_user(viewer_id)
    labels, bots = await channel_labels(rt, viewer_id, member_of)
    readable = [(c.id, labels[c.id]) for c in member_of if c.id not in bots]
    known = {c.id for c in member_of}
    return readable, [c for c in chosen if c not in known]


def agent_choices(settings: Settings) -> list[tuple[str, str]]:
    """(id, name) of each configured agent, by id."""
    return [(aid, a.display_name or aid) for aid, a in sorted(settings.agents.items())]


def agent_label(rt: Runtime, agent_id: str) -> str:
    """How the pages name the agent of a recap or schedule: its display name, else its id."""
    agent = rt.settings.agents.get(agent_id)
    if agent is None:
        return "no longer configured" if agent_id else "unknown"
    return agent.display_name or agent_id
