"""The offline extractive agent: small hand-made channels and real IRC log excerpts
(irc-disentanglement data, CC-BY-4.0: Kummerfeld et al. 2019; Gouravajhala et al. 2023).

`recap()` runs what the pipeline runs: the conversation step, the map stage (`summarize`,
which sees no reader) and the reader's stage (`merge`)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from recapd.agents.base import AgentPost, AgentResult, MergeRequest, SummarizeRequest
from recapd.agents.extractive import ExtractiveAgent, _shorten, merge_results, summarize_posts
from recapd.config import AgentSettings
from recapd.model.recap import ActionItem, Highlight
from recapd.summarize.conversations import annotate

BASE_MS = 1_700_000_000_000
MINUTE = 60_000


def post(n: int, author: str, message: str, **extra: Any) -> AgentPost:
    """Post number n, n minutes into the window."""
    return AgentPost(f"post{n:02d}", author, BASE_MS + n * MINUTE, message, **extra)


def summarize(posts: list[AgentPost], **extra: Any) -> AgentResult:
    """The map stage alone, on annotated posts."""
    request = SummarizeRequest("chan", "town-square", annotate(posts), **extra)
    return asyncio.run(ExtractiveAgent().summarize(request))


def recap(posts: list[AgentPost], reader: str = "reader", **extra: Any) -> AgentResult:
    """Map, then the reader's stage."""
    partial = summarize(posts, **extra)
    merge = MergeRequest("chan", "town-square", [partial], "rid", reader)
    return asyncio.run(ExtractiveAgent().merge(merge))


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


def test_what_concerns_the_reader_comes_first() -> None:
    result = recap(CHANNEL)
    assert result.highlights[0].post_ids == ["post11"]
    assert result.highlights[0].text.startswith("@frank: @reader please review")
    owners = [a.owner for a in result.action_items if not a.explicit]
    assert owners[0] == "reader"


def test_the_reader_counts_only_in_the_merge() -> None:
    # The map request carries no reader at all; two readers merge the same part differently.
    assert recap(CHANNEL, reader="zoe").highlights[0].post_ids != ["post11"]
    assert recap(CHANNEL).highlights[0].post_ids == ["post11"]


def test_a_thread_is_one_highlight_with_its_decision() -> None:
    result = recap(CHANNEL)
    thread = [h for h in result.highlights if "post03" in h.post_ids]
    assert len(thread) == 1
    assert "Should we move the release to Friday" in thread[0].text
    assert "@bob: Agreed, we decided to ship the release on Friday." in thread[0].text
    others = [h for h in result.highlights if h is not thread[0]]
    assert not {"post04", "post05", "post06"} & set(cited(others))


def test_requests_commitments_and_meeting_actions_get_owners() -> None:
    actions = {a.text: a for a in recap(CHANNEL).action_items}
    bump = actions["Bump the linker memory limit on the ARM runners"]
    # "will do" from the one asked makes the request a task, and is cited.
    assert (bump.owner, bump.post_ids) == ("bob", ["post07", "post08"])
    assert actions["Update the release notes tonight"].owner == "dave"
    assert actions["Book the room for the retro"] == ActionItem(
        "Book the room for the retro", "dave", ["post12"], explicit=True
    )
    # Nobody took the "could someone ...?": an open question, not a task.
    assert "Restart the flaky CI job for the docs" not in actions
    questions = [q.text for q in recap(CHANNEL).open_questions]
    assert any("restart the flaky CI job" in q for q in questions)


@pytest.mark.parametrize(
    ("message", "text", "owner"),
    [
        ("#action @bob update the wiki", "Update the wiki", "bob"),
        ("TODO: fix the flaky login test", "Fix the flaky login test", ""),
        (
            "we need to renew the TLS certificate before May",
            "Renew the TLS certificate before May",
            "",
        ),
        ("I will send the minutes after lunch", "Send the minutes after lunch", "alice"),
        ("@carol please rotate the staging keys", "Rotate the staging keys", "carol"),
    ],
)
def test_action_wording(message: str, text: str, owner: str) -> None:
    posts = [post(1, "carol", "Standup notes are in the doc."), post(2, "alice", message)]
    actions = recap(posts).action_items
    assert [(a.text, a.owner) for a in actions] == [(text, owner)]


@pytest.mark.parametrize(
    "lines",
    [
        # A question is not a task, however it is worded (rust.1).
        [("njg", "Jezza: could you view tui-rs as a superset of what cursive does?")],
        # "please standby" and the chair's "lets move on" are not tasks (ubuntu-meeting).
        [("ogra", "lool: please standby, we're on armel next")],
        [("ttx", "Ok, lets move on")],
        # Arguments and pleasantries (rust.2, stripe.0).
        [("Yaniel", "Read more on it, you'll see what I mean")],
        [("timebox", "I'll be back in a few minutes")],
        [("Jezza", "I'll take the easy way out and use refcell")],
        # Asking to see something is the conversation itself.
        [("karllekko", "RickG: can you paste your code somewhere?"), ("RickG", "sure")],
    ],
)
def test_not_action_items(lines: list[tuple[str, str]]) -> None:
    posts = [post(1, "lool", "armel builds are green again."), post(2, "Jezza", "nice")]
    posts += [post(3 + i, author, text) for i, (author, text) in enumerate(lines)]
    assert recap(posts).action_items == []


# ubuntu-meeting.0 / .1 (2009-10 / 2010-11), trimmed.
MEETING = [
    post(1, "stgraber", "#startmeeting"),
    post(2, "MootBot", "Meeting started at 19:10. The chair is stgraber."),
    post(3, "MootBot", "Commands Available: [TOPIC], [IDEA], [ACTION], [AGREED], [LINK], [VOTE]"),
    post(4, "stgraber", "[TOPIC] Review of previous action items"),
    post(5, "MootBot", "New Topic:  Review of previous action items"),
    post(6, "persia", "I asked the CC about the unban, no answer yet"),
    post(7, "stgraber", "[action] persia to ask the CC for assistance regarding Marco's request"),
    post(8, "MootBot", "ACTION received:  persia to ask the CC for assistance regarding Marco's"),
    post(9, "stgraber", "[TOPIC] PerPackageUploader Applications"),
    post(10, "diwic", "[agreed] to go with stable-queue for the time being"),
    post(11, "MootBot", "AGREED received:  to go with stable-queue for the time being"),
    post(12, "stgraber", "[ACTION] GrueMaster and plars to test suspend/resume on babbage"),
    post(13, "stgraber", "ACTION: ALL to review the spec before Thursday"),
    post(14, "stgraber", "#action cjwatson, geser: add haildb to mtaylor's PPU list"),
    post(15, "stgraber", "#info the next meeting moves to Tuesday 19:00 UTC"),
    post(16, "stgraber", "[LINK] https://wiki.ubuntu.com/DeveloperMembershipBoard/Agenda"),
    post(17, "MootBot", "LINK received:  https://wiki.ubuntu.com/DeveloperMembershipBoard/Agenda"),
    post(18, "stgraber", "#endmeeting"),
]


def test_meeting_markup_becomes_topics_decisions_and_actions() -> None:
    result = recap(MEETING)
    texts = [h.text for h in result.highlights]
    assert texts[0] == (
        "Meeting chaired by @stgraber, topics: Review of previous action items; "
        "PerPackageUploader Applications"
    )
    agreed = next(h for h in result.highlights if h.text.startswith("Agreed:"))
    # The bot's echo is evidence, cited beside the chair's line.
    assert agreed.post_ids == ["post10", "post11"]
    assert "Noted: the next meeting moves to Tuesday 19:00 UTC" in texts
    # The agenda link is cited with the meeting's summary.
    assert result.highlights[0].post_ids == ["post01", "post04", "post09", "post16"]
    actions = [(a.text, a.owner, a.explicit) for a in result.action_items]
    assert actions == [
        ("Ask the CC for assistance regarding Marco's request", "persia", True),
        ("Test suspend/resume on babbage", "GrueMaster, plars", True),
        ("Review the spec before Thursday", "everyone", True),
        ("Add haildb to mtaylor's PPU list", "cjwatson, geser", True),
    ]


def test_bots_are_never_highlights_or_owners() -> None:
    result = recap(MEETING)
    for h in result.highlights:
        assert not h.text.startswith("@MootBot")
    assert all("MootBot" not in a.owner for a in result.action_items)
    ubottu = [
        post(1, "mdz", "bug 362511: OpenSSH force-command unable to pass arguments"),
        post(
            2,
            "ubottu",
            'Launchpad bug 362511 in openssh "force-command unable to pass '
            'arguments along to internal-sftp" [Low,Confirmed]',
        ),
        post(3, "cjwatson", "mdz: I'll upload the fixed openssh package tomorrow"),
    ]
    result = recap(ubottu)
    assert [h.text.split(":")[0] for h in result.highlights] == ["@mdz"]
    assert "post02" in result.highlights[0].post_ids or len(result.highlights[0].post_ids) < 5
    assert [a.owner for a in result.action_items] == ["cjwatson"]


def test_explicit_actions_outrank_inferred_in_every_merge_and_all_fit() -> None:
    inferred = AgentResult(
        action_items=[ActionItem(f"Inferred task number {i}", "bob", [f"i{i}"]) for i in range(9)]
    )
    explicit = AgentResult(
        action_items=[
            ActionItem(f"Meeting task {i} for the team", f"u{i}", [f"m{i}"], explicit=True)
            for i in range(12)
        ]
    )
    merged = merge_results(MergeRequest("c", "n", [inferred, explicit], "rid", "reader"))
    assert [a.explicit for a in merged.action_items[:12]] == [True] * 12
    assert len(merged.action_items) == 12 + 9


def test_a_question_is_shown_with_its_answer() -> None:
    # rust.1, 2018-12-26 21:45
    posts = [
        post(
            1,
            "Yatekii",
            "folks, what am I doing wrong when I get: the transform method "
            "cannot be invoked on a trait object?",
        ),
        post(2, "dpc1", "hmm"),
        post(
            3,
            "talchas",
            "Yatekii: you wrote where Self: Sized on it, so it can't be called on a trait object",
        ),
        post(4, "Yatekii", "talchas: ah, thanks, that was it"),
    ]
    result = recap(posts)
    assert len(result.highlights) == 1
    text = result.highlights[0].text
    assert text.startswith("@Yatekii: folks, what am I doing wrong")
    assert "— @talchas: Yatekii: you wrote where Self: Sized" in text
    assert result.open_questions == []


def test_open_questions_are_the_unanswered_ones() -> None:
    posts = [
        post(1, "sofian", "hi there, is it possible to generate a person_token via the test API?"),
        post(30, "Ben87", "what's the best way to tell if a subscription needs SCA?"),
        post(31, "hmunoz", "Ben87: look at the latest invoice's payment intent status"),
    ]
    result = recap(posts)
    assert [q.post_ids for q in result.open_questions] == [["post01"]]
    # A later part's highlight citing the question means it was answered there.
    answered = AgentResult(highlights=[Highlight("@x: answer", ["post01", "post40"])])
    merged = merge_results(MergeRequest("c", "n", [summarize(posts), answered], "rid", "reader"))
    assert merged.open_questions == []


def test_near_duplicates_are_merged() -> None:
    # stripe.0: several separate questions about a PaymentIntent being confirmed.
    posts = [
        post(
            1,
            "Jaime95",
            "Then payment intent with the payment method is off-session, "
            "confirmation automatic and confirmed",
        ),
        post(
            40,
            "Donovan",
            "when I confirm the payment intent with the payment method it is "
            "confirmed but requires_action",
        ),
        post(
            80,
            "Jaime95",
            "payment intent with the payment method confirmed off-session automatic confirmation",
        ),
    ]
    texts = [h.text for h in recap(posts).highlights]
    assert len(texts) <= 2


def test_text_is_cut_at_sentence_or_clause_boundaries() -> None:
    long = ("We moved the database to the new cluster last night. " * 3) + "x" * 50
    cut = _shorten(long, 120)
    assert cut.endswith("night.")
    clause = "the deploy, which took ages because the registry was slow, " * 4
    out = _shorten(clause, 100)
    assert out.endswith("…") and not out[:-1].endswith(("wa", "sl"))
    words = _shorten("alpha " * 60, 50)
    assert all(w == "alpha" for w in words.rstrip("…").split())


def test_citations_are_a_handful() -> None:
    posts = [post(1, "alice", "Should we switch the CI to the new runners?")]
    posts += [
        post(1 + i, f"u{i % 7}", f"alice: runners point {i}: they are faster for the build")
        for i in range(1, 60)
    ]
    for h in recap(posts).highlights:
        assert len(h.post_ids) <= 5


def test_items_scale_with_input_and_are_capped() -> None:
    rng = random.Random(7)
    topics = [f"{a}{b}" for a in ("deploy", "cache", "billing", "search", "login") for b in "xyz"]
    posts = [
        # One conversation per topic, an hour apart: each a question and its answers.
        post(
            n,
            f"user{n % 9}",
            f"{topics[n // 12]} {rng.choice(('latency', 'errors', 'rollout', 'alerts'))} "
            f"{'grew again, why?' if n % 12 == 0 else 'looks better after the fix'}",
        )
        for n in range(0, 180)
    ]
    posts = [
        AgentPost(p.id, p.author, BASE_MS + (i // 12) * 60 * MINUTE + i * 1000, p.message)
        for i, p in enumerate(posts)
    ]
    small = recap(posts[:4])
    large = recap(posts)
    assert 1 <= len(small.highlights) < len(large.highlights) <= 8


def test_deterministic_and_independent_of_input_order() -> None:
    first = recap(CHANNEL)
    shuffled = list(CHANNEL)
    random.Random(3).shuffle(shuffled)
    assert recap(CHANNEL) == first
    assert recap(shuffled) == first


def test_only_input_ids_are_cited() -> None:
    result = recap(CHANNEL)
    ids = {p.id for p in CHANNEL}
    everything: list[Highlight | ActionItem] = [
        *result.highlights,
        *result.action_items,
        *result.open_questions,
    ]
    assert {p for item in everything for p in item.post_ids} <= ids


def test_token_usage_is_reported() -> None:
    result = summarize(CHANNEL)
    assert result.usage.prompt_tokens > sum(len(p.message) for p in CHANNEL) // 4
    expected = json.dumps(
        {
            "highlights": [h.to_dict() for h in result.highlights],
            "action_items": [
                {"text": a.text, "owner": a.owner, "post_ids": a.post_ids}
                for a in result.action_items
            ],
            "open_questions": [q.to_dict() for q in result.open_questions],
        },
        ensure_ascii=False,
    )
    assert result.usage.completion_tokens == -(-len(expected.encode()) // 4)


def test_empty_and_trivial_windows() -> None:
    assert summarize([]) == AgentResult()
    result = recap([post(1, "alice", "deploy finished")])
    assert [h.post_ids for h in result.highlights] == [["post01"]]
    assert result.action_items == []


def test_other_languages_are_copied_not_translated() -> None:
    posts = [
        post(1, "amelie", "Nous avons décidé de livrer la version 2 vendredi."),
        post(2, "bruno", "Parfait, je préviens le support."),
    ]
    texts = " ".join(h.text for h in recap(posts).highlights)
    assert "Nous avons décidé de livrer la version 2 vendredi." in texts


def test_context_tokens_come_from_settings() -> None:
    assert ExtractiveAgent("offline", AgentSettings(context_tokens=4096)).context_tokens == 4096
    assert ExtractiveAgent().id == "extractive"


def test_big_windows_run_off_the_event_loop() -> None:
    posts = annotate(
        [post(n, f"u{n % 5}", f"status update number {n} on the migration") for n in range(400)]
    )
    request = SummarizeRequest("chan", "big", posts)
    assert asyncio.run(ExtractiveAgent().summarize(request)) == summarize_posts(request)


def test_a_meeting_cut_by_a_part_boundary_is_one_meeting() -> None:
    first = AgentResult(
        [Highlight("Meeting chaired by @spamaps, topics: Natty Development", ["m1", "m2"])]
    )
    second = AgentResult([Highlight("Meeting, topics: Maverick SRUs", ["m3"])])
    merged = merge_results(MergeRequest("c", "n", [first, second], "rid", "reader"))
    assert merged.highlights == [
        Highlight(
            "Meeting chaired by @spamaps, topics: Natty Development; Maverick SRUs",
            ["m1", "m2", "m3"],
        )
    ]


# Found by review: each failed before its fix.


def test_the_same_task_for_two_owners_is_two_tasks() -> None:
    posts = [
        post(1, "chair", "#startmeeting"),
        post(2, "chair", "#action alice to review the release notes"),
        post(3, "chair", "#action bob to review the release notes"),
    ]
    owners = [a.owner for a in recap(posts).action_items]
    assert owners == ["alice", "bob"]
    tls = [
        AgentResult(
            action_items=[ActionItem("Update the staging TLS certificates", "alice", ["p1"])]
        ),
        AgentResult(
            action_items=[ActionItem("Update the production TLS certificates", "bob", ["p2"])]
        ),
    ]
    merged = merge_results(MergeRequest("c", "n", tls, "rid", "reader"))
    assert sorted(a.owner for a in merged.action_items) == ["alice", "bob"]


@pytest.mark.parametrize(
    "line",
    [
        "#action Continue to monitor the mirror sync times",
        "[ACTION] Need to update the release notes",
        "#action Try to reproduce the crash on arm64",
        "ACTION: review to be finished by friday",
    ],
)
def test_a_verb_before_to_is_no_owner(line: str) -> None:
    posts = [post(1, "chair", "#startmeeting"), post(2, "chair", line)]
    (action,) = recap(posts).action_items
    assert action.owner == "" and action.explicit


def test_an_unanswered_question_after_a_greeting_is_open() -> None:
    posts = [
        post(0, "bob", "the deploy pipeline finished for release two today"),
        post(20, "alice", "hi all"),
        post(21, "alice", "nightly arm64 build failing again?"),
    ]
    assert [q.text for q in recap(posts).open_questions] == [
        "@alice: nightly arm64 build failing again?"
    ]


def test_the_reader_is_matched_whole() -> None:
    mention = Highlight("@erin: @alice the invoice export is broken since the upgrade", ["p9"])
    partial = AgentResult(highlights=[Highlight("@bob: deploy done", ["p1"])], mentions=[mention])
    for reader, shown in (("al", False), ("alice", True)):
        merged = merge_results(MergeRequest("c", "n", [partial], "rid", reader))
        assert (mention.text in [h.text for h in merged.highlights]) is shown


def test_backchannels_and_transcript_markers_say_nothing() -> None:
    # A meeting transcript's shape: markers in braces, "mm-hmm" from the listeners.
    posts = [
        post(1, "PhD_A", "So {disfmarker} uh , what window length did you use for the filter ?"),
        post(2, "PhD_B", "Mm - hmm . {vocalsound}"),
        post(3, "PhD_D", "Hmm ."),
        post(4, "PhD_C", "We used a twenty millisecond window with a ten millisecond shift ."),
        post(5, "PhD_A", "OK , and the mean update time constant stayed the same ?"),
    ]
    result = summarize(posts)
    text = " ".join(h.text for h in result.highlights)
    assert "twenty millisecond window" in text  # the answer, not the backchannel after it
    assert "Mm - hmm" not in text and "@PhD_D" not in text


def test_a_highlight_quotes_one_sentence_a_line() -> None:
    posts = [
        post(
            1,
            "dana",
            "Why does the nightly export to the warehouse take four hours now? "
            "It used to take forty minutes.",
        ),
        post(
            2,
            "eli",
            "dana: Sure. The export now runs without the index on orders, so every batch "
            "scans the whole table. I'll add it back tonight.",
        ),
    ]
    text = summarize(posts).highlights[0].text
    assert "The export now runs without the index on orders" in text
    assert "Sure." not in text and "forty minutes" not in text
