"""Parsing and cleaning agents' answers: JSON in any wrapping, schema checks, citations."""

from __future__ import annotations

import json

import pytest

from recapd.agents.output import (
    MAX_ITEMS,
    MAX_TEXT_CHARS,
    RECAP_JSON_SCHEMA,
    OutputError,
    clean_items,
    extract_json_object,
    normalize_owner,
    parse_output,
    response_format,
    trim_text,
)
from recapd.model.recap import ActionItem, Highlight

ALLOWED = {"aaa", "bbb", "ccc"}
ANSWER = {
    "highlights": [{"text": "Release moved to Friday.", "post_ids": ["aaa", "bbb"]}],
    "action_items": [{"text": "Bump the memory limit", "owner": "@bob", "post_ids": ["ccc"]}],
}


def test_plain_json() -> None:
    out = parse_output(json.dumps(ANSWER), ALLOWED)
    assert out.highlights == [Highlight("Release moved to Friday.", ["aaa", "bbb"])]
    assert out.action_items == [ActionItem("Bump the memory limit", "bob", ["ccc"])]
    assert out.dropped_citations == 0


def test_fenced_json() -> None:
    text = f"Here is the recap:\n```json\n{json.dumps(ANSWER, indent=2)}\n```\nHope it helps."
    assert parse_output(text, ALLOWED).highlights[0].post_ids == ["aaa", "bbb"]


def test_fence_without_language() -> None:
    assert extract_json_object(f"```\n{json.dumps(ANSWER)}\n```") == ANSWER


def test_prose_around_json_with_braces_before_it() -> None:
    text = f"Note {{not json}} first. The answer: {json.dumps(ANSWER)} -- end {{"
    assert extract_json_object(text) == ANSWER


@pytest.mark.parametrize(
    "text",
    ["", "   ", "no json here", '{"highlights": [', "[1, 2, 3]", '"just a string"'],
)
def test_no_json_object(text: str) -> None:
    with pytest.raises(OutputError):
        parse_output(text, ALLOWED)


def test_unknown_ids_are_dropped_and_counted() -> None:
    answer = {
        "highlights": [{"text": "A", "post_ids": ["aaa", "zzz", "aaa", "yyy"]}],
        "action_items": [{"text": "B", "owner": "", "post_ids": ["nope"]}],
    }
    out = parse_output(json.dumps(answer), ALLOWED)
    assert out.highlights[0].post_ids == ["aaa"]
    # The item keeps its text; only the citation goes.
    assert out.action_items == [ActionItem("B", "", [])]
    assert out.dropped_citations == 3


def test_non_string_ids_count_as_unknown() -> None:
    answer = {"highlights": [{"text": "A", "post_ids": [12, "bbb", None]}], "action_items": []}
    out = parse_output(json.dumps(answer), ALLOWED)
    assert out.highlights[0].post_ids == ["bbb"]
    assert out.dropped_citations == 2


def test_empty_texts_are_dropped() -> None:
    answer = {
        "highlights": [{"text": "   ", "post_ids": ["aaa"]}, {"text": "kept", "post_ids": []}],
        "action_items": [{"text": "", "owner": "bob", "post_ids": ["bbb"]}],
    }
    out = parse_output(json.dumps(answer), ALLOWED)
    assert [h.text for h in out.highlights] == ["kept"]
    assert out.action_items == []


def test_texts_are_trimmed_and_lists_capped() -> None:
    long = "word " * 300
    answer = {
        "highlights": [{"text": f"{i} {long}", "post_ids": ["aaa"]} for i in range(30)],
        "action_items": [],
    }
    out = parse_output(json.dumps(answer), ALLOWED)
    assert len(out.highlights) == MAX_ITEMS
    assert all(len(h.text) <= MAX_TEXT_CHARS for h in out.highlights)
    assert out.highlights[0].text.endswith("…")


def test_duplicate_items_merge_their_citations() -> None:
    answer = {
        "highlights": [
            {"text": "Release on Friday", "post_ids": ["aaa"]},
            {"text": "release on friday", "post_ids": ["bbb", "aaa"]},
        ],
        "action_items": [],
    }
    out = parse_output(json.dumps(answer), ALLOWED)
    assert out.highlights == [Highlight("Release on Friday", ["aaa", "bbb"])]


def test_permalink_markers_are_removed_from_text() -> None:
    answer = {
        "highlights": [{"text": "Shipped [PERMALINK:http://x/pl/aaa]", "post_ids": ["aaa"]}],
        "action_items": [],
    }
    assert parse_output(json.dumps(answer), ALLOWED).highlights[0].text == "Shipped"


def test_lenient_forms_with_plain_meaning() -> None:
    answer = {
        "highlights": ["A bare string item"],
        "action_items": [{"text": "Do it", "owner": None, "post_ids": "aaa"}],
    }
    out = parse_output(json.dumps(answer), ALLOWED)
    assert out.highlights == [Highlight("A bare string item", [])]
    assert out.action_items == [ActionItem("Do it", "", ["aaa"])]


def test_one_list_missing_is_empty() -> None:
    out = parse_output('{"highlights": [{"text": "A", "post_ids": []}]}', ALLOWED)
    assert out.action_items == []


@pytest.mark.parametrize(
    "answer",
    [
        {"summary": "wrong keys"},
        {"highlights": "not a list", "action_items": []},
        {"highlights": [{"post_ids": ["aaa"]}], "action_items": []},
        {"highlights": [{"text": 42, "post_ids": []}], "action_items": []},
        {"highlights": [], "action_items": [{"text": "x", "owner": 3, "post_ids": []}]},
        {"highlights": [{"text": "x", "post_ids": {"id": "aaa"}}], "action_items": []},
        {"highlights": [7], "action_items": []},
    ],
)
def test_schema_violations(answer: dict[str, object]) -> None:
    with pytest.raises(OutputError):
        parse_output(json.dumps(answer), ALLOWED)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("@bob", "bob"), (" bob ", "bob"), ("@bob (backend)", "bob"), ("none", ""), ("N/A", "")],
)
def test_normalize_owner(raw: str, expected: str) -> None:
    assert normalize_owner(raw) == expected


def test_trim_text_flattens_whitespace() -> None:
    assert trim_text("a\n  b\tc") == "a b c"
    assert len(trim_text("x" * 1000, 50)) == 50


def test_clean_items_keeps_order_and_types() -> None:
    out = clean_items(
        [Highlight("h1", ["aaa"]), Highlight("h2", ["zzz"])],
        [ActionItem("a1", "@carol", ["bbb", "bbb"])],
        ALLOWED,
    )
    assert [h.text for h in out.highlights] == ["h1", "h2"]
    assert out.action_items == [ActionItem("a1", "carol", ["bbb"])]
    assert out.dropped_citations == 1


def test_schema_is_strict() -> None:
    fmt = response_format()
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    schema = RECAP_JSON_SCHEMA
    assert schema["additionalProperties"] is False
    for key in ("highlights", "action_items"):
        item = schema["properties"][key]["items"]
        assert item["additionalProperties"] is False
        # Strict mode needs every property listed as required.
        assert set(item["required"]) == set(item["properties"])


def test_owner_lists_keep_whole_names() -> None:
    assert normalize_owner("@alice @bob") == "alice, bob"
    many = ", ".join(f"member.number.{i:02d}" for i in range(30))
    owner = normalize_owner(many)
    assert all(name.startswith("member.number.") and len(name) == 16 for name in owner.split(", "))
