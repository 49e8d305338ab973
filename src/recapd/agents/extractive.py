"""The `extractive` agent: offline and deterministic, it picks highlights, action items and
open questions from the posts themselves, so recapd makes useful recaps with no model at all.

It reads the structure the conversation step (summarize/conversations.py) put on the posts:
- one highlight per conversation (an explicit thread or an inferred one), a question shown
  with its answer, ranked by replies, participants, reactions, decisions, centrality (TF-IDF
  cosine to the channel's centroid) and recency, near-duplicates folded together, a handful
  of citations each (the conversation's key posts);
- meeting markup (MeetBot/MootBot `#startmeeting`, `[TOPIC]`, `[AGREED]`, `[ACTION]`, `#info`,
  `#link`, plain "AGREED:"/"ACTION:") becomes the meeting's topics, decisions and action
  items with all their owners; a bot's echo is cited as evidence;
- action items are requests addressed to someone and commitments ("I'll ...", "will do" by
  the one asked), never questions, pleasantries or "standby";
- questions nobody answered are open questions, a list of their own;
- bots and noise (pure commands, join/part lines) are never a highlight or an owner.

`summarize` (the map stage) depends on the posts alone; `merge` (the reduce stage) is where
the reader counts: items that mention or concern them come first. Texts are copied from the
posts, cut at sentence or clause boundaries, never invented, so the output is in the
channel's own language.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Final

from recapd import metrics
from recapd.agents.base import (
    AgentPost,
    AgentResult,
    MergeRequest,
    SummarizeRequest,
    TokenUsage,
    estimate_tokens,
)
from recapd.agents.output import clean_items, result_json
from recapd.agents.prompt import format_post_line
from recapd.agents.words import STOPWORDS, only_fillers, tokens
from recapd.config import AgentSettings
from recapd.model.recap import ActionItem, Highlight

__all__ = ["ExtractiveAgent", "Weights", "merge_results", "summarize_posts"]

MAX_HIGHLIGHTS: Final = 8
# Inferred action items; a meeting's explicit ones come on top, up to MAX_EXPLICIT_ITEMS.
MAX_ACTION_ITEMS: Final = 10
MAX_EXPLICIT_ITEMS: Final = 40
MAX_OPEN_QUESTIONS: Final = 6
# Citations per highlight: the conversation's key posts, not all of them.
MAX_CITATIONS: Final = 5
# Above this many posts the work moves to a thread, so the event loop keeps heartbeating.
_THREAD_OFFLOAD_POSTS: Final = 300
_GIST_CHARS: Final = 240

# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------

_CODE_BLOCK_RE: Final = re.compile(r"```.*?```", re.DOTALL)
_MARKUP_RE: Final = re.compile(r"(\*\*|__|~~|`)")
_SPACE_RE: Final = re.compile(r"[ \t]+")
_SENTENCE_END_RE: Final = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+|\n+")
_ABBREVIATIONS: Final = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "jr", "sr", "prof", "no", "approx"}
)
_MENTION_RE: Final = re.compile(r"(?<![\w@])@([A-Za-z0-9][\w.\-]*[\w])")
# IRC style: "bob: can you ..." addresses bob.
_ADDRESS_RE: Final = re.compile(r"^\s*@?([A-Za-z0-9][\w.\-|]*)\s*[:,]\s")


def _clean(text: str) -> str:
    """Post text made readable on one line: code blocks elided, markup stripped."""
    text = _CODE_BLOCK_RE.sub(" [code] ", text)
    text = _MARKUP_RE.sub("", text)
    return text.replace("\r", "")


def _sentences(text: str) -> list[str]:
    pieces = [p.strip() for p in _SENTENCE_END_RE.split(text) if p and p.strip()]
    merged: list[str] = []
    for piece in pieces:
        if merged:
            last_word = merged[-1].rsplit(" ", 1)[-1].rstrip(".").lower()
            # "Ms. Dawson" and "e.g. this" are not sentence ends.
            if merged[-1].endswith(".") and last_word in _ABBREVIATIONS:
                merged[-1] = f"{merged[-1]} {piece}"
                continue
        merged.append(_SPACE_RE.sub(" ", piece))
    return merged


_CLAUSE_END_RE: Final = re.compile(r"[,;:\u2014\u2013)]\s|\s[-\u2013\u2014]\s")


def _shorten(text: str, limit: int = _GIST_CHARS) -> str:
    """`text` on one line, at most `limit` characters: cut after a sentence, else after a
    clause, else between words (with "…"), never inside a word."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    window = text[: limit - 1]
    floor = limit // 2
    ends = [m.end() for m in re.finditer(r"[.!?\u3002\uff01\uff1f](?=\s)", window)]
    ends = [e for e in ends if e >= floor]
    if ends:
        return window[: ends[-1]]
    clauses = [m.start() + 1 for m in _CLAUSE_END_RE.finditer(window) if m.start() >= floor]
    if clauses:
        return window[: clauses[-1]].rstrip(" ,;:-\u2013\u2014") + "…"
    space = window.rfind(" ")
    # Only a word longer than the whole limit (a URL) is ever cut inside.
    cut = window[:space] if space > 0 else window
    return cut.rstrip(" ,;:-") + "…"


Vector = dict[str, float]


def _cosine(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    dot = sum(weight * b.get(term, 0.0) for term, weight in a.items())
    if dot == 0.0:
        return 0.0
    norm = math.sqrt(sum(w * w for w in a.values())) * math.sqrt(sum(w * w for w in b.values()))
    return dot / norm if norm else 0.0


class _Tfidf:
    """TF-IDF over a set of documents (posts): small, exact and deterministic."""

    def __init__(self, documents: Sequence[Sequence[str]]) -> None:
        df: Counter[str] = Counter()
        for doc in documents:
            df.update(set(doc))
        n = len(documents)
        self.idf = {term: math.log((n + 1) / (count + 1)) + 1.0 for term, count in df.items()}

    def vector(self, tokens: Iterable[str]) -> Vector:
        counts = Counter(tokens)
        # Sublinear tf: a word repeated five times in one post is not five times as central.
        return {t: (1.0 + math.log(c)) * self.idf.get(t, 1.0) for t, c in counts.items()}


def _add(total: Vector, vec: Vector, scale: float = 1.0) -> None:
    for term, weight in vec.items():
        total[term] = total.get(term, 0.0) + weight * scale


def _unit(vec: Vector) -> Vector:
    norm = math.sqrt(sum(w * w for w in vec.values()))
    return {t: w / norm for t, w in vec.items()} if norm else {}


# ---------------------------------------------------------------------------------------------
# Wording
# ---------------------------------------------------------------------------------------------

# Decisions are phrases, not a bare "confirmed" or "approved" anywhere in a sentence.
_DECISION_RE: Final = re.compile(
    r"\b(?:we|i|team|everyone|all|they)\s+(?:have\s+|'ve\s+|\u2019ve\s+)?"
    r"(?:decided|agreed|settled)\b"
    r"|\b(?:the\s+)?decision\s+(?:is|was|made)\b|\bfinal\s+(?:answer|call|decision)\b"
    r"|\blet['\u2019]?s\s+go\s+with\b|\b(?:we'll|we\s+will|we\s+are|we're)\s+going\s+with\b"
    r"|\b(?:we'll|we\s+will)\s+go\s+with\b|\bsigned\s+off\b|\blgtm\b|\bship\s+it\b"
    r"|\breached\s+consensus\b|\bconsensus\s+(?:is|was)\b",
    re.IGNORECASE,
)
# Meeting markup: MeetBot/MootBot commands and the plain "AGREED:"/"ACTION:" forms.
_MEETING_RE: Final = re.compile(
    r"^\s*(?:\[(?P<bracket>topic|agreed|action|info|link|idea)\]"
    r"|#(?P<hash>topic|agreed|action|info|link|idea|startmeeting|endmeeting)\b"
    r"|(?P<plain>agreed|action)\s*:)\s*(?P<rest>.*)",
    re.IGNORECASE | re.DOTALL,
)
# "X and Y to ...", "X, Y: ...", "ALL: ...", "@x ...".
_OWNERS_RE: Final = re.compile(
    r"^(?P<owners>@?[^\s,:]+(?:\s*(?:,|&|\band\b)\s*@?[^\s,:]+)*)\s*(?::\s*|\s+to\s+|\s+(?=\S))"
    r"(?P<task>.+)",
    re.IGNORECASE | re.DOTALL,
)
_EVERYONE: Final = frozenset({"all", "everyone", "everybody", "team", "all-of-us"})
# Words that open a task, never an owner's name ("Continue to monitor ...", "Need to ...").
_TASK_VERBS: Final = frozenset(
    {
        "add",
        "ask",
        "check",
        "close",
        "confirm",
        "consider",
        "contact",
        "continue",
        "create",
        "decide",
        "discuss",
        "document",
        "draft",
        "email",
        "ensure",
        "file",
        "finish",
        "fix",
        "follow",
        "get",
        "help",
        "investigate",
        "keep",
        "look",
        "make",
        "merge",
        "move",
        "need",
        "open",
        "organize",
        "plan",
        "prepare",
        "publish",
        "reach",
        "release",
        "remember",
        "remind",
        "report",
        "request",
        "review",
        "run",
        "schedule",
        "send",
        "set",
        "start",
        "talk",
        "test",
        "try",
        "update",
        "upload",
        "verify",
        "want",
        "work",
        "write",
    }
)
_ASK_YOU_RE: Final = re.compile(
    r"\b(?:can|could|would|will)\s+you\s+(?:please\s+|pls\s+|kindly\s+)?(?P<rest>.+)",
    re.IGNORECASE,
)
_ASK_ANYONE_RE: Final = re.compile(
    r"\b(?:can|could|would|will)\s+(?:someone|somebody|anyone|anybody)\s+(?:please\s+)?"
    r"(?P<rest>.+)",
    re.IGNORECASE,
)
_PLEASE_RE: Final = re.compile(r"(?:^|[,;:]\s*|@\S+\s+)(?:please|pls|kindly)\s+(?P<rest>.+)", re.I)
_SELF_RE: Final = re.compile(
    r"\b(?:i'll|i\u2019ll|i\s+will|i\s+can\s+take|i'm\s+going\s+to|i\s+am\s+going\s+to"
    r"|i'?ll\s+go\s+ahead\s+and)\s+(?P<rest>.+)",
    re.IGNORECASE,
)
_NEED_RE: Final = re.compile(
    r"^(?:so\s+|then\s+|ok,?\s+)?(?P<who>we|someone|somebody|@[\w.\-]+)\s+(?:really\s+)?"
    r"(?:need\s+to|needs\s+to|should|must|have\s+to|has\s+to)\s+(?P<rest>.+)",
    re.IGNORECASE,
)
_TODO_RE: Final = re.compile(r"^\s*(?:todo|fixme)\s*:\s*(?P<rest>.+)", re.IGNORECASE)
# What follows "I'll" or "please" that is no task: pleasantries, waiting, guessing, thinking.
_NOT_A_TASK_RE: Final = re.compile(
    r"^(?:be\b|bet\b|admit|say\b|guess|never|probably|see\b|know\b|think|try\b|wait|stand\s*by"
    r"|standby|hold\s+on|keep\s+(?:you|that)|leave|go\b|get\s+back|come\s+back|brb|let\s+you"
    r"|let\s+me|check\s+back|be\s+back|need|have\s+to|ask\b|assume|hope|take\s+(?:that|it)\s+as"
    r"|note\b|bear|remember|read\s+more|look\s+forward|enjoy|excuse|forgive|repeat|stop"
    r"|mention|just\b|also\s+(?:say|note))",
    re.IGNORECASE,
)
_STANDBY_RE: Final = re.compile(
    r"\b(?:stand\s*by|standby|one\s+(?:moment|sec|second|min)|hold\s+on|brb|be\s+right\s+back)\b",
    re.IGNORECASE,
)
# Taking a task on: "will do", "on it", "I'll handle it" (a bare "ok" only acknowledges).
_CONFIRM_RE: Final = re.compile(
    r"^\s*(?:@?\S+[:,]\s*)?(?:(?:sure|ok(?:ay)?|yes|yep)[,!.]?\s+)?(?:will\s+do|on\s+it|doing\s+it"
    r"|i'?ll\s+(?:do|take|handle|fix)\s+(?:it|that|this)|i\s+can\s+do\s+(?:it|that)"
    r"|consider\s+it\s+done)\b",
    re.IGNORECASE,
)
# Asking for something inside the conversation (show, paste, explain, help me) is talk, not a
# task a reader must track.
_CHAT_VERB_RE: Final = re.compile(
    r"^(?:(?:just|also)\s+)?(?:paste|pastebin|share|show|post|send\s+(?:me|us)|link\s+(?:me|us)"
    r"|give\s+(?:me|us)|provide|tell|explain|elaborate|clarify|describe|say|confirm|repeat|check"
    r"\s+(?:my|this|that|the\s+code)|help|dm|pm|msg|message\s+me|ping\s+me|try|run|look\s+at"
    r"\s+(?:my|this|that)|let\s+(?:us|me)|let's|be\b|view|see|think|imagine|consider|not\b"
    r"|still|have\b|get\s+(?:it|this|that)\b|take\s+(?:it|that)\b|do\s+(?:it|that|this)\b)",
    re.IGNORECASE,
)
_GREETING_RE: Final = re.compile(
    r"^\s*(?:hi|hello|hey|hiya|howdy|morning|good\s+(?:morning|evening|afternoon)|thanks"
    r"|thank\s+you|thx|ty|bye|cya|o/|\\o)\b[\s!.,:)]*(?:all|everyone|guys|folks|team)?[\s!.]*$",
    re.IGNORECASE,
)
_QUESTION_END_RE: Final = re.compile(r"[?\uff1f]\s*$")
_APOLOGY_RE: Final = re.compile(
    r"^\s*(?:@?\S+[:,]\s*)?(?:sorry|apologies|one\s+sec|reading|looking|brb|back)\b", re.I
)
# A commitment says when: "tonight", "tomorrow", "after lunch", "by Friday", "next week".
_WHEN_RE: Final = re.compile(
    r"\b(?:today|tonight|tomorrow|later|this\s+(?:morning|afternoon|evening|week)|next\s+\w+"
    r"|after\s+\w+|before\s+\w+|by\s+(?:\w+day|eod|end\s+of|the\s+end|tomorrow|next)|asap"
    r"|soon|in\s+(?:an?|the|\d+)\s+\w+|on\s+\w+day|first\s+thing)\b",
    re.IGNORECASE,
)
_TRAILING_RE: Final = re.compile(r"[\s?.!,;:]+$")
_LEAD_FILLER_RE: Final = re.compile(r"^(?:also|and|then|so|just|maybe|please|pls)\s+", re.I)


def _task_text(rest: str) -> str:
    text = _TRAILING_RE.sub("", rest.strip())
    text = _LEAD_FILLER_RE.sub("", text)
    text = re.sub(r"\s+(?:please|for\s+me|thanks|thank\s+you)$", "", text, flags=re.I)
    return text[:1].upper() + text[1:] if text else ""


def _is_question(text: str) -> bool:
    return bool(_QUESTION_END_RE.search(text.strip()))


def _is_small_talk(p: _Post) -> bool:
    """A greeting, a backchannel ("mm-hmm", "ok cool"): a line that carries no topic."""
    return p.length < 3 or bool(_GREETING_RE.match(p.text))


# ---------------------------------------------------------------------------------------------
# Posts and conversations
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Sentence:
    text: str
    vec: Vector
    length: int  # content tokens


@dataclass(slots=True)
class _Post:
    post: AgentPost
    index: int
    text: str
    sentences: list[_Sentence]
    vec: Vector
    length: int
    mentions: list[str]
    addressee: str = ""
    markup: str = ""  # topic, agreed, action, info, link, idea, startmeeting, endmeeting
    markup_text: str = ""
    score: float = 0.0
    centrality: float = 0.0

    @property
    def author(self) -> str:
        return self.post.author

    @property
    def human(self) -> bool:
        """A person's post with something to say (not a bot, noise or context)."""
        return not (self.post.is_bot or self.post.is_noise)


@dataclass(slots=True)
class _Conversation:
    key: str
    posts: list[_Post]
    head: _Post | None = None
    reply: _Post | None = None  # the answer to a question head, or the best reply
    score: float = -math.inf
    vec: Vector = field(default_factory=dict)
    # One of the pieces of a conversation too long for one highlight.
    episode: bool = False

    @property
    def first_index(self) -> int:
        return self.posts[0].index


@dataclass(slots=True)
class Weights:
    """How much each signal counts; the defaults were tuned on the quality bench."""

    centrality: float = 1.0
    mention_reader: float = 3.0
    decision: float = 0.8
    answered: float = 0.35
    engagement: float = 0.25
    participants: float = 0.2
    reactions: float = 0.1
    recency: float = 0.05
    short_penalty: float = 0.6
    redundancy: float = 0.7
    repeated: float = 0.5


# A conversation longer than this many lines (a meeting, a long debate) is told in episodes
# of about EPISODE_LINES consecutive lines, one highlight each.
_LONG_CONVERSATION: Final = 40
# Lines a highlight quotes at most (head, answer, the most central others).
_MAX_LINES: Final = 3
_EPISODE_LINES: Final = 20


def _episodes(posts: list[_Post]) -> list[list[_Post]]:
    if len(posts) <= _LONG_CONVERSATION:
        return [posts]
    count = math.ceil(len(posts) / _EPISODE_LINES)
    size = math.ceil(len(posts) / count)
    return [posts[i : i + size] for i in range(0, len(posts), size)]


class _Channel:
    """One summarize call's analysis: posts, conversations, vectors and scores."""

    def __init__(self, request: SummarizeRequest, weights: Weights) -> None:
        self.weights = weights
        ordered = sorted(request.posts, key=lambda p: (p.create_at, p.id))
        self.authors = {p.author.lower() for p in ordered}
        self.bots = {p.author.lower() for p in ordered if p.is_bot}
        texts = [_clean(p.message) for p in ordered]
        post_tokens = [tokens(self._unaddressed(t)) for t in texts]
        self.tfidf = _Tfidf(post_tokens)
        self.posts: list[_Post] = []
        for index, post in enumerate(ordered):
            text = texts[index]
            sentences = [
                _Sentence(s, self.tfidf.vector(toks), len(toks))
                for s in _sentences(text)
                for toks in [tokens(self._unaddressed(s))]
            ]
            p = _Post(
                post=post,
                index=index,
                text=text,
                sentences=sentences,
                vec=self.tfidf.vector(post_tokens[index]),
                length=len(post_tokens[index]),
                mentions=[m.lower() for m in _MENTION_RE.findall(text)],
            )
            address = _ADDRESS_RE.match(text)
            if address and address.group(1).lower() in self.authors:
                p.addressee = address.group(1)
            markup = _MEETING_RE.match(text)
            if markup and not post.is_bot:
                p.markup = (markup["bracket"] or markup["hash"] or markup["plain"]).lower()
                p.markup_text = " ".join(markup["rest"].split())
            self.posts.append(p)
        self.by_id = {p.post.id: p for p in self.posts}
        self.centroid: Vector = {}
        for p in self.posts:
            if not p.post.context_only and p.human:
                _add(self.centroid, _unit(p.vec))
        self._centroid_sq = sum(w * w for w in self.centroid.values())
        groups: dict[str, list[_Post]] = {}
        for p in self.posts:
            key = p.post.conversation_id or p.post.root_id or p.post.id
            groups.setdefault(key, []).append(p)
        self.conversations = [
            _Conversation(f"{key}:{n}" if n else key, piece, episode=len(pieces) > 1)
            for key, members in groups.items()
            for pieces in [_episodes(members)]
            for n, piece in enumerate(pieces)
        ]
        self.conversation_of = {p.post.id: c for c in self.conversations for p in c.posts}

    def _unaddressed(self, text: str) -> str:
        address = _ADDRESS_RE.match(text)
        if address and address.group(1).lower() in self.authors:
            return text[address.end() :]
        return text

    def _centrality(self, vec: Vector) -> float:
        # Leave one out: a long post must not look central just because it is in the centroid.
        unit = _unit(vec)
        others = {t: self.centroid.get(t, 0.0) - unit.get(t, 0.0) for t in vec}
        dot = sum(w * others[t] for t, w in unit.items())
        norm = math.sqrt(
            max(
                0.0,
                self._centroid_sq
                - sum(self.centroid.get(t, 0.0) ** 2 - others[t] ** 2 for t in vec),
            )
        )
        return dot / norm if norm > 1e-12 else 0.0

    def _replied_to(self, p: _Post) -> _Post | None:
        return self.by_id.get(p.post.reply_to or p.post.root_id)

    def _addressed_to(self, p: _Post) -> str:
        """Whom a post speaks to: "nick: ...", an @mention, else the author it replies to."""
        if p.addressee:
            return p.addressee
        # An explicit @mention names its person even when they have not spoken here.
        for name in _MENTION_RE.findall(p.text):
            if name.lower() not in ("channel", "here", "all") and name.lower() != p.author.lower():
                return str(name)
        parent = self._replied_to(p)
        if parent is not None and parent.author.lower() != p.author.lower():
            return parent.author
        return ""

    def _owner_ok(self, name: str) -> bool:
        return bool(name) and name.lower() not in self.bots

    # -- scores --------------------------------------------------------------------------

    def score_posts(self) -> None:
        w = self.weights
        n = len(self.posts)
        # The same text several times is boilerplate (bot banners, pasted templates).
        repeats = Counter(" ".join(p.text.lower().split()) for p in self.posts)
        for p in self.posts:
            if p.post.context_only or not p.human:
                continue
            central = max(
                (self._centrality(s.vec) for s in p.sentences), default=self._centrality(p.vec)
            )
            p.centrality = central
            score = w.centrality * central
            if _DECISION_RE.search(p.text):
                score += w.decision
            score += w.reactions * math.log1p(p.post.reaction_count)
            score += w.recency * (p.index / (n - 1) if n > 1 else 1.0)
            if p.length < 3 or _GREETING_RE.match(p.text):
                score -= w.short_penalty
            if repeats[" ".join(p.text.lower().split())] > 1:
                score -= w.repeated
            p.score = score

    def _answer(self, conv: _Conversation, head: _Post) -> _Post | None:
        """Someone else's answer to the head: a substantive direct reply, else a substantive
        line addressed to the asker, else the next line of another person ("mm-hmm" is none)."""
        asker = head.author.lower()
        later = [
            p
            for p in conv.posts
            if p.index > head.index
            and p.human
            and not p.markup
            and p.author.lower() != asker
            and not only_fillers(p.text)
        ]
        if not later:
            return None
        substantive = [p for p in later if p.length >= 3 and not _APOLOGY_RE.match(p.text)]
        direct = [p for p in substantive if self._replied_to(p) is head]
        # A decision among the direct replies is the answer that matters.
        direct.sort(key=lambda p: not _DECISION_RE.search(p.text))
        to_asker = [p for p in substantive if self._addressed_to(p).lower() == asker]
        for pool in (direct, to_asker, substantive, later):
            if pool:
                return pool[0]
        return None

    def score_conversations(self) -> None:
        w = self.weights
        for conv in self.conversations:
            people = [p for p in conv.posts if p.human and not p.markup]
            live = [p for p in people if not p.post.context_only]
            if not live:
                continue
            # A greeting opens a conversation but says nothing: the first real line leads.
            head = next((p for p in people if not _is_small_talk(p)), people[0])
            conv.head = head
            others = [p for p in people if p is not head]
            if _is_question(head.text):
                conv.reply = self._answer(conv, head)
                if conv.reply is None:
                    continue  # an open question, listed on its own
            elif others:
                conv.reply = max(
                    (p for p in others if p.author.lower() != head.author.lower()),
                    key=lambda p: (bool(_DECISION_RE.search(p.text)), p.score, -p.index),
                    default=None,
                )
            participants = len({p.author.lower() for p in people})
            replies = max(len(people) - 1, head.post.reply_count)
            score = max(p.score for p in live)
            score += w.engagement * math.log1p(replies)
            score += w.participants * math.log(max(1, participants))
            if conv.reply is not None and _is_question(head.text):
                score += w.answered
            if head.length < 3 and conv.reply is None:
                score -= w.short_penalty
            conv.score = score
            total: Vector = {}
            for p in people:
                _add(total, p.vec)
            conv.vec = total

    # -- texts ---------------------------------------------------------------------------

    def _gist(self, p: _Post, limit: int = _GIST_CHARS) -> str:
        """The best sentence of a post (a highlight quotes lines, not speeches)."""
        if len(p.sentences) <= 1:
            return _shorten(p.text, limit)

        def value(s: _Sentence) -> float:
            bonus = 0.5 if _DECISION_RE.search(s.text) else 0.0
            question = 0.3 if _is_question(s.text) else 0.0
            short = 0.3 if s.length < 3 else 0.0
            return self._centrality(s.vec) + bonus + question - short

        best = max(range(len(p.sentences)), key=lambda i: (value(p.sentences[i]), -i))
        return _shorten(p.sentences[best].text, limit)

    def _key_posts(self, conv: _Conversation) -> list[str]:
        """The conversation's key posts: head, answer, decisions, then the best scored."""
        assert conv.head is not None
        chosen = [conv.head]
        if conv.reply is not None:
            chosen.append(conv.reply)
        people = [p for p in conv.posts if p.human and p not in chosen]
        ranked = sorted(people, key=lambda p: (not _DECISION_RE.search(p.text), -p.score, p.index))
        chosen.extend(ranked[: MAX_CITATIONS - len(chosen)])
        return [p.post.id for p in sorted(chosen, key=lambda p: p.index)]

    def highlight(self, conv: _Conversation, max_lines: int = _MAX_LINES) -> Highlight:
        """The conversation in a few lines: its head, the answer (or best reply) and, for a
        long one, the most central of the rest, in the order they were said."""
        assert conv.head is not None
        lines = [conv.head] + ([conv.reply] if conv.reply is not None else [])
        people = [
            p
            for p in conv.posts
            if p.human and not p.markup and p not in lines and not _is_small_talk(p)
        ]
        size = len(people) + len(lines)
        # About the square root of its length: a long conversation is told in a few lines.
        extra = max(0, min(max_lines, round(math.sqrt(size))) - len(lines))
        if extra:
            central = sorted(people, key=lambda p: (-p.centrality, p.index))
            lines += central[:extra]
        lines.sort(key=lambda p: p.index)
        texts = [
            f"@{p.author}: {self._gist(p, _GIST_CHARS if p is conv.head else 160)}" for p in lines
        ]
        return Highlight(text=" \u2014 ".join(texts), post_ids=self._key_posts(conv))

    # -- meetings ------------------------------------------------------------------------

    def _echo(self, p: _Post) -> list[str]:
        """The bot's echo of a meeting line ("ACTION received: ..."), cited as evidence."""
        for q in self.posts[p.index + 1 : p.index + 4]:
            if (
                q.post.is_bot
                and set(q.vec) & set(p.vec)
                and len(set(q.vec) & set(p.vec)) >= min(2, len(p.vec))
            ):
                return [p.post.id, q.post.id]
        return [p.post.id]

    def _meeting_owners(self, text: str) -> tuple[str, str]:
        """(owners, task) of an action line: "X and Y to do Z" -> ("X, Y", "Do z"). A name is
        an owner when it spoke here, is written "@name", is ALL/everyone, or stands before
        "name: ..."/"name to ..." and is no verb ("Continue to monitor ..." has no owner)."""
        m = _OWNERS_RE.match(text)
        if m is None:
            return "", _task_text(text)
        names = [n.strip().lstrip("@") for n in re.split(r"\s*(?:,|&|\band\b)\s*", m["owners"])]
        names = [n for n in names if n]
        explicit_form = text[m.end("owners") :].lstrip().lower().startswith(("to ", ":"))
        task = re.sub(r"^to\s+", "", m["task"].strip(), flags=re.IGNORECASE)
        if any(n.lower() in _EVERYONE for n in names):
            return "everyone", _task_text(task)

        def is_owner(name: str) -> bool:
            if name.lower() in self.authors or m["owners"].startswith("@"):
                return True
            word = name.lower()
            return (
                explicit_form
                and word not in STOPWORDS
                and word not in _TASK_VERBS
                and not word.isdigit()
                and not word.endswith(("ing", "ed"))
            )

        if names and all(is_owner(n) for n in names):
            owners = [n for n in names if self._owner_ok(n)]
            return ", ".join(dict.fromkeys(owners)), _task_text(task)
        return "", _task_text(text)

    def meeting_items(self) -> tuple[list[Highlight], list[ActionItem]]:
        """Each meeting's topics, its decisions and its actions, in the order they came."""
        highlights: list[tuple[int, Highlight]] = []
        actions: list[ActionItem] = []
        topics: list[_Post] = []
        links: list[_Post] = []
        start: _Post | None = None

        def flush() -> None:
            nonlocal topics, links, start
            if topics:
                names = "; ".join(_shorten(t.markup_text, 80) for t in topics if t.markup_text)
                lead = f"Meeting chaired by @{start.author}" if start else "Meeting"
                # The agenda's links are evidence too, after the topics.
                cited = ([start] if start else []) + topics + links
                summary = Highlight(
                    f"{lead}, topics: {names}", [p.post.id for p in cited[:MAX_CITATIONS]]
                )
                highlights.append((cited[0].index, summary))
            topics, links, start = [], [], None

        for p in self.posts:
            if p.post.context_only or not p.markup:
                continue
            if p.markup == "startmeeting":
                flush()
                start = p
            elif p.markup == "endmeeting":
                flush()
            elif p.markup == "topic" and p.markup_text:
                p.markup_text = p.markup_text.lstrip("#: ").rstrip("?")
                # "#topic X" and "[TOPIC] X" for the same subject: one topic.
                if p.markup_text and all(
                    t.markup_text.casefold() != p.markup_text.casefold() for t in topics
                ):
                    topics.append(p)
            elif p.markup == "agreed" and p.markup_text:
                decision = Highlight(f"Agreed: {_shorten(p.markup_text, 300)}", self._echo(p))
                highlights.append((p.index, decision))
            elif p.markup == "info" and p.markup_text:
                note = Highlight(f"Noted: {_shorten(p.markup_text, 300)}", self._echo(p))
                highlights.append((p.index, note))
            elif p.markup == "link" and p.markup_text:
                links.append(p)
            elif p.markup == "action" and p.markup_text:
                owner, task = self._meeting_owners(p.markup_text)
                if task:
                    actions.append(
                        ActionItem(_shorten(task, 300), owner, self._echo(p), explicit=True)
                    )
        flush()
        # In the order they happened: a meeting's summary before its decisions.
        return [h for _, h in sorted(highlights, key=lambda x: x[0])], actions

    # -- action items --------------------------------------------------------------------

    def _request(self, p: _Post) -> tuple[str, str] | None:
        """(task, addressee) of a request in a post: "please ...", "can you ...?",
        "could someone ...?"; the addressee may be ""."""
        for sentence in p.sentences:
            s = sentence.text
            for regex, anyone in (
                (_PLEASE_RE, False),
                (_ASK_YOU_RE, False),
                (_ASK_ANYONE_RE, True),
            ):
                m = regex.search(s)
                if m is None or _NOT_A_TASK_RE.match(m["rest"]) or _STANDBY_RE.search(s):
                    continue
                task = _task_text(m["rest"])
                if not self._task_ok(task):
                    continue
                return task, ("" if anyone else self._addressed_to(p))
        return None

    def _inferred_action(self, p: _Post) -> tuple[float, ActionItem] | None:
        if p.post.context_only or not p.human or p.markup:
            return None
        text = p.text
        if m := _TODO_RE.match(text):
            return 2.0, ActionItem(_task_text(m["rest"]), "", [p.post.id])
        request = self._request(p)
        if request is not None:
            task, owner = request
            accepted = self._accepted_by(p, owner)
            if accepted is not None:
                return 3.0, ActionItem(task, accepted.author, [p.post.id, accepted.post.id])
            if not _is_question(text) and owner and self._owner_ok(owner):
                # "@carol please rotate the keys": an imperative addressed to someone.
                return 2.5, ActionItem(task, owner, [p.post.id])
            return None  # an unanswered ask is an open question, not a task
        if _is_question(text):
            return None  # "we should ... by... is it next Thursday?" asks, it does not assign
        for sentence in p.sentences:
            s = sentence.text
            if _is_question(s) or _STANDBY_RE.search(s):
                continue
            if (mine := _SELF_RE.search(s)) and not _NOT_A_TASK_RE.match(mine["rest"]):
                task = _task_text(mine["rest"])
                # A commitment by the one asked, or one that says when; else it is talk
                # ("I'll take the easy way out").
                committed = self._was_asked(p) or bool(_WHEN_RE.search(mine["rest"]))
                if committed and self._task_ok(task):
                    return 2.0, ActionItem(task, p.author, [p.post.id])
            if (need := _NEED_RE.match(s)) and not _NOT_A_TASK_RE.match(need["rest"]):
                who = need["who"].lower()
                owner = who[1:] if who.startswith("@") else ""
                task = _task_text(need["rest"])
                if self._task_ok(task) and (not owner or self._owner_ok(owner)):
                    return 1.2, ActionItem(task, owner, [p.post.id])
        return None

    def _task_ok(self, task: str) -> bool:
        """A task a reader can act on: a few words, two of them with content, not talk."""
        return (
            len(task.split()) >= 3
            and len(tokens(task)) >= 2
            and not _CHAT_VERB_RE.match(task)
            and not _NOT_A_TASK_RE.match(task)
        )

    def _was_asked(self, p: _Post) -> bool:
        """Whether the post answers someone else's question or request to its author."""
        parent = self._replied_to(p)
        if parent is None or parent.author.lower() == p.author.lower() or not parent.human:
            return False
        to_author = self._addressed_to(parent).lower() == p.author.lower()
        asks = _is_question(parent.text) or self._request(parent) is not None
        return asks and (to_author or not self._addressed_to(parent))

    def _accepted_by(self, p: _Post, addressee: str) -> _Post | None:
        """The post of the one asked (or anyone, for "could someone") saying they will."""
        conv = self.conversation_of[p.post.id]
        later = [q for q in conv.posts if q.index > p.index and q.human]
        later += [q for q in self.posts[p.index + 1 : p.index + 3] if q.human and q not in later]
        for q in later:
            if q.author.lower() == p.author.lower():
                continue
            if addressee and q.author.lower() != addressee.lower():
                continue
            if _CONFIRM_RE.match(q.text) or (
                (mine := _SELF_RE.search(q.text)) and not _NOT_A_TASK_RE.match(mine["rest"])
            ):
                return q if self._owner_ok(q.author) else None
        return None

    def action_items(self, limit: int) -> list[ActionItem]:
        candidates: list[tuple[float, int, ActionItem]] = []
        used: set[str] = set()
        for p in self.posts:
            if p.post.id in used:
                continue
            found = self._inferred_action(p)
            if found is None or not found[1].text:
                continue
            strength, item = found
            item.text = _shorten(item.text, 200)
            used.update(item.post_ids)
            candidates.append((strength + p.score, p.index, item))
        candidates.sort(key=lambda c: (-c[0], c[1]))
        return [item for _, _, item in candidates[:limit]]

    # -- highlights and open questions ----------------------------------------------------

    def mention_highlights(self, chosen: Sequence[Highlight], limit: int) -> list[Highlight]:
        """Highlights of the conversations not chosen that @mention someone, for that person."""
        taken = {p for h in chosen for p in h.post_ids}
        out: list[Highlight] = []
        for conv in self.conversations:
            if conv.head is None or conv.score == -math.inf or conv.head.post.id in taken:
                continue
            for p in conv.posts:
                named = [m for m in p.mentions if m not in ("channel", "here", "all")]
                if p.human and not p.post.context_only and named and p.length >= 3:
                    head = conv.head if p is conv.head else p
                    out.append(Highlight(f"@{head.author}: {self._gist(head)}", [head.post.id]))
                    break
            if len(out) >= limit:
                break
        return out

    def highlights(self, limit: int) -> list[Highlight]:
        w = self.weights
        pool = [c for c in self.conversations if c.head is not None and c.score > -math.inf]
        chosen: list[_Conversation] = []
        vecs = {c.key: _unit(c.vec) for c in pool}
        while pool and len(chosen) < limit:
            # Maximal marginal relevance: a conversation repeating a chosen one is worth less.
            def gain(c: _Conversation) -> float:
                overlap = max((_cosine(vecs[c.key], vecs[o.key]) for o in chosen), default=0.0)
                return c.score - w.redundancy * overlap

            best = max(pool, key=lambda c: (gain(c), -c.first_index))
            pool.remove(best)
            if chosen and max(_cosine(vecs[best.key], vecs[o.key]) for o in chosen) >= _TWIN:
                continue  # a near-duplicate of a chosen one
            chosen.append(best)
        chosen.sort(key=lambda c: c.first_index)
        # Few whole conversations may each say a little more; many, or episodes, stay short.
        few = len(chosen) <= 2
        return [
            self.highlight(c, _MAX_LINES if few and not c.episode else _MAX_LINES - 1)
            for c in chosen
        ]

    def open_questions(self, limit: int) -> list[Highlight]:
        """Questions that opened a conversation nobody else answered, newest first (a
        greeting before the question, or a thread root shown for context, does not count)."""
        found: list[Highlight] = []
        for conv in reversed(self.conversations):
            people = [
                p
                for p in conv.posts
                if p.human and not p.markup and not p.post.context_only and not _is_small_talk(p)
            ]
            if not people:
                continue
            head = people[0]
            if not _is_question(head.text) or head.length < 3:
                continue
            if self._answer(conv, head) is not None:
                continue
            found.append(
                Highlight(f"@{head.author}: {self._gist(head)}", [p.post.id for p in people[:3]])
            )
            if len(found) >= limit:
                break
        return found


def _same_task(a: ActionItem, b: ActionItem) -> bool:
    """Whether two action items are one task (shared posts, or the same words and owner)."""
    if set(a.post_ids) & set(b.post_ids):
        return True
    wa, wb = set(tokens(a.text)), set(tokens(b.text))
    overlap = len(wa & wb) / max(1, min(len(wa), len(wb)))
    return overlap >= 0.6 and bool(set(a.owners) & set(b.owners) or not a.owner)


# Two highlights this similar (cosine of their word vectors) say the same thing.
_TWIN: Final = 0.6


def _highlight_count(conversations: int) -> int:
    """More items for a longer window: about the square root of the number of conversations."""
    return max(1, min(MAX_HIGHLIGHTS, round(math.sqrt(conversations))))


def summarize_posts(
    request: SummarizeRequest,
    *,
    weights: Weights | None = None,
    max_highlights: int | None = None,
    max_action_items: int = MAX_ACTION_ITEMS,
) -> AgentResult:
    """Summarize synchronously (what ExtractiveAgent.summarize runs); uses no reader field."""
    if not request.posts:
        return AgentResult()
    channel = _Channel(request, weights or Weights())
    channel.score_posts()
    channel.score_conversations()
    candidates = sum(1 for c in channel.conversations if c.score > -math.inf)
    limit = max_highlights if max_highlights is not None else _highlight_count(candidates)
    meeting_highlights, meeting_actions = channel.meeting_items()
    chosen = channel.highlights(limit)
    highlights = meeting_highlights + chosen
    mentions = channel.mention_highlights(chosen, MAX_HIGHLIGHTS)
    inferred = [
        a
        for a in channel.action_items(max_action_items)
        if not any(_same_task(a, m) for m in meeting_actions)
    ]
    actions = meeting_actions[:MAX_EXPLICIT_ITEMS] + inferred
    questions = channel.open_questions(MAX_OPEN_QUESTIONS)
    allowed = {p.id for p in request.posts}
    clean = clean_items(highlights, actions, allowed, open_questions=questions, max_items=_MAX_LIST)
    kept_mentions = clean_items(mentions, [], allowed).highlights
    prompt_tokens = sum(estimate_tokens(format_post_line(p)) for p in request.posts)
    completion_tokens = estimate_tokens(
        result_json(clean.highlights, clean.action_items, clean.open_questions)
    )
    return AgentResult(
        clean.highlights,
        clean.action_items,
        TokenUsage(prompt_tokens, completion_tokens),
        clean.open_questions,
        kept_mentions,
    )


# Bound of any one list after clean-up: explicit meeting items plus the inferred ones.
_MAX_LIST: Final = MAX_EXPLICIT_ITEMS + MAX_HIGHLIGHTS + MAX_ACTION_ITEMS

# ---------------------------------------------------------------------------------------------
# Merge (the reader's stage)
# ---------------------------------------------------------------------------------------------

_DUPLICATE_COSINE: Final = 0.5
# Highlights made from meeting markup: kept whole, before the conversations.
_EXPLICIT_HIGHLIGHT_RE: Final = re.compile(
    r"^(?:Agreed: |Noted: |Meeting(?: chaired by @\S+)?, topics: )"
)


_MEETING_GOES_ON = "Meeting, topics: "


def _join_meetings(items: list[Highlight]) -> list[Highlight]:
    """A meeting cut by a part boundary comes back as "Meeting, topics: ..." (the part saw no
    #startmeeting): its topics join the meeting before it."""
    out: list[Highlight] = []
    for h in items:
        last_meeting = next((o for o in reversed(out) if o.text.startswith("Meeting")), None)
        if h.text.startswith(_MEETING_GOES_ON) and last_meeting is not None:
            last_meeting.text += "; " + h.text.removeprefix(_MEETING_GOES_ON)
            room = MAX_CITATIONS - len(last_meeting.post_ids)
            last_meeting.post_ids += [p for p in h.post_ids if p not in last_meeting.post_ids][
                : max(0, room)
            ]
            continue
        out.append(Highlight(h.text, list(h.post_ids)))
    return out


@dataclass(slots=True)
class _Item:
    item: Highlight | ActionItem
    vec: Vector
    score: float
    position: tuple[int, int]  # (part, index in the part)
    for_reader: bool


def _owners_agree(a: Highlight | ActionItem, b: Highlight | ActionItem) -> bool:
    """Two items may be one only if they do not name different owners (alice's task and
    bob's alike-worded one are two tasks)."""
    if not isinstance(a, ActionItem) or not isinstance(b, ActionItem):
        return True
    return not a.owner or not b.owner or a.owner.casefold() == b.owner.casefold()


def _concerns(item: Highlight | ActionItem, reader: str) -> bool:
    if not reader:
        return False
    if isinstance(item, ActionItem) and reader in {o.lower() for o in item.owners}:
        return True
    text = item.text.lower()
    # "@al" is not "@alice" nor "@al.smith"; "thanks @al." is @al.
    mentioned = re.search(rf"@{re.escape(reader)}(?![\w\-]|\.\w)", text) is not None
    return mentioned and not text.startswith(f"@{reader}:")


def _merge_list(
    items: Sequence[tuple[int, int, Highlight | ActionItem]],
    reader: str,
    limit: int,
    weights: Weights,
    *,
    ranked: bool,
) -> list[Highlight | ActionItem]:
    """Re-rank items of all partials, fold near-duplicates into one (citations kept).

    `ranked`: the partials list their items best first (action items); otherwise they are in
    story order (highlights), and so is the result, after what concerns the reader.
    """
    if not items:
        return []
    token_lists = [tokens(item.text) for _, _, item in items]
    tfidf = _Tfidf(token_lists)
    vecs = [_unit(tfidf.vector(tokens)) for tokens in token_lists]
    centroid: Vector = {}
    for vec in vecs:
        _add(centroid, vec)
    scored: list[_Item] = []
    for (part, index, item), vec in zip(items, vecs, strict=True):
        score = weights.centrality * _cosine(vec, centroid)
        # An item citing many posts (a conversation) drew attention.
        score += weights.engagement * math.log1p(len(item.post_ids))
        if ranked:
            score += 0.3 / (1 + index)
        if _DECISION_RE.search(item.text):
            score += weights.decision
        for_reader = _concerns(item, reader)
        if for_reader:
            score += weights.mention_reader
        scored.append(_Item(item, vec, score, (part, index), for_reader))
    kept: list[_Item] = []
    for candidate in sorted(scored, key=lambda c: (-c.score, c.position)):
        twin = next(
            (
                k
                for k in kept
                if _cosine(k.vec, candidate.vec) >= _DUPLICATE_COSINE
                and _owners_agree(k.item, candidate.item)
            ),
            None,
        )
        if twin is None:
            kept.append(replace(candidate, item=_copy(candidate.item)))
            continue
        room = MAX_CITATIONS - len(twin.item.post_ids)
        extra = [p for p in candidate.item.post_ids if p not in twin.item.post_ids]
        twin.item.post_ids.extend(extra[: max(0, room)])
        if isinstance(twin.item, ActionItem) and isinstance(candidate.item, ActionItem):
            twin.item.owner = twin.item.owner or candidate.item.owner
    chosen = kept[:limit]
    if not ranked:
        chosen.sort(key=lambda k: (not k.for_reader, k.position))
    return [k.item for k in chosen]


def _copy(item: Highlight | ActionItem) -> Highlight | ActionItem:
    if isinstance(item, ActionItem):
        return ActionItem(item.text, item.owner, list(item.post_ids), explicit=item.explicit)
    return Highlight(item.text, list(item.post_ids))


def merge_results(
    request: MergeRequest,
    *,
    weights: Weights | None = None,
    max_highlights: int = MAX_HIGHLIGHTS,
    max_action_items: int = MAX_ACTION_ITEMS,
) -> AgentResult:
    """Merge synchronously (what ExtractiveAgent.merge runs): the partials' items for one
    reader, explicit meeting items first and whole, what concerns the reader next."""
    w = weights or Weights()
    reader = request.reader_username.lstrip("@").lower()
    explicit_h: list[Highlight] = []
    explicit_a: list[ActionItem] = []
    highlights: list[tuple[int, int, Highlight | ActionItem]] = []
    actions: list[tuple[int, int, Highlight | ActionItem]] = []
    questions: list[Highlight] = []
    for part, partial in enumerate(request.partials):
        for rank, h in enumerate(partial.highlights):
            if _EXPLICIT_HIGHLIGHT_RE.match(h.text):
                explicit_h.append(h)
            else:
                highlights.append((part, rank, h))
        for rank, a in enumerate(partial.action_items):
            if a.explicit:
                explicit_a.append(a)
            else:
                actions.append((part, rank, a))
        questions.extend(partial.open_questions)
        # Left out for everyone else, shown to the one they mention.
        highlights.extend(
            (part, len(partial.highlights) + rank, h)
            for rank, h in enumerate(partial.mentions)
            if _concerns(h, reader)
        )
    if not (highlights or actions or explicit_h or explicit_a or questions):
        return AgentResult()
    explicit_h = _join_meetings(explicit_h)
    # At least as many as the fullest part had, more when there were many parts.
    widest = max(
        sum(1 for h in p.highlights if not _EXPLICIT_HIGHLIGHT_RE.match(h.text))
        for p in request.partials
    )
    for_reader = sum(1 for _, _, h in highlights if _concerns(h, reader))
    h_limit = min(max_highlights, max(widest, round(math.sqrt(2 * len(highlights)))))
    h_limit = max(h_limit, min(max_highlights, widest + for_reader))
    merged_h = [
        h
        for h in _merge_list(highlights, reader, h_limit, w, ranked=False)
        if isinstance(h, Highlight)
    ]
    merged_a = [
        a
        for a in _merge_list(actions, reader, max_action_items, w, ranked=True)
        if isinstance(a, ActionItem)
    ]
    # The reader's own explicit actions first; explicit ones keep their order otherwise.
    explicit_a.sort(key=lambda a: not _concerns(a, reader))
    # A question some other part's highlight cites was answered there.
    answered = {p for h in [*explicit_h, *merged_h] for p in h.post_ids}
    open_q = [q for q in questions if not set(q.post_ids[:1]) & answered]
    open_q.sort(key=lambda q: not _concerns(q, reader))
    everything: list[Highlight | ActionItem] = [*explicit_h, *explicit_a, *questions]
    everything += [m for partial in request.partials for m in partial.mentions]
    everything += [item for _, _, item in [*highlights, *actions]]
    allowed = {p for item in everything for p in item.post_ids}
    clean = clean_items(
        [*explicit_h[:MAX_EXPLICIT_ITEMS], *merged_h],
        [*explicit_a[:MAX_EXPLICIT_ITEMS], *merged_a],
        allowed,
        open_questions=open_q[:MAX_OPEN_QUESTIONS],
        max_items=_MAX_LIST,
    )
    prompt_tokens = sum(
        estimate_tokens(result_json(p.highlights, p.action_items, p.open_questions))
        for p in request.partials
    )
    completion_tokens = estimate_tokens(
        result_json(clean.highlights, clean.action_items, clean.open_questions)
    )
    return AgentResult(
        clean.highlights,
        clean.action_items,
        TokenUsage(prompt_tokens, completion_tokens),
        clean.open_questions,
    )


# The version of summarize's ranking, part of every cached part's key.
EXTRACTIVE_VERSION: Final = "4"


class ExtractiveAgent:
    """The offline agent: no model, no network, the same answer for the same posts."""

    def __init__(
        self,
        agent_id: str = "extractive",
        settings: AgentSettings | None = None,
        *,
        weights: Weights | None = None,
    ) -> None:
        self.id = agent_id
        self.context_tokens = (settings or AgentSettings()).context_tokens
        self.weights = weights or Weights()
        # Bump when summarize's output changes, so cached parts of the old version are unused.
        self.cache_version = f"extractive:{EXTRACTIVE_VERSION}"

    async def summarize(self, request: SummarizeRequest) -> AgentResult:
        """Highlights, action items and open questions picked from the request's posts."""
        with self._metered("summarize"):
            if len(request.posts) > _THREAD_OFFLOAD_POSTS:
                return await asyncio.to_thread(summarize_posts, request, weights=self.weights)
            return summarize_posts(request, weights=self.weights)

    async def merge(self, request: MergeRequest) -> AgentResult:
        """The partials' items ranked for the reader, near-duplicates folded together."""
        with self._metered("merge"):
            return merge_results(request, weights=self.weights)

    @contextmanager
    def _metered(self, operation: str) -> Iterator[None]:
        # Counted like an LLM call, so dashboards compare agents; it uses no tokens.
        with metrics.agent_call(self.id, operation):
            try:
                yield
            except Exception:
                metrics.record_agent_error(self.id, "internal")
                raise
