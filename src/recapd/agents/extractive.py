"""The `extractive` agent: offline and deterministic, it picks highlights and action items from
the posts themselves, so recapd makes useful recaps with no model at all.

Ranking signals: mentions of the reader, replies and reactions, decision wording, requests,
questions left open, recency, a new conversation starting, and centrality (TF-IDF cosine to
the channel's centroid). A thread is one unit: it yields at most one highlight (citing all its
posts) and at most one action item. Texts are copied from the posts, never invented, so the
output is in the channel's own language.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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
from recapd.config import AgentSettings
from recapd.model.recap import ActionItem, Highlight

__all__ = ["ExtractiveAgent", "Weights", "merge_results", "summarize_posts"]

MAX_HIGHLIGHTS: Final = 8
MAX_ACTION_ITEMS: Final = 8
# Above this many posts the work moves to a thread, so the event loop keeps heartbeating.
_THREAD_OFFLOAD_POSTS: Final = 300
_GIST_CHARS: Final = 240

# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------

_STOPWORD_TEXT: Final = """
    a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do
    does doesn't doing don't down during each few for from further get got had hadn't has
    hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his
    how how's i i'd i'll i'm i've if in into is isn't it it's its itself just let's like me
    more most mustn't my myself no nor not now of off oh ok okay on once only or other ought
    our ours ourselves out over own really same shan't she she'd she'll she's should shouldn't
    so some such than that that's the their theirs them themselves then there there's these
    they they'd they'll they're they've this those through to too under until up us very was
    wasn't we we'd we'll we're we've well were weren't what what's when when's where where's
    which while who who's whom why why's will with won't would wouldn't yeah yes yep you you'd
    you'll you're you've your yours yourself yourselves hi hello hey thanks thank please sure
    lol one two go going know think want see say said right good great much many way thing
    things something anything dont im ive youre thats"""
_STOPWORDS: Final = frozenset(_STOPWORD_TEXT.split())

_WORD_RE: Final = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?")
_URL_RE: Final = re.compile(r"https?://\S+|www\.\S+")
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


def _stem(word: str) -> str:
    """A light suffix stripper: enough to match "deploy", "deploys", "deployed", "deploying"."""
    word = word.replace("\u2019", "'")
    if word.endswith("'s"):
        word = word[:-2]
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def _tokens(text: str) -> list[str]:
    words = _WORD_RE.findall(_URL_RE.sub(" ", text).lower())
    return [
        _stem(w)
        for w in words
        if w.replace("\u2019", "'") not in _STOPWORDS and (len(w) > 1 or w.isdigit())
    ]


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


def _shorten(text: str, limit: int = _GIST_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:-") + "…"


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

_DECISION_RE: Final = re.compile(
    r"\b(?:we|i|team|everyone|all)\s+(?:have\s+|'ve\s+|\u2019ve\s+)?(?:decided|agreed|settled)\b"
    r"|\bagreed\b|#agreed\b|\bdecision\b|\bdecided\b"
    r"|\blet'?s\s+go\s+with\b|\blet\u2019s\s+go\s+with\b|\b(?:we'll|we\s+will)\s+go\s+with\b"
    r"|\bgoing\s+with\b|\bapproved?\b|\bsigned\s+off\b|\blgtm\b|\bship\s+it\b|\bconsensus\b"
    r"|\bconfirmed\b|\bresolved\b|\bfinal\s+(?:answer|call|decision)\b",
    re.IGNORECASE,
)
_TOPIC_RE: Final = re.compile(r"^\s*(?:\[topic\]|#topic\b|topic:|new topic:)", re.IGNORECASE)
_MOOT_ACTION_RE: Final = re.compile(
    r"^\s*(?:\[action\]|#action\b|action:|action\s+received:|todo:|todo\b|fixme:)\s*(?P<rest>.+)",
    re.IGNORECASE,
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
    r"\b(?:i'll|i\u2019ll|i\s+will|i\s+can\s+take|i'm\s+going\s+to|i\s+am\s+going\s+to|let\s+me"
    r"|i'?ll\s+go\s+ahead\s+and)\s+(?P<rest>.+)",
    re.IGNORECASE,
)
_NEED_RE: Final = re.compile(
    r"\b(?P<who>we|you|someone|somebody|i|@[\w.\-]+)\s+(?:really\s+)?"
    r"(?:need\s+to|needs\s+to|should|must|have\s+to|has\s+to|ought\s+to)\s+(?P<rest>.+)",
    re.IGNORECASE,
)
_NOT_A_TASK_RE: Final = re.compile(
    r"^(?:be|bet|admit|say|guess|never|probably|see\s+what|know|think|check\s+back\s+later)\b",
    re.IGNORECASE,
)
_CONFIRM_RE: Final = re.compile(
    r"^\s*(?:will\s+do|on\s+it|done|sure|ok(?:ay)?|yes|yep|yup|ack|i'?ll\s+(?:do|take|handle)"
    r"\s+(?:it|that|this)|i\s+can\s+do\s+(?:it|that))\b",
    re.IGNORECASE,
)
_TRAILING_RE: Final = re.compile(r"[\s?.!,;:]+$")
_LEAD_FILLER_RE: Final = re.compile(r"^(?:also|and|then|so|just|maybe|please|pls)\s+", re.I)


@dataclass(slots=True)
class _Action:
    text: str
    owner: str
    strength: float


def _task_text(rest: str) -> str:
    text = _TRAILING_RE.sub("", rest.strip())
    text = _LEAD_FILLER_RE.sub("", text)
    text = re.sub(r"\s+(?:please|for\s+me|thanks|thank\s+you)$", "", text, flags=re.I)
    return text[:1].upper() + text[1:] if text else ""


# ---------------------------------------------------------------------------------------------
# Posts and units
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
    thread: str
    mentions: list[str]
    addressee: str = ""
    score: float = 0.0
    centrality: float = 0.0


@dataclass(slots=True)
class _Unit:
    key: str
    posts: list[_Post]
    score: float = 0.0
    vec: Vector = field(default_factory=dict)


@dataclass(slots=True)
class Weights:
    """How much each signal counts; the defaults were tuned on the quality bench."""

    centrality: float = 1.0
    mention_reader: float = 3.0
    mention_all: float = 0.3
    decision: float = 0.8
    topic: float = 0.35
    request: float = 0.25
    open_question: float = 0.6
    engagement: float = 0.12
    recency: float = 0.05
    conversation_start: float = 0.4
    short_penalty: float = 0.5
    redundancy: float = 0.7
    covered_by_action: float = 0.35
    repeated: float = 0.5


# A new conversation starts after this much silence.
_GAP_MS: Final = 60 * 60 * 1000


class _Channel:
    """One summarize call's analysis: posts, threads, vectors and scores."""

    def __init__(self, request: SummarizeRequest, weights: Weights) -> None:
        self.request = request
        self.weights = weights
        # The map stage is reader-independent (agents/base.py): ranking for the reader
        # happens in merge.
        self.reader = ""
        ordered = sorted(request.posts, key=lambda p: (p.create_at, p.id))
        self.authors = {p.author.lower() for p in ordered}
        texts = [_clean(p.message) for p in ordered]
        sentence_texts = [_sentences(t) for t in texts]
        # "bob: ..." addresses bob; the name is not what the post is about.
        tokens = [_tokens(self._unaddressed(t)) for t in texts]
        self.tfidf = _Tfidf(tokens)
        self.posts: list[_Post] = []
        for index, post in enumerate(ordered):
            sentences = [
                _Sentence(s, self.tfidf.vector(toks), len(toks))
                for s in sentence_texts[index]
                for toks in [_tokens(self._unaddressed(s))]
            ]
            address = _ADDRESS_RE.match(texts[index])
            addressee = ""
            if address and address.group(1).lower() in self.authors:
                addressee = address.group(1)
            mentions = [m.lower() for m in _MENTION_RE.findall(texts[index])]
            self.posts.append(
                _Post(
                    post=post,
                    index=index,
                    text=texts[index],
                    sentences=sentences,
                    vec=self.tfidf.vector(tokens[index]),
                    length=len(tokens[index]),
                    thread=post.root_id or post.id,
                    mentions=mentions,
                    addressee=addressee,
                )
            )
        self.centroid: Vector = {}
        for p in self.posts:
            if not p.post.context_only:
                _add(self.centroid, _unit(p.vec))
        self._centroid_sq = sum(w * w for w in self.centroid.values())
        units: dict[str, _Unit] = {}
        for p in self.posts:
            units.setdefault(p.thread, _Unit(p.thread, [])).posts.append(p)
        self.units = list(units.values())
        self.threads = {unit.key: unit.posts for unit in self.units}
        self._actions: dict[int, _Action | None] = {}
        # Threads that produced an action item: a highlight repeating it is worth less.
        self.action_units: set[str] = set()

    def _unaddressed(self, text: str) -> str:
        address = _ADDRESS_RE.match(text)
        if address and address.group(1).lower() in self.authors:
            return text[address.end() :]
        return text

    # -- scores --------------------------------------------------------------------------

    def _centrality(self, vec: Vector) -> float:
        # Leave one out: a long post must not look central just because it is in the centroid.
        unit = _unit(vec)
        others = {t: self.centroid.get(t, 0.0) - unit.get(t, 0.0) for t in vec}
        dot = sum(w * others[t] for t, w in unit.items())
        norm = math.sqrt(
            self._centroid_sq - sum(self.centroid.get(t, 0.0) ** 2 - others[t] ** 2 for t in vec)
        )
        return dot / norm if norm > 1e-12 else 0.0

    def _mentions_reader(self, p: _Post) -> bool:
        if not self.reader or p.post.author.lower() == self.reader:
            return False
        return self.reader in p.mentions or p.addressee.lower() == self.reader

    def _reader_bonus(self, p: _Post) -> float:
        """An @mention of the reader counts fully; IRC-style "reader: ..." is mostly chat."""
        if not self._mentions_reader(p) or p.length < 3:
            # "@reader: yes" is a mention, but not news.
            return 0.0
        if self.reader in p.mentions:
            return self.weights.mention_reader
        return self.weights.mention_reader / 3

    def _answered(self, p: _Post) -> bool:
        """Whether someone else replied (in its thread, or in the next few posts)."""
        asker = p.post.author.lower()
        in_thread = [q for q in self.threads[p.thread] if q.index > p.index]
        if any(q.post.author.lower() != asker for q in in_thread):
            return True
        if p.post.reply_count > 0 and not p.post.root_id:
            return True
        if p.post.root_id:
            return False
        following = [
            q for q in self.posts[p.index + 1 : p.index + 4] if q.post.author.lower() != asker
        ]
        for q in following:
            near = q.post.create_at - p.post.create_at <= _GAP_MS
            related = bool(set(q.vec) & set(p.vec)) or q.addressee.lower() == asker
            if near and (related or q.index == p.index + 1 or asker in q.mentions):
                return True
        return False

    def _question(self, p: _Post) -> bool:
        return any(s.text.endswith(("?", "\uff1f")) and s.length >= 2 for s in p.sentences)

    def score_posts(self) -> None:
        w = self.weights
        n = len(self.posts)
        # The same text several times is boilerplate (bot banners, pasted templates).
        repeats = Counter(" ".join(p.text.lower().split()) for p in self.posts)
        for p in self.posts:
            if p.post.context_only:
                continue
            text = p.text
            # A highlight shows a post's best sentence, so that sentence is what must be central.
            p.centrality = max(
                (self._centrality(sentence.vec) for sentence in p.sentences),
                default=self._centrality(p.vec),
            )
            score = w.centrality * p.centrality
            reader_bonus = self._reader_bonus(p)
            if reader_bonus:
                score += reader_bonus
            elif any(m in ("channel", "here", "all") for m in p.mentions):
                score += w.mention_all
            if _DECISION_RE.search(text):
                score += w.decision
            if _TOPIC_RE.search(text):
                score += w.topic
            if self.action_of(p) is not None:
                score += w.request
            if self._question(p) and not self._answered(p):
                score += w.open_question
            score += w.engagement * math.log1p(p.post.reaction_count) * 0.5
            score += w.recency * (p.index / (n - 1) if n > 1 else 1.0)
            previous = self.posts[p.index - 1] if p.index else None
            if previous is None or p.post.create_at - previous.post.create_at > _GAP_MS:
                score += w.conversation_start
            if p.length < 3:
                score -= w.short_penalty
            if repeats[" ".join(p.text.lower().split())] > 1:
                score -= w.repeated
            p.score = score

    def score_units(self) -> None:
        w = self.weights
        for unit in self.units:
            live = [p for p in unit.posts if not p.post.context_only]
            if not live:
                unit.score = -math.inf
                continue
            root = unit.posts[0].post
            replies = max(root.reply_count if not root.root_id else 0, len(unit.posts) - 1)
            unit.score = max(p.score for p in live) + w.engagement * math.log1p(replies)
            total: Vector = {}
            for p in unit.posts:
                _add(total, p.vec)
            unit.vec = total

    # -- texts ---------------------------------------------------------------------------

    def _gist(self, p: _Post, limit: int = _GIST_CHARS) -> str:
        """The best sentence of a post, or the whole post when it is short."""
        if not p.sentences:
            return _shorten(p.text, limit)
        if len(p.sentences) == 1:
            return _shorten(" ".join(s.text for s in p.sentences), limit)

        def value(s: _Sentence) -> float:
            bonus = 0.5 if _DECISION_RE.search(s.text) else 0.0
            if self.reader and f"@{self.reader}" in s.text.lower():
                bonus += 1.0
            short = 0.3 if s.length < 3 else 0.0
            return self._centrality(s.vec) + bonus - short

        best = max(range(len(p.sentences)), key=lambda i: (value(p.sentences[i]), -i))
        return _shorten(p.sentences[best].text, limit)

    def highlight(self, unit: _Unit) -> Highlight:
        live = [p for p in unit.posts if not p.post.context_only]
        head = unit.posts[0]
        text = f"@{head.post.author}: {self._gist(head)}"
        others = [p for p in live if p is not head]
        if others:
            # The reply that matters most: a decision, else the best-scored one.
            best = max(
                others,
                key=lambda p: (bool(_DECISION_RE.search(p.text)), p.score, -p.index),
            )
            text += f" — @{best.post.author}: {self._gist(best, 160)}"
        return Highlight(text=text, post_ids=[p.post.id for p in unit.posts])

    # -- action items --------------------------------------------------------------------

    def _previous_other(self, p: _Post) -> str:
        """Whom a "can you" addresses: the last other author in the thread (or channel)."""
        asker = p.post.author.lower()
        if p.addressee:
            return p.addressee
        if p.post.root_id:
            pool = [q for q in self.threads[p.thread] if q.index < p.index]
        else:
            pool = self.posts[max(0, p.index - 5) : p.index]
        for q in reversed(pool[-5:]):
            if q.post.author.lower() != asker:
                return q.post.author
        return ""

    def _owner_from(self, text: str, author: str) -> str:
        mention: str
        for mention in _MENTION_RE.findall(text):
            if mention.lower() not in ("channel", "here", "all") and mention.lower() != author:
                return mention
        return ""

    def action_of(self, p: _Post) -> _Action | None:
        """The request or commitment in a post, if it has one (strongest wording wins)."""
        if p.index not in self._actions:
            self._actions[p.index] = None if p.post.context_only else self._find_action(p)
        return self._actions[p.index]

    def _find_action(self, p: _Post) -> _Action | None:
        author = p.post.author
        found: list[_Action] = []
        for sentence in p.sentences:
            s = sentence.text
            moot = _MOOT_ACTION_RE.match(s)
            if moot:
                rest = moot.group("rest")
                owner = ""
                first, _, tail = rest.partition(" ")
                name = first.strip(":,").lstrip("@")
                if first.startswith("@") or (
                    name.lower() in self.authors or tail.lower().startswith("to ")
                ):
                    owner = name
                    rest = tail[3:] if tail.lower().startswith("to ") else tail
                found.append(_Action(_task_text(rest), owner, 3.0))
                continue
            ask = _ASK_YOU_RE.search(s)
            if ask:
                owner = self._owner_from(s, author.lower()) or self._previous_other(p)
                found.append(_Action(_task_text(ask.group("rest")), owner, 2.5))
                continue
            anyone = _ASK_ANYONE_RE.search(s)
            if anyone:
                found.append(_Action(_task_text(anyone.group("rest")), "", 2.0))
                continue
            please = _PLEASE_RE.search(s)
            if please:
                owner = self._owner_from(s, author.lower()) or p.addressee
                found.append(_Action(_task_text(please.group("rest")), owner, 2.0))
                continue
            mine = _SELF_RE.search(s)
            if mine and not _NOT_A_TASK_RE.match(mine.group("rest")):
                found.append(_Action(_task_text(mine.group("rest")), author, 1.8))
                continue
            need = _NEED_RE.search(s)
            if need:
                who = need.group("who").lower()
                if who.startswith("@"):
                    owner = who[1:]
                elif who == "i":
                    owner = author
                elif who == "you":
                    owner = self._owner_from(s, author.lower()) or self._previous_other(p)
                else:
                    owner = ""
                found.append(_Action(_task_text(need.group("rest")), owner, 1.2))
        found = [a for a in found if len(a.text) >= 3]
        if not found:
            return None
        return max(found, key=lambda a: a.strength)

    def action_items(self, limit: int) -> list[ActionItem]:
        w = self.weights
        candidates: list[tuple[float, int, ActionItem]] = []
        for unit in self.units:
            best: tuple[float, _Post, _Action] | None = None
            for p in unit.posts:
                action = self.action_of(p)
                if action is None:
                    continue
                value = action.strength + p.score
                if action.owner.lower() == self.reader and self.reader:
                    value += w.mention_reader
                if best is None or value > best[0]:
                    best = (value, p, action)
            if best is None:
                continue
            value, p, action = best
            cited = [p.post.id]
            owner = action.owner
            # "will do" after an unowned request names its owner.
            for q in self._followers(p):
                by = q.post.author
                if _CONFIRM_RE.match(q.text) and (not owner or owner.lower() == by.lower()):
                    owner = owner or q.post.author
                    cited.append(q.post.id)
                    break
            text = _shorten(action.text, 200)
            candidates.append((value, p.index, ActionItem(text=text, owner=owner, post_ids=cited)))
        candidates.sort(key=lambda c: (-c[0], c[1]))
        kept = candidates[:limit]
        self.action_units = {self.posts[index].thread for _, index, _ in kept}
        return [item for _, _, item in kept]

    def _followers(self, p: _Post) -> list[_Post]:
        if len(self.threads[p.thread]) > 1:
            return [q for q in self.threads[p.thread] if q.index > p.index]
        return self.posts[p.index + 1 : p.index + 3]

    # -- highlights ----------------------------------------------------------------------

    def highlights(self, limit: int) -> list[Highlight]:
        w = self.weights
        pool = [u for u in self.units if u.score > -math.inf]
        chosen: list[_Unit] = []
        unit_vecs = {u.key: _unit(u.vec) for u in pool}
        while pool and len(chosen) < limit:
            # Maximal marginal relevance: a unit that repeats a chosen one is worth less.
            def gain(u: _Unit) -> float:
                overlap = max(
                    (_cosine(unit_vecs[u.key], unit_vecs[c.key]) for c in chosen), default=0.0
                )
                covered = u.key in self.action_units and not self._unit_mentions_reader(u)
                return u.score - w.redundancy * overlap - (w.covered_by_action if covered else 0)

            best = max(pool, key=lambda u: (gain(u), -u.posts[0].index))
            chosen.append(best)
            pool.remove(best)
        # What concerns the reader first, then the story in the order it happened.
        chosen.sort(key=lambda u: (not self._unit_mentions_reader(u), u.posts[0].index))
        return [self.highlight(u) for u in chosen]

    def _unit_mentions_reader(self, unit: _Unit) -> bool:
        return any(self._reader_bonus(p) > 0 for p in unit.posts if not p.post.context_only)


def _highlight_count(units: int) -> int:
    """More items for a longer window: about the square root of the number of threads."""
    return max(1, min(MAX_HIGHLIGHTS, round(math.sqrt(units))))


def summarize_posts(
    request: SummarizeRequest,
    *,
    weights: Weights | None = None,
    max_highlights: int | None = None,
    max_action_items: int = MAX_ACTION_ITEMS,
) -> AgentResult:
    """Summarize synchronously (what ExtractiveAgent.summarize runs)."""
    if not request.posts:
        return AgentResult()
    channel = _Channel(request, weights or Weights())
    channel.score_posts()
    channel.score_units()
    live_units = sum(1 for u in channel.units if u.score > -math.inf)
    limit = max_highlights if max_highlights is not None else _highlight_count(live_units)
    actions = channel.action_items(max_action_items)
    highlights = channel.highlights(limit)
    allowed = {p.id for p in request.posts}
    clean = clean_items(highlights, actions, allowed)
    prompt_tokens = sum(estimate_tokens(format_post_line(p)) for p in request.posts)
    completion_tokens = estimate_tokens(result_json(clean.highlights, clean.action_items))
    return AgentResult(
        clean.highlights, clean.action_items, TokenUsage(prompt_tokens, completion_tokens)
    )


# ---------------------------------------------------------------------------------------------
# Merge
# ---------------------------------------------------------------------------------------------

_DUPLICATE_COSINE: Final = 0.5


@dataclass(slots=True)
class _Item:
    item: Highlight | ActionItem
    vec: Vector
    score: float
    position: tuple[int, int]  # (part, index in the part)
    for_reader: bool


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
    token_lists = [_tokens(item.text) for _, _, item in items]
    tfidf = _Tfidf(token_lists)
    vecs = [_unit(tfidf.vector(tokens)) for tokens in token_lists]
    centroid: Vector = {}
    for vec in vecs:
        _add(centroid, vec)
    scored: list[_Item] = []
    for (part, index, item), vec in zip(items, vecs, strict=True):
        score = weights.centrality * _cosine(vec, centroid)
        # An item citing many posts (a thread) drew attention.
        score += weights.engagement * math.log1p(len(item.post_ids))
        if ranked:
            score += 0.3 / (1 + index)
        if _DECISION_RE.search(item.text):
            score += weights.decision
        owner = item.owner.lower() if isinstance(item, ActionItem) else ""
        for_reader = bool(reader) and (f"@{reader}" in item.text.lower() or owner == reader)
        if for_reader:
            score += weights.mention_reader
        scored.append(_Item(item, vec, score, (part, index), for_reader))
    kept: list[_Item] = []
    for candidate in sorted(scored, key=lambda c: (-c.score, c.position)):
        twin = next((k for k in kept if _cosine(k.vec, candidate.vec) >= _DUPLICATE_COSINE), None)
        if twin is None:
            kept.append(_Item(_copy(candidate.item), *_rest(candidate)))
            continue
        twin.item.post_ids.extend(p for p in candidate.item.post_ids if p not in twin.item.post_ids)
        if isinstance(twin.item, ActionItem) and isinstance(candidate.item, ActionItem):
            twin.item.owner = twin.item.owner or candidate.item.owner
    chosen = kept[:limit]
    if not ranked:
        chosen.sort(key=lambda k: (not k.for_reader, k.position))
    return [k.item for k in chosen]


def _rest(item: _Item) -> tuple[Vector, float, tuple[int, int], bool]:
    return item.vec, item.score, item.position, item.for_reader


def _copy(item: Highlight | ActionItem) -> Highlight | ActionItem:
    if isinstance(item, ActionItem):
        return ActionItem(item.text, item.owner, list(item.post_ids))
    return Highlight(item.text, list(item.post_ids))


def merge_results(
    request: MergeRequest,
    *,
    weights: Weights | None = None,
    max_highlights: int = MAX_HIGHLIGHTS,
    max_action_items: int = MAX_ACTION_ITEMS,
) -> AgentResult:
    """Merge synchronously (what ExtractiveAgent.merge runs)."""
    w = weights or Weights()
    reader = request.reader_username.lstrip("@").lower()
    highlights: list[tuple[int, int, Highlight | ActionItem]] = []
    actions: list[tuple[int, int, Highlight | ActionItem]] = []
    for part, partial in enumerate(request.partials):
        highlights.extend((part, rank, h) for rank, h in enumerate(partial.highlights))
        actions.extend((part, rank, a) for rank, a in enumerate(partial.action_items))
    if not highlights and not actions:
        return AgentResult()
    # At least as many as the fullest part had, more when there were many parts.
    widest = max(len(p.highlights) for p in request.partials)
    h_limit = min(max_highlights, max(widest, round(math.sqrt(2 * len(highlights)))))
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
    allowed = {p for _, _, item in [*highlights, *actions] for p in item.post_ids}
    clean = clean_items(merged_h, merged_a, allowed)
    prompt_tokens = sum(
        estimate_tokens(result_json(p.highlights, p.action_items)) for p in request.partials
    )
    completion_tokens = estimate_tokens(result_json(clean.highlights, clean.action_items))
    return AgentResult(
        clean.highlights, clean.action_items, TokenUsage(prompt_tokens, completion_tokens)
    )


# The version of summarize's ranking, part of every cached part's key.
EXTRACTIVE_VERSION: Final = "1"


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
        """Highlights and action items picked from the request's posts."""
        with self._metered("summarize"):
            if len(request.posts) > _THREAD_OFFLOAD_POSTS:
                return await asyncio.to_thread(summarize_posts, request, weights=self.weights)
            return summarize_posts(request, weights=self.weights)

    async def merge(self, request: MergeRequest) -> AgentResult:
        """The partials' items re-ranked, near-duplicates folded together."""
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
