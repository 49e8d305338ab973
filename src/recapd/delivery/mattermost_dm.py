"""Direct messages on a Mattermost server: the DirectMessenger for `chat = "mattermost"`.

The bot (the configured token's account) opens its direct channel with the user
(`POST /api/v4/channels/direct`, idempotent) and posts the Markdown recap
(`POST /api/v4/posts`), split into posts under the server's size limit (`MaxPostSize` from
`GET /api/v4/config/client`, in runes, i.e. code points; 16,383 on every server since 5.0)
without cutting a line: a section heading moves with the line after it, and a post that starts
inside a section repeats its headings. Parts are top-level posts marked "part i of n".

At most once per key: every part carries `props.recapd_key` and `props.recapd_part`, and the
DM's recent posts are read before posting, so a retried delivery posts only the parts that are
missing. Each POST also carries a `pending_post_id`, which Mattermost deduplicates for 30 s, so
the POST itself may be retried after a lost answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recapd.chat.mattermost.client import (
    DEFAULT_MAX_POST_SIZE,
    MIN_MAX_POST_SIZE,
    MattermostClient,
    parse_max_post_size,
)
from recapd.delivery.messenger import DirectMessageRefused
from recapd.model.app_error import AppError

# Room kept in every post for the "part i of n" line.
PART_MARKER_RESERVE = 40
# How many of the DM's newest posts are searched for parts already sent.
RECENT_POSTS_SEARCHED = 200
ELLIPSIS = "\u2026"
# A line is cut over posts only where a piece of at least this much fits.
_MIN_PIECE = 40
KEY_PROP = "recapd_key"
PART_PROP = "recapd_part"
# The client's error for a 400 or 413 from the server (reported as 502: recapd's caller did
# nothing wrong, but the request will never be accepted).
BAD_REQUEST_ID = "chat.mattermost.bad_request.app_error"


@dataclass(frozen=True)
class Unit:
    """One line of the message that is never split: a heading, an item or a blank line.

    `section` and `label` are the heading and the list heading ("**Highlights**") the line
    belongs to, so a post that starts inside a section repeats them.
    """

    text: str
    section: str = ""
    label: str = ""
    heading: bool = False


def _is_label(line: str) -> bool:
    s = line.strip()
    return len(s) > 4 and s.startswith("**") and s.endswith("**") and "**" not in s[2:-2]


def parse_units(message: str) -> list[Unit]:
    """The message's lines as units: `#` lines open a section, a bold-only line right after
    a heading or an item opens a list inside it, any other line is an item."""
    units: list[Unit] = []
    section = label = ""
    for line in message.split("\n"):
        if line.startswith("#"):
            section, label = line, ""
            units.append(Unit(line, section, heading=True))
        elif section and _is_label(line):
            label = line
            units.append(Unit(line, section, label, heading=True))
        else:
            units.append(Unit(line, section, label))
    return units


def _size(units: Sequence[Unit]) -> int:
    return sum(len(u.text) for u in units) + max(0, len(units) - 1)


def _continuation(first: Unit) -> list[Unit]:
    """The headings a post starting with `first` repeats from the post before."""
    out: list[Unit] = []
    if first.section and first.text != first.section:
        out.append(Unit(f"{first.section} (continued)", first.section, heading=True))
        if first.label and first.text != first.label:
            out.append(Unit(first.label, first.section, first.label, heading=True))
    return out


def _text(units: Sequence[Unit]) -> str:
    return "\n".join(u.text for u in units).strip("\n")


def split_units(units: Sequence[Unit], max_runes: int) -> list[str]:
    """Pack the units into as few posts of at most `max_runes` runes as possible, never
    splitting a unit: only a line longer than a whole post goes on in the next post, cut
    between words."""
    budget = max(MIN_MAX_POST_SIZE, max_runes) - PART_MARKER_RESERVE
    posts: list[list[Unit]] = []
    current: list[Unit] = []
    for unit in units:
        if not current and not unit.text.strip():
            continue  # no post starts with a blank line
        if current and _size([*current, unit]) > budget:
            carried: list[Unit] = []
            while len(current) > 1 and (current[-1].heading or not current[-1].text.strip()):
                carried.insert(0, current.pop())
            carried = [u for u in carried if u.text.strip()]
            posts.append(current)
            current = _continuation(carried[0] if carried else unit) + carried
            if not unit.text.strip():
                continue
        room = budget - _size(current) - (1 if current else 0)
        while len(unit.text) > room and room > _MIN_PIECE:
            # A line longer than a whole post goes on in the next one, cut between words so
            # every link stays whole (a word longer than a post is cut with an ellipsis).
            cut = unit.text.rfind(" ", 0, room + 1)
            if cut < room // 4:
                break
            current.append(Unit(unit.text[:cut], unit.section, unit.label))
            posts.append(current)
            current = _continuation(unit)
            unit = Unit(unit.text[cut:].lstrip(" "), unit.section, unit.label)
            room = budget - _size(current) - (1 if current else 0)
        if len(unit.text) > room:
            unit = Unit(unit.text[: max(0, room - 1)] + ELLIPSIS, unit.section, unit.label)
        current.append(unit)
    if current:
        posts.append(current)
    texts = [t for t in (_text(p) for p in posts) if t]
    if len(texts) > 1:
        n = len(texts)
        texts = [f"{t}\n_(part {i} of {n})_" for i, t in enumerate(texts, 1)]
    return texts or [""]


def split_markdown(message: str, max_runes: int = DEFAULT_MAX_POST_SIZE) -> list[str]:
    """The Markdown message as posts of at most `max_runes` runes, cut only between lines."""
    return split_units(parse_units(message), max_runes)


def is_permanent(exc: AppError) -> bool:
    """True for a Mattermost answer a retry cannot change: a 4xx other than 429 (the client
    reports 429 as 503 and a server's 400/413 as bad_request)."""
    return exc.status_code in (400, 401, 403, 404) or exc.id == BAD_REQUEST_ID


class MattermostDirectMessenger:
    """A DirectMessenger posting from the token's account (the bot) on a Mattermost server."""

    def __init__(self, client: MattermostClient) -> None:
        self.client = client
        self._bot_id = ""

    async def bot_user_id(self) -> str:
        """The id of the account the token belongs to."""
        if not self._bot_id:
            me = await self.client.get("/users/me")
            self._bot_id = str(me["id"])
        return self._bot_id

    async def max_post_size(self) -> int:
        """The server's post size limit in runes (asked each time: admins may change it)."""
        return parse_max_post_size(await self.client.get("/config/client") or {})

    async def open_channel(self, user_id: str) -> str:
        """The id of the bot's direct channel with the user (created if needed; idempotent)."""
        bot = await self.bot_user_id()
        channel = await self.client.post("/channels/direct", [bot, user_id], idempotent=True)
        return str(channel["id"])

    async def _parts_already_sent(self, channel_id: str, bot: str, key: str) -> set[int]:
        data = await self.client.get(
            f"/channels/{channel_id}/posts", {"page": 0, "per_page": RECENT_POSTS_SEARCHED}
        )
        done: set[int] = set()
        for post in (data.get("posts") or {}).values():
            props = post.get("props") or {}
            if post.get("user_id") == bot and props.get(KEY_PROP) == key:
                try:
                    done.add(int(props.get(PART_PROP, -1)))
                except (TypeError, ValueError):
                    continue
        return done

    async def send_direct(self, user_id: str, message: str, key: str) -> None:
        """Post `message` to the user's DM with the bot, split under the size limit, once per
        `key` (parts already posted under the key are not posted again). A 4xx answer (the
        user is not on the server, the bot may not write to them) is DirectMessageRefused."""
        try:
            await self.send_parts(user_id, message, key)
        except AppError as exc:
            if is_permanent(exc):
                raise DirectMessageRefused(str(exc)) from exc
            raise

    async def send_parts(self, user_id: str, message: str, key: str) -> list[str]:
        """send_direct, returning the ids of the posts made now."""
        bot = await self.bot_user_id()
        channel_id = await self.open_channel(user_id)
        parts = split_markdown(message, await self.max_post_size())
        done = await self._parts_already_sent(channel_id, bot, key)
        made: list[str] = []
        for i, part in enumerate(parts):
            if i in done:
                continue
            body = {
                "channel_id": channel_id,
                "message": part,
                "props": {KEY_PROP: key, PART_PROP: str(i)},
                "pending_post_id": f"{bot}:{key}:{i}",
            }
            post = await self.client.post("/posts", body, idempotent=True)
            made.append(str(post["id"]))
        return made
