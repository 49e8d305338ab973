"""Words of a post as the summarizers weigh them: stop words and fillers out, a light stem.

Shared by the extractive agent (what a line is about, how central it is) and the conversation
step (whether a line takes up the words of the one before).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "FILLERS",
    "STOPWORDS",
    "TRANSCRIPT_MARK_RE",
    "URL_RE",
    "WORD_RE",
    "only_fillers",
    "stem",
    "tokens",
]

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
# Sounds people make while thinking or listening: in transcripts they are most of the words.
_FILLER_TEXT: Final = "uh uhh um umm uhm erm ah eh hm hmm hmmm mm mmm mhm huh"
FILLERS: Final = frozenset(_FILLER_TEXT.split())
STOPWORDS: Final = frozenset(_STOPWORD_TEXT.split()) | FILLERS

WORD_RE: Final = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?")
URL_RE: Final = re.compile(r"https?://\S+|www\.\S+")
# A transcript's markers ("{disfmarker}", "{vocalsound}") are no words of the speaker.
TRANSCRIPT_MARK_RE: Final = re.compile(r"\{\w+\}")


def stem(word: str) -> str:
    """A light suffix stripper: enough to match "deploy", "deploys", "deployed", "deploying"."""
    word = word.replace("\u2019", "'")
    if word.endswith("'s"):
        word = word[:-2]
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def tokens(text: str) -> list[str]:
    """The words that say what a text is about: stemmed, no stop words, links or markers."""
    text = TRANSCRIPT_MARK_RE.sub(" ", URL_RE.sub(" ", text))
    words = WORD_RE.findall(text.lower())
    return [
        stem(w)
        for w in words
        if w.replace("\u2019", "'") not in STOPWORDS and (len(w) > 1 or w.isdigit())
    ]


def only_fillers(text: str) -> bool:
    """Whether a line is only sounds ("Mm - hmm .", "uh {vocalsound}")."""
    words = WORD_RE.findall(TRANSCRIPT_MARK_RE.sub(" ", text).lower())
    return all(w in FILLERS for w in words)
