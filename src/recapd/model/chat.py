"""The chat workspace as recapd sees it: users, teams, channels, members and posts, in
Mattermost's shape so Mattermost data fits unchanged."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, NamedTuple

# Log bots: meeting bots, bug and review feeds, evaluators. Names ending in "-bot", "_bot" or
# "[bot]" are bots too; "talbot" is not.
DEFAULT_BOT_NAMES: Final[tuple[str, ...]] = (
    "meetbot",
    "mootbot",
    "ubottu",
    "ubotu",
    "wikibugs",
    "gerrit-wm",
    "wm-bot",
    "stashbot",
    "rustbot",
    "mwbot",
    "wmdsbot",
    "ubugtu",
    "meetingology",
    "lpbot",
    "chanserv",
    "nickserv",
    "slackbot",
    "eval",
    "cia",
    "github",
    "travis-ci",
    "jenkins",
    "dependabot",
    "renovate",
    "recap-bot",
)


class ChannelType(StrEnum):
    """Mattermost's channel types."""

    OPEN = "O"
    PRIVATE = "P"
    DIRECT = "D"
    GROUP = "G"


@dataclass(slots=True)
class User:
    """A workspace user; `locale` is the language recaps are written in."""

    id: str
    username: str
    display_name: str = ""
    email: str = ""
    locale: str = "en"
    timezone: str = ""
    is_bot: bool = False
    create_at: int = 0
    delete_at: int = 0


@dataclass(slots=True)
class Team:
    """A team; its `name` is the URL slug used in permalinks."""

    id: str
    name: str
    display_name: str = ""
    create_at: int = 0
    delete_at: int = 0


@dataclass(slots=True)
class Channel:
    """A channel. Direct and group channels have no team (team_id "")."""

    id: str
    team_id: str
    name: str
    display_name: str = ""
    type: str = ChannelType.OPEN
    header: str = ""
    purpose: str = ""
    create_at: int = 0
    delete_at: int = 0


@dataclass(slots=True)
class ChannelMember:
    """A user's membership of a channel, with where they stopped reading."""

    channel_id: str
    user_id: str
    last_viewed_at: int = 0
    create_at: int = 0


@dataclass(slots=True)
class Reaction:
    """An emoji reaction to a post."""

    user_id: str
    emoji_name: str
    create_at: int = 0


# Post types that are conversation; anything starting with "system_" (joins, leaves, header
# changes, ...) is dropped before summarizing.
SYSTEM_POST_PREFIX = "system_"


@dataclass(slots=True)
class Post:
    """A post. `root_id` is "" for a thread root or a standalone post."""

    id: str
    channel_id: str
    user_id: str
    message: str
    create_at: int
    root_id: str = ""
    type: str = ""
    props: dict[str, Any] = field(default_factory=dict)
    update_at: int = 0
    edit_at: int = 0
    delete_at: int = 0
    reactions: list[Reaction] = field(default_factory=list)

    @property
    def is_system(self) -> bool:
        """True for join/leave/header-change and other system messages."""
        return self.type.startswith(SYSTEM_POST_PREFIX)

    @property
    def thread_id(self) -> str:
        """The id of the thread this post belongs to (its root's, or its own)."""
        return self.root_id or self.id


class PostStamp(NamedTuple):
    """What identifies a post's state without its text: enough to plan a window's stretches
    and to tell whether anything an agent would be shown changed (summarize/fingerprint.py).

    Every change of a post through the workspace store moves `update_at` (an edit, a deletion,
    new props); reactions are counted; the author's name and bot flag are the user's now. A
    tuple: a weekly window reads a thousand of them per channel and recap.
    """

    id: str
    create_at: int
    root_id: str
    update_at: int
    edit_at: int
    user_id: str
    # The author's username ("" when the user is missing) and bot flag.
    username: str
    user_is_bot: bool
    reaction_count: int

    @property
    def thread_id(self) -> str:
        """The id of the thread this post belongs to (its root's, or its own)."""
        return self.root_id or self.id


def stamp_of(post: Post, user: User | None) -> PostStamp:
    """The stamp of a post read in full, with its author (None when missing)."""
    return PostStamp(
        id=post.id,
        create_at=post.create_at,
        root_id=post.root_id,
        update_at=post.update_at,
        edit_at=post.edit_at,
        user_id=post.user_id,
        username=user.username if user else "",
        user_is_bot=bool(user and user.is_bot),
        reaction_count=len(post.reactions),
    )
