"""The offline extractive agent on small hand-made channels."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from recapd.agents.base import AgentPost, AgentResult, MergeRequest, SummarizeRequest
from recapd.agents.extractive import ExtractiveAgent, summarize_posts
from recapd.config import AgentSettings
from recapd.model.recap import ActionItem, Highlight

BASE_MS = 1_700_000_000_000
MINUTE = 60_000


def post(n: int, author: str, message: str, **extra: Any) -> AgentPost:
    """Post number n, n minutes into the window."""
    return AgentPost(f"post{n:02d}", author, BASE_MS + n * MINUTE, message, **extra)


def summarize(posts: list[AgentPost], reader: str = "reader", **extra: Any) -> AgentResult:
    # The pipeline's path: a reader-independent summary, then the merge for the reader.
    agent = ExtractiveAgent()
    part = asyncio.run(agent.summarize(SummarizeRequest("chan", "town-square", posts)))
    merge = MergeRequest("chan", "town-square", [part], "rid", reader, **extra)
    return asyncio.run(agent.merge(merge))


def cited(items: list[Highlight] | list[ActionItem]) -> list[str]:
    return [post_id for item in items for post_id in item.post_ids]


CHANNEL = [
    post(1, "alice", "Morning all"),
    post(
        2,
        "bob",
        "The release build failed again on the ARM runners, the linker runs out of memory.",
    ),
    post(3, "carol", "Should we move the release to Friday then?", reply_count=3),
    post(4, "alice", "I think Friday works, QA needs two more days anyway.", root_id="post03"),
    post(5, "bob", "Agreed, we decided to ship the release on Friday.", root_id="post03"),
    post(6, "carol", "ok", root_id="post03"),
    post(7, "alice", "@bob can you bump the linker memory limit on the ARM runners?"),
    post(8, "bob", "will do"),
    post(9, "dave", "I'll update the release notes tonight."),
    post(10, "erin", "Could someone restart the flaky CI job for the docs?"),
    post(11, "frank", "@reader please review the security advisory draft before Thursday."),
    post(12, "carol", "ACTION: dave to book the room for the retro"),
    post(13, "gina", "Does anyone know where the staging credentials are kept these days?"),
    post(14, "alice", "lol"),
]


@pytest.mark.xfail(
    strict=True,
    reason="issue 14 made summarize reader-independent; issue 12's extractive merge brings "
    "mentions of the reader back (the lead's rewrite)",
)
def test_mention_of_the_reader_ranks_first() -> None:
    result = summarize(CHANNEL)
    assert result.highlights[0].post_ids == ["post11"]
    assert result.highlights[0].text.startswith("@frank: @reader please review")
    first_action = result.action_items[0]
    assert first_action == ActionItem(
        "Review the security advisory draft before Thursday", "reader", ["post11"]
    )


def test_same_post_for_another_reader_is_not_first() -> None:
    result = summarize(CHANNEL, reader="zoe")
    assert result.highlights[0].post_ids != ["post11"]


def test_a_thread_collapses_into_one_highlight_with_its_decision() -> None:
    result = summarize(CHANNEL)
    thread = [h for h in result.highlights if "post03" in h.post_ids]
    assert len(thread) == 1
    assert thread[0].post_ids == ["post03", "post04", "post05", "post06"]
    assert "Should we move the release to Friday" in thread[0].text
    assert "@bob: Agreed, we decided to ship the release on Friday." in thread[0].text
    # No other item cites the thread's replies.
    others = [h for h in result.highlights if h is not thread[0]]
    assert not {"post04", "post05", "post06"} & set(cited(others))


def test_requests_and_commitments_get_owners() -> None:
    actions = {a.text: a for a in summarize(CHANNEL).action_items}
    assert actions["Bump the linker memory limit on the ARM runners"].owner == "bob"
    # "will do" right after is the owner's acknowledgement: cited too.
    assert actions["Bump the linker memory limit on the ARM runners"].post_ids == [
        "post07",
        "post08",
    ]
    assert actions["Update the release notes tonight"].owner == "dave"
    assert actions["Book the room for the retro"].owner == "dave"
    assert actions["Restart the flaky CI job for the docs"].owner == ""


@pytest.mark.parametrize(
    ("message", "text", "owner"),
    [
        (
            "[ACTION] cjwatson to add haildb to the PPU list",
            "Add haildb to the PPU list",
            "cjwatson",
        ),
        ("#action @bob update the wiki", "Update the wiki", "bob"),
        ("TODO: fix the flaky login test", "Fix the flaky login test", ""),
        (
            "we need to renew the TLS certificate before May",
            "Renew the TLS certificate before May",
            "",
        ),
        ("I will send the minutes after lunch", "Send the minutes after lunch", "alice"),
        ("@carol please rotate the staging keys", "Rotate the staging keys", "carol"),
        ("bob: could you merge the hotfix branch?", "Merge the hotfix branch", "bob"),
    ],
)
def test_action_wording(message: str, text: str, owner: str) -> None:
    posts = [post(1, "bob", "Standup notes are in the doc."), post(2, "alice", message)]
    actions = summarize(posts).action_items
    assert ActionItem(text, owner, ["post02"]) in actions


def test_someone_claims_an_unowned_request() -> None:
    posts = [
        post(1, "erin", "Could someone restart the flaky CI job for the docs?", reply_count=1),
        post(2, "frank", "on it", root_id="post01"),
    ]
    assert summarize(posts).action_items == [
        ActionItem("Restart the flaky CI job for the docs", "frank", ["post01", "post02"])
    ]


def top(posts: list[AgentPost], reader: str = "reader") -> list[str]:
    """The post ids of the single best highlight."""
    request = SummarizeRequest("chan", "town-square", posts)
    return summarize_posts(request, max_highlights=1).highlights[0].post_ids


CHATTER = [
    post(1, "bob", "Deploy of the billing service finished, dashboards look normal."),
    post(2, "carol", "Nice, thanks for watching the billing deploy."),
    post(3, "dave", "The billing dashboards were slow this morning though."),
    post(4, "erin", "Lunch order goes out at noon."),
]


def test_an_open_question_ranks_high_and_loses_that_once_answered() -> None:
    question = post(20, "gina", "Where are the staging credentials for billing stored now?")
    assert top([*CHATTER, question]) == ["post20"]
    answer = post(21, "bob", "In the vault, under ops/billing.")
    assert top([*CHATTER, question, answer]) != ["post20"]


def test_decision_wording_wins_over_chatter() -> None:
    posts = [
        post(1, "alice", "anyone tried the new coffee machine on floor 3?"),
        post(2, "bob", "the coffee machine makes decent espresso actually"),
        post(3, "carol", "After the review we decided to use PostgreSQL for the event store."),
        post(4, "dave", "the espresso from the machine is too bitter for me"),
        post(5, "erin", "coffee machine needs descaling"),
    ]
    assert top(posts) == ["post03"]
    assert any("decided to use PostgreSQL" in h.text for h in summarize(posts).highlights)


def test_context_only_root_is_cited_but_not_summarized_alone() -> None:
    posts = [
        post(1, "alice", "Which region should the new cluster run in?", context_only=True),
        post(30, "bob", "Let's go with eu-west, latency is best there.", root_id="post01"),
        post(31, "carol", "Unrelated: the office is closed on Monday."),
    ]
    result = summarize(posts)
    thread = [h for h in result.highlights if "post30" in h.post_ids]
    assert thread and thread[0].post_ids == ["post01", "post30"]
    assert all(h.post_ids != ["post01"] for h in result.highlights)


def test_items_scale_with_input_and_are_capped() -> None:
    rng = random.Random(7)
    words = [
        "deploy",
        "cache",
        "billing",
        "search",
        "login",
        "queue",
        "metrics",
        "backup",
        "alerts",
        "invoice",
    ]
    posts = [
        post(
            n,
            f"user{n % 9}",
            f"The {rng.choice(words)} service needs a look at the {rng.choice(words)} "
            f"path, because {rng.choice(words)} errors grew.",
        )
        for n in range(1, 200)
    ]
    small = summarize(posts[:4])
    large = summarize(posts)
    assert 1 <= len(small.highlights) < len(large.highlights) <= 8
    assert len(large.action_items) <= 8


def test_deterministic_and_independent_of_input_order() -> None:
    first = summarize(CHANNEL)
    shuffled = list(CHANNEL)
    random.Random(3).shuffle(shuffled)
    assert summarize(CHANNEL) == first
    assert summarize(shuffled) == first


def test_only_input_ids_are_cited() -> None:
    result = summarize(CHANNEL)
    ids = {p.id for p in CHANNEL}
    assert set(cited(result.highlights)) | set(cited(result.action_items)) <= ids


def test_token_usage_is_reported() -> None:
    result = summarize(CHANNEL)
    assert result.usage.prompt_tokens > sum(len(p.message) for p in CHANNEL) // 4
    expected = json.dumps(
        {
            "highlights": [h.to_dict() for h in result.highlights],
            "action_items": [a.to_dict() for a in result.action_items],
        },
        ensure_ascii=False,
    )
    assert result.usage.completion_tokens == -(-len(expected.encode()) // 4)


def test_empty_and_trivial_windows() -> None:
    assert summarize([]) == AgentResult()
    result = summarize([post(1, "alice", "hi")])
    assert [h.post_ids for h in result.highlights] == [["post01"]]
    assert result.action_items == []


def test_other_languages_are_copied_not_translated() -> None:
    posts = [
        post(1, "amelie", "Nous avons décidé de livrer la version 2 vendredi."),
        post(2, "bruno", "Parfait, je préviens le support."),
    ]
    texts = " ".join(h.text for h in summarize(posts, language="fr").highlights)
    assert "Nous avons décidé de livrer la version 2 vendredi." in texts


def test_context_tokens_come_from_settings() -> None:
    assert ExtractiveAgent("offline", AgentSettings(context_tokens=4096)).context_tokens == 4096
    assert ExtractiveAgent().id == "extractive"


def test_big_windows_run_off_the_event_loop() -> None:
    posts = [post(n, f"u{n % 5}", f"status update number {n} on the migration") for n in range(400)]
    request = SummarizeRequest("chan", "big", posts)
    assert asyncio.run(ExtractiveAgent().summarize(request)) == summarize_posts(request)


def merge(partials: list[AgentResult], reader: str = "reader") -> AgentResult:
    request = MergeRequest("chan", "town-square", partials, "rid", reader)
    return asyncio.run(ExtractiveAgent().merge(request))


def test_merge_dedupes_and_keeps_citations() -> None:
    part1 = AgentResult(
        [
            Highlight("@bob: We decided to ship the release on Friday.", ["p1", "p2"]),
            Highlight("@carol: The office is closed on Monday.", ["p3"]),
        ],
        [ActionItem("Bump the linker memory limit", "bob", ["p4"])],
    )
    part2 = AgentResult(
        [
            Highlight("@alice: We decided to ship the release on Friday!", ["p7"]),
            Highlight("@erin: Billing dashboards are slow since the deploy.", ["p8"]),
        ],
        [ActionItem("Bump the linker memory limit", "", ["p9"])],
    )
    result = merge([part1, part2])
    release = [h for h in result.highlights if "ship the release" in h.text]
    assert len(release) == 1
    assert release[0].post_ids == ["p1", "p2", "p7"]
    assert {"p3", "p8"} <= set(cited(result.highlights))
    assert result.action_items == [ActionItem("Bump the linker memory limit", "bob", ["p4", "p9"])]
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0


def test_merge_ranks_the_reader_first_and_is_deterministic() -> None:
    partials = [
        AgentResult([Highlight(f"@u{i}: topic number {i} about area {i}", [f"p{i}"])], [])
        for i in range(6)
    ]
    partials.append(AgentResult([Highlight("@zed: @reader please sign the form", ["pz"])], []))
    first = merge(partials)
    assert first.highlights[0].post_ids == ["pz"]
    assert merge(partials) == first


def test_merge_of_nothing() -> None:
    assert merge([]) == AgentResult()
    assert merge([AgentResult(), AgentResult()]).highlights == []
