"""Conversations within a window: who replied to whom, for sources without explicit threads.

IRC logs, Slack channels and many Mattermost channels carry no `root_id`: people reply
inline, "nick: ...", and several conversations interleave. Every agent reads better input
when each post says which earlier post it answers (`reply_to`) and which conversation it
belongs to (`conversation_id`, the id of the conversation's first post). Explicit threads
(`root_id`) are kept as they are; the rules below only link top-level posts:

1. A bot's post answers the command that triggered it (a meeting line, "bug 123",
   "!cmd", "eval:") in the posts just before, else continues the bot's own feed about the
   same item (a shared URL or number), else starts a conversation.
2. A post addressed to someone ("nick: ...", "nick, ...", "@nick ...") answers that person's
   latest post in a conversation with the author (or their latest one not addressed to a
   third person), or the author's own later post to the same person (a continuation).
3. An unaddressed post answers whoever last turned to its author (mentioned them, or
   answered them) since the author last spoke, or that person's following lines.
4. Otherwise a recent post by the same author continues it.
5. Someone new right after an opener nobody answered yet answers it, unless they ask about
   something else. A greeting, a long question, a long line or anything after a silence starts
   a new conversation; a short question just after someone spoke answers that post, and a
   short greeting just after another's greeting returns it.

A line repeated word for word by others (a flood, a pasted announcement, an echoed error)
joins the first copy, and a person's line reads as following the last person's line: bots'
lines in between (feeds, echoes) are skipped.

Measured on hand-annotated IRC logs by `bench/quality.py` (link accuracy and cluster F1,
with two baselines). Bots and noise (pure commands, join/part lines) are marked here too, so
the agents never make them a highlight or an owner.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from recapd.agents.base import AgentPost
from recapd.agents.words import STOPWORDS, WORD_RE
from recapd.model.chat import DEFAULT_BOT_NAMES

__all__ = [
    "DEFAULT_BOT_NAMES",
    "Conversation",
    "annotate",
    "group_conversations",
    "is_bot_name",
    "link_posts",
]


_MINUTE_MS: Final = 60_000
# How far back an answer is looked for, and how long a same-author run lasts.
_REPLY_WINDOW_MS: Final = 15 * _MINUTE_MS
_CONVERSATION_WINDOW_MS: Final = 30 * _MINUTE_MS
_CONTINUATION_MS: Final = 5 * _MINUTE_MS
_CONTINUATION_POSTS: Final = 12
_SAME_AUTHOR_MS: Final = 10 * _MINUTE_MS
_QUICK_MS: Final = 2 * _MINUTE_MS
# A question at least this long opens a topic of its own; a shorter one follows up.
_TOPIC_QUESTION_WORDS: Final = 6
_BOT_TRIGGER_POSTS: Final = 3
# How many posts back any rule looks, whatever the times: keeps a dense window linear.
_LOOKBACK_POSTS: Final = 200
# A line this long (a newcomer's first, or anyone's after a silence of their own) opens a
# topic of its own; a shorter one follows up.
_TOPIC_LINE_WORDS: Final = 12
# A line repeated word for word is a copy of the first only when it says something.
_REPEAT_CHARS: Final = 20
_BOT_FEED_POSTS: Final = 300
# A word said in this many lines, or this share of them, is the channel's, not a topic's.
_COMMON_WORD_LINES: Final = 3
_COMMON_WORD_SHARE: Final = 0.02

_ADDRESS_RE: Final = re.compile(r"^\s*@?([^\s:,]+)\s*[:,]")
_ABSENT_RE: Final = re.compile(r"^\s*@[\w.\-]+")
_NAME_TOKEN_RE: Final = re.compile(r"@?([\w\-\[\]\\`^{}|.]*[\w\-\[\]\\`^{}|])")
_QUESTION_RE: Final = re.compile(r"[?\uff1f](?:\s|$)")
_GREETING_RE: Final = re.compile(
    r"^\s*(?:hi|hello|hey|hiya|howdy|greetings|good\s+(?:morning|evening|afternoon))\b", re.I
)
# What makes a bot speak: meeting commands, bug numbers, "!cmd", "eval:".
_BOT_TRIGGER_RE: Final = re.compile(
    r"^\s*[\[#](?:topic|action|agreed|idea|link|info|startmeeting|endmeeting|vote|chair|help)\b"
    r"|\bbugs?\s+#?\d{3,}|^\s*[!#]\w+|^\s*eval:",
    re.IGNORECASE,
)
_FEED_KEY_RE: Final = re.compile(r"https?://\S+|\b\d{4,}\b")
# A post that is only a command ("!ping", "/me waves") says nothing to a reader.
# "!ping", "/me waves", "!seen bob" (a path like "/var/log/x.log" is an answer, not a command).
_COMMAND_RE: Final = re.compile(r"^\s*(?:!\w+|/\w+(?=\s|$))(?:\s+\S{0,40})?\s*$")
_JOIN_PART_RE: Final = re.compile(
    r"^\s*(?:\S+\s+)?(?:has\s+)?(?:joined|left|quit|parted)\b(?:\s+(?:the\s+)?(?:channel|#\S+))?",
    re.IGNORECASE,
)


def _norm(name: str) -> str:
    """Nicks compare without case, "@" and trailing "_" (a reconnect's "nick_")."""
    return name.strip().lstrip("@").lower().rstrip("_")


def is_bot_name(name: str, bot_names: Collection[str] = DEFAULT_BOT_NAMES) -> bool:
    """Whether a username is a bot's: one of the configured names (also with a number, like
    "cia-6"), or one ending in "-bot", "_bot" or "[bot]"."""
    n = _norm(name)
    if not n:
        return False
    names = {_norm(b) for b in bot_names}
    return (
        n in names or n.endswith(("-bot", "_bot", "[bot]")) or re.sub(r"[-_]?\d+$", "", n) in names
    )


def _words(message: str) -> set[str]:
    """A line's words that could name a topic (no stop words, nothing under three letters)."""
    return {w for w in WORD_RE.findall(message.lower()) if len(w) > 2 and w not in STOPWORDS}


def _is_noise(message: str) -> bool:
    text = message.strip()
    return not text or bool(_COMMAND_RE.fullmatch(text)) or bool(_JOIN_PART_RE.fullmatch(text))


@dataclass(frozen=True, slots=True)
class Link:
    """One post's inferred parent (itself for a conversation's start) and the rule used."""

    post_id: str
    parent_id: str
    rule: str


@dataclass(slots=True)
class Conversation:
    """Posts of one conversation in time order; `id` is its first post's id."""

    id: str
    posts: list[AgentPost]

    @property
    def participants(self) -> list[str]:
        """Authors in order of first appearance."""
        return list(dict.fromkeys(p.author for p in self.posts))


class _Linker:
    """Walks a window's posts in time order, keeping who spoke last and who addressed whom."""

    def __init__(self, posts: Sequence[AgentPost]) -> None:
        self.posts = list(posts)
        self.parent: list[int] = []
        self.mentions: list[frozenset[str]] = []
        self.last_by: dict[str, int] = {}
        self.ids = {p.id: i for i, p in enumerate(self.posts)}
        # In how many lines so far each word was said.
        self.word_lines: Counter[str] = Counter()
        # Posts that explicitly start a thread in this window.
        self.thread_roots = {p.root_id for p in self.posts if p.root_id}

    def run(self) -> list[Link]:
        links: list[Link] = []
        for i, post in enumerate(self.posts):
            parent, rule = self._link(i, post)
            self.parent.append(parent)
            parent_id = self.posts[parent].id if parent >= 0 else post.root_id
            links.append(Link(post.id, parent_id, rule))
            if not post.root_id:
                self.last_by[_norm(post.author)] = i
            self.word_lines.update(_words(post.message))
        return links

    # -- helpers ---------------------------------------------------------------------------

    def _author(self, i: int) -> str:
        return _norm(self.posts[i].author)

    def _age(self, i: int, j: int) -> int:
        return self.posts[i].create_at - self.posts[j].create_at

    def _parent_author(self, j: int) -> str:
        p = self.parent[j]
        return self._author(p) if 0 <= p != j else ""

    def _mentions(self, post: AgentPost, author: str) -> frozenset[str]:
        known = self.last_by
        found = {_norm(t) for t in _NAME_TOKEN_RE.findall(post.message)}
        return frozenset(n for n in found if n in known and n != author and len(n) > 1)

    def _addressee(self, post: AgentPost, author: str, mentions: frozenset[str]) -> str:
        m = _ADDRESS_RE.match(post.message)
        if m is not None:
            name = _norm(m.group(1))
            if name in self.last_by and name != author:
                return name
        for token in _NAME_TOKEN_RE.findall(post.message)[:2]:
            if _norm(token) in mentions:
                return _norm(token)
        return ""

    def _previous(self, i: int) -> int:
        """The last person's line before post i (thread replies and bots' lines skipped)."""
        j = i - 1
        while j >= 0 and (self.posts[j].root_id or self.posts[j].is_bot):
            j -= 1
        return j

    def _shared_topic(self, a: str, b: str) -> bool:
        """Whether two lines share a word this window does not use all the time (in a
        payments channel "stripe" says nothing about the topic)."""
        seen = len(self.parent)
        common = max(_COMMON_WORD_LINES, seen * _COMMON_WORD_SHARE)
        return any(self.word_lines[w] < common for w in _words(a) & _words(b))

    def _opened(self, j: int) -> bool:
        """Whether a person's post j opened a conversation (it answers nobody)."""
        return j >= 0 and self.parent[j] == j and not self.posts[j].is_bot

    def _first_copy(self, i: int, post: AgentPost) -> int | None:
        """The first recent post with the same words as post i, if it says anything."""
        text = " ".join(post.message.lower().split())
        if len(text) < _REPEAT_CHARS:
            return None
        first = None
        for j in range(i - 1, max(-1, i - 1 - _LOOKBACK_POSTS), -1):
            if self._age(i, j) > _CONVERSATION_WINDOW_MS:
                break
            other = self.posts[j]
            if not other.root_id and " ".join(other.message.lower().split()) == text:
                first = j
        return first

    # -- rules -----------------------------------------------------------------------------

    def _link(self, i: int, post: AgentPost) -> tuple[int, str]:
        author = _norm(post.author)
        if post.root_id:
            self.mentions.append(frozenset())
            root = self.ids.get(post.root_id)
            return (root if root is not None and root < i else -1), "thread"
        if post.is_bot:
            self.mentions.append(frozenset())
            return self._bot(i, post)
        mentions = self._mentions(post, author)
        self.mentions.append(mentions)
        if post.id in self.thread_roots or post.reply_count > 0:
            # An explicit thread is kept as it is: its root starts the conversation.
            return i, "thread-root"
        copy = self._first_copy(i, post)
        if copy is not None:
            return copy, "repeat"
        last_own = self.last_by.get(author)
        if _ABSENT_RE.match(post.message) and not mentions:
            # "@name ..." to someone who has not spoken here: a new conversation with them.
            return i, "to-absent"
        target = self._addressee(post, author, mentions)
        if target:
            return self._addressed(i, author, target, last_own), "addressed"
        answer = self._answer_to_author(i, author, last_own)
        if answer is not None:
            return answer, "answer"
        if last_own is not None:
            turn = self._turn_taken(i, author, last_own)
            if turn is not None:
                return turn, "turn"
            if self._age(i, last_own) < _CONTINUATION_MS and i - last_own < _CONTINUATION_POSTS:
                return last_own, "continuation"
        return self._start_or_follow(i, post, last_own)

    def _bot(self, i: int, post: AgentPost) -> tuple[int, str]:
        for k in range(i - 1, max(-1, i - 1 - _BOT_TRIGGER_POSTS), -1):
            other = self.posts[k]
            if not other.is_bot and not other.root_id and _BOT_TRIGGER_RE.search(other.message):
                return k, "bot-trigger"
        keys = set(_FEED_KEY_RE.findall(post.message))
        if keys:
            me = _norm(post.author)
            for k in range(i - 1, max(-1, i - 1 - _BOT_FEED_POSTS), -1):
                same_item = keys & set(_FEED_KEY_RE.findall(self.posts[k].message))
                if self._author(k) == me and same_item:
                    return k, "bot-feed"
        return i, "bot-start"

    def _addressed(self, i: int, author: str, target: str, last_own: int | None) -> int:
        said: list[int] = []
        for j in range(i - 1, max(-1, i - 1 - _LOOKBACK_POSTS), -1):
            if self._age(i, j) > _CONVERSATION_WINDOW_MS:
                break  # posts are in time order: nothing older is recent enough
            if self._author(j) == target and not self.posts[j].root_id:
                said.append(j)
        chosen = self.last_by[target]
        with_author = [
            j for j in said if author in self.mentions[j] or self._parent_author(j) == author
        ]
        to_nobody_else = [
            j
            for j in said
            if not (self.mentions[j] - {author}) and self._parent_author(j) in ("", author, target)
        ]
        if with_author and (not to_nobody_else or with_author[0] >= to_nobody_else[0]):
            chosen = with_author[0]
        elif to_nobody_else:
            chosen = to_nobody_else[0]
        # The author going on to the same person: their own later line is the parent.
        if (
            last_own is not None
            and last_own > chosen
            and target in self.mentions[last_own]
            and self._age(i, last_own) < _SAME_AUTHOR_MS
        ):
            return last_own
        return chosen

    def _answer_to_author(self, i: int, author: str, last_own: int | None) -> int | None:
        floor = last_own if last_own is not None else max(-1, i - 40)
        floor = max(floor, i - 1 - _LOOKBACK_POSTS)
        for j in range(i - 1, floor, -1):
            if self._age(i, j) > _REPLY_WINDOW_MS:
                return None
            if self.posts[j].root_id or self._author(j) == author:
                continue
            if author in self.mentions[j] or self._parent_author(j) == author:
                # The person who turned to the author may have gone on in the next lines.
                other = self._author(j)
                latest = self.last_by[other]
                if latest > j and not (self.mentions[latest] - {author}):
                    return latest
                return j
        return None

    def _turn_taken(self, i: int, author: str, last_own: int) -> int | None:
        """A, B, A: the second line of A answers B when B's line, just before, opened a
        conversation or answered A (a dialogue taking turns)."""
        previous = self._previous(i)
        if previous != last_own + 1 or self._age(i, previous) >= _QUICK_MS:
            return None
        other = self._author(previous)
        if other == author or self.posts[previous].is_bot:
            return None
        opened = self.parent[previous] == previous
        if opened or self._parent_author(previous) == author:
            return previous
        return None

    def _start_or_follow(self, i: int, post: AgentPost, last_own: int | None) -> tuple[int, str]:
        previous = self._previous(i)
        quick = previous >= 0 and self._age(i, previous) < _QUICK_MS
        question = bool(_QUESTION_RE.search(post.message))
        words = len(post.message.split())
        # A newcomer's short reaction right after someone spoke ("nice, thanks") follows it;
        # anything longer from a newcomer opens a topic.
        newcomer_opens = last_own is None and (words >= _TOPIC_LINE_WORDS or not quick)
        greeting = _GREETING_RE.match(post.message) is not None
        if (
            greeting
            and quick
            and words <= 3
            and self._author(previous) != _norm(post.author)
            and _GREETING_RE.match(self.posts[previous].message)
        ):
            return previous, "greeting-back"
        if last_own is None and quick and not greeting and self._opened(previous):
            # Someone new, just after an opener nobody has answered yet: a statement answers
            # it, and so does a question taking up its words; another question is a topic.
            said = self.posts[previous].message
            if not question or self._shared_topic(post.message, said):
                return previous, "first-answer"
        if (
            greeting
            or newcomer_opens
            or (question and (words >= _TOPIC_QUESTION_WORDS or not quick))
        ):
            return i, "start"
        if (question or last_own is None) and previous >= 0:
            return previous, "follow-up"
        if last_own is not None and self._age(i, last_own) < _SAME_AUTHOR_MS:
            return last_own, "continuation"
        if previous < 0 or words >= _TOPIC_LINE_WORDS:
            return i, "start"  # back after a silence with something to say: a new topic
        return previous, "previous"


def link_posts(posts: Sequence[AgentPost]) -> list[Link]:
    """Each post's inferred parent, posts taken in (create_at, id) order."""
    ordered = sorted(posts, key=lambda p: (p.create_at, p.id))
    return _Linker(ordered).run()


def _roots(links: Iterable[Link]) -> dict[str, str]:
    """post id -> its conversation's first post id (union of the links)."""
    up: dict[str, str] = {}

    def find(x: str) -> str:
        while up.get(x, x) != x:
            up[x] = up.get(up[x], up[x])
            x = up[x]
        return x

    for link in links:
        up.setdefault(link.post_id, link.post_id)
        if link.parent_id and link.parent_id != link.post_id:
            a, b = find(link.post_id), find(link.parent_id)
            up.setdefault(b, b)
            if a != b:
                # The earlier post names the conversation: links always point back in time.
                up[a] = b
    return {post_id: find(post_id) for post_id in list(up)}


def annotate(
    posts: Sequence[AgentPost], bot_names: Collection[str] = DEFAULT_BOT_NAMES
) -> list[AgentPost]:
    """Copies of the posts, in time order, with bots and noise marked and each post's
    `reply_to` and `conversation_id` filled in (explicit threads kept)."""
    marked = [
        replace(
            p,
            is_bot=p.is_bot or is_bot_name(p.author, bot_names),
            is_noise=p.is_noise or _is_noise(p.message),
        )
        for p in sorted(posts, key=lambda p: (p.create_at, p.id))
    ]
    links = link_posts(marked)
    roots = _roots(links)
    out: list[AgentPost] = []
    for post, link in zip(marked, links, strict=True):
        reply_to = "" if link.parent_id == post.id else link.parent_id
        out.append(replace(post, reply_to=reply_to, conversation_id=post.root_id or roots[post.id]))
    return out


def group_conversations(posts: Sequence[AgentPost]) -> list[Conversation]:
    """Annotated posts grouped by conversation, conversations ordered by their first post."""
    groups: dict[str, list[AgentPost]] = {}
    for p in sorted(posts, key=lambda p: (p.create_at, p.id)):
        groups.setdefault(p.conversation_id or p.root_id or p.id, []).append(p)
    return [Conversation(key, members) for key, members in groups.items()]
