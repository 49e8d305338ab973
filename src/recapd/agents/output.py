"""The agents' answer: its JSON schema, parsing (strict or from free text) and clean-up.

Every agent's output goes through `clean_items`, so whatever the backend, a recap only cites
posts that were in its input, has no empty items, and keeps texts and lists short.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from recapd.model.recap import ActionItem, Highlight

__all__ = [
    "MAX_ITEMS",
    "MAX_OWNER_CHARS",
    "MAX_TEXT_CHARS",
    "RECAP_JSON_SCHEMA",
    "OutputError",
    "ParsedOutput",
    "clean_items",
    "extract_json_object",
    "normalize_owner",
    "parse_output",
    "response_format",
    "result_json",
    "trim_text",
]

MAX_TEXT_CHARS: Final = 400
# Several owners joined by ", " fit; one name is at most 64 characters.
MAX_OWNER_CHARS: Final = 255
_MAX_NAME_CHARS: Final = 64
# Per list. Prompts ask for fewer; this only bounds a runaway answer.
MAX_ITEMS: Final = 12

_CITATIONS: Final[dict[str, Any]] = {"type": "array", "items": {"type": "string"}}

# A highlight or an open question: a text and the posts it cites.
_CITED_LIST: Final[dict[str, Any]] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"text": {"type": "string"}, "post_ids": _CITATIONS},
        "required": ["text", "post_ids"],
        "additionalProperties": False,
    },
}

RECAP_JSON_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "highlights": _CITED_LIST,
        "action_items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "owner": {"type": "string"},
                    "post_ids": _CITATIONS,
                },
                "required": ["text", "owner", "post_ids"],
                "additionalProperties": False,
            },
        },
        "open_questions": _CITED_LIST,
    },
    "required": ["highlights", "action_items", "open_questions"],
    "additionalProperties": False,
}


def response_format() -> dict[str, Any]:
    """The chat-completions `response_format` asking for RECAP_JSON_SCHEMA, strictly."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "channel_recap", "strict": True, "schema": RECAP_JSON_SCHEMA},
    }


class OutputError(ValueError):
    """The model's answer is not JSON of the expected shape."""


@dataclass(slots=True)
class ParsedOutput:
    """Clean items, and how many citations of unknown posts were removed."""

    highlights: list[Highlight] = field(default_factory=list)
    action_items: list[ActionItem] = field(default_factory=list)
    dropped_citations: int = 0
    open_questions: list[Highlight] = field(default_factory=list)


_FENCE_RE: Final = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
_DECODER: Final = json.JSONDecoder()


def extract_json_object(text: str) -> dict[str, Any]:
    """The JSON object in `text`: the whole text, a ``` fenced block, or the first {...} in prose.

    Raises OutputError when there is none.
    """
    stripped = text.strip().lstrip("\ufeff")
    if not stripped:
        raise OutputError("the answer is empty")
    candidates = [stripped]
    candidates.extend(match.group(1).strip() for match in _FENCE_RE.finditer(stripped))
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    # Prose around the object: try each "{" in turn and take the first that decodes whole.
    start = stripped.find("{")
    while start != -1:
        try:
            value, _ = _DECODER.raw_decode(stripped, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        start = stripped.find("{", start + 1)
    raise OutputError("no JSON object found in the answer")


_SPACE_RE: Final = re.compile(r"\s+")
# The original's citation marker; models trained on it, or told about it elsewhere, emit it.
_PERMALINK_RE: Final = re.compile(r"\[PERMALINK:[^\]]*\]", re.IGNORECASE)
_OWNER_SPLIT_RE: Final = re.compile(r"\s*(?:,|&|\band\b)\s*", re.IGNORECASE)
_NO_OWNER: Final = frozenset({"", "none", "null", "nobody", "n/a", "na", "-", "unassigned", "?"})


def trim_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """`text` on one line, at most `limit` characters, cut at a word boundary with an ellipsis."""
    flat = _SPACE_RE.sub(" ", text).strip()
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def normalize_owner(owner: str) -> str:
    """Usernames without "@" joined by ", " ("@a and @b" -> "a, b"; "@a (lead)" -> "a"), or
    "" when the model wrote none."""
    value = _SPACE_RE.sub(" ", owner).strip().strip(",.;:")
    if value.lower() in _NO_OWNER:
        return ""
    names: list[str] = []
    for piece in _OWNER_SPLIT_RE.split(value):
        piece = piece.strip().strip(",.;:")
        words = piece.split()
        if len(words) > 1 and all(w.startswith("@") for w in words):
            candidates = words  # "@alice @bob": two owners
        else:
            candidates = [words[0] if piece.startswith("@") and words else piece]
        for candidate in candidates:
            name = candidate.strip(",.;:").lstrip("@")[:_MAX_NAME_CHARS]
            if name and name.lower() not in _NO_OWNER and name not in names:
                names.append(name)
    # Whole names only: a list too long for the limit loses its last names, not half of one.
    out = ""
    for name in names:
        joined = f"{out}, {name}" if out else name
        if len(joined) > MAX_OWNER_CHARS:
            break
        out = joined
    return out


def _citations(post_ids: Iterable[str], allowed: Collection[str]) -> tuple[list[str], int]:
    kept: list[str] = []
    dropped = 0
    for post_id in post_ids:
        clean = post_id.strip()
        if clean in allowed:
            if clean not in kept:
                kept.append(clean)
        else:
            dropped += 1
    return kept, dropped


def clean_items(
    highlights: Iterable[Highlight],
    action_items: Iterable[ActionItem],
    allowed_post_ids: Collection[str],
    *,
    open_questions: Iterable[Highlight] = (),
    max_items: int = MAX_ITEMS,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> ParsedOutput:
    """Drop unknown citations and empty items, merge exact duplicates, trim texts and lists."""
    out = ParsedOutput()
    seen: dict[str, Highlight | ActionItem] = {}
    lists: tuple[tuple[str, Iterable[Highlight | ActionItem], list[Any]], ...] = (
        ("h", highlights, out.highlights),
        ("a", action_items, out.action_items),
        ("q", open_questions, out.open_questions),
    )
    for kind, items, kept in lists:
        for item in items:
            text = trim_text(_PERMALINK_RE.sub("", item.text), max_text_chars)
            post_ids, dropped = _citations(item.post_ids, allowed_post_ids)
            out.dropped_citations += dropped
            if not text:
                continue
            owner = normalize_owner(item.owner) if isinstance(item, ActionItem) else ""
            # The same words for two owners are two tasks.
            key = f"{kind}:{owner.casefold()}:{text.casefold()}"
            if key in seen:
                # The same sentence twice: one item, citing both sets of posts.
                previous = seen[key]
                previous.post_ids.extend(p for p in post_ids if p not in previous.post_ids)
                continue
            clean: Highlight | ActionItem
            if isinstance(item, ActionItem):
                clean = ActionItem(text, owner, post_ids, explicit=item.explicit)
            else:
                clean = Highlight(text=text, post_ids=post_ids)
            if len(kept) < max_items:
                kept.append(clean)
            seen[key] = clean
    return out


def _item_fields(raw: Any, where: str) -> tuple[str, str, list[str]]:
    """(text, owner, post_ids) of one raw item; a bare string is an item without citations."""
    if isinstance(raw, str):
        return raw, "", []
    if not isinstance(raw, dict):
        raise OutputError(f"{where} must be an object, got {type(raw).__name__}")
    text = raw.get("text")
    if not isinstance(text, str):
        raise OutputError(f"{where}.text must be a string")
    owner = raw.get("owner")
    if owner is None:
        owner = ""
    if not isinstance(owner, str):
        raise OutputError(f"{where}.owner must be a string")
    post_ids = raw.get("post_ids", [])
    if post_ids is None:
        post_ids = []
    elif isinstance(post_ids, str):
        post_ids = [post_ids]
    if not isinstance(post_ids, list):
        raise OutputError(f"{where}.post_ids must be a list of post ids")
    # A number or object cannot be one of our string ids: count it as an unknown citation.
    return text, owner, [p if isinstance(p, str) else repr(p) for p in post_ids]


def _item_list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise OutputError(f"{key} must be a list")
    return value


def parse_output(
    text: str,
    allowed_post_ids: Collection[str],
    *,
    max_items: int = MAX_ITEMS,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> ParsedOutput:
    """Parse a model's answer (strict JSON or JSON inside prose) and clean it.

    Lenient where the meaning is plain (a bare string item, null owner, one id as a string),
    strict where it is not: anything else off-schema raises OutputError.
    """
    data = extract_json_object(text)
    if "highlights" not in data and "action_items" not in data:
        raise OutputError("the JSON object has neither highlights nor action_items")
    highlights: list[Highlight] = []
    for index, raw in enumerate(_item_list(data, "highlights")):
        item_text, _, post_ids = _item_fields(raw, f"highlights[{index}]")
        highlights.append(Highlight(text=item_text, post_ids=post_ids))
    actions: list[ActionItem] = []
    for index, raw in enumerate(_item_list(data, "action_items")):
        item_text, owner, post_ids = _item_fields(raw, f"action_items[{index}]")
        actions.append(ActionItem(text=item_text, owner=owner, post_ids=post_ids))
    questions: list[Highlight] = []
    for index, raw in enumerate(_item_list(data, "open_questions")):
        item_text, _, post_ids = _item_fields(raw, f"open_questions[{index}]")
        questions.append(Highlight(text=item_text, post_ids=post_ids))
    return clean_items(
        highlights,
        actions,
        allowed_post_ids,
        open_questions=questions,
        max_items=max_items,
        max_text_chars=max_text_chars,
    )


def result_json(
    highlights: Sequence[Highlight],
    action_items: Sequence[ActionItem],
    open_questions: Sequence[Highlight] = (),
) -> str:
    """The answer as JSON in the schema's shape (what a model would have written)."""
    return json.dumps(
        {
            "highlights": [h.to_dict() for h in highlights],
            "action_items": [
                {"text": a.text, "owner": a.owner, "post_ids": list(a.post_ids)}
                for a in action_items
            ],
            "open_questions": [q.to_dict() for q in open_questions],
        },
        ensure_ascii=False,
    )
