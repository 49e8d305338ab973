"""The conversation step on real IRC log excerpts (irc-disentanglement data, CC-BY-4.0:
Kummerfeld et al. 2019; Gouravajhala et al. 2023), and its measures on the whole annotated
logs when ../shared/data is there."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from recapd.agents.base import AgentPost
from recapd.summarize.conversations import annotate, group_conversations, is_bot_name, link_posts
from recapd.summarize.link_eval import (
    addressed_baseline,
    load_annotated,
    previous_baseline,
    recapd_links,
    score_links,
)

BASE_MS = 1_545_818_340_000
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "irc"


def log(lines: list[tuple[int, str, str]]) -> list[AgentPost]:
    """(seconds into the excerpt, nick, text) -> posts p0, p1, ..."""
    return [
        AgentPost(f"p{i}", nick, BASE_MS + sec * 1000, text)
        for i, (sec, nick, text) in enumerate(lines)
    ]


def parents(posts: list[AgentPost]) -> dict[str, str]:
    return {p.id: p.reply_to or p.id for p in annotate(posts)}


# rust.1, 2018-12-26 10:41-10:51
RUST = log(
    [
        (
            0,
            "Yatekii",
            "folks, I am sorry to bug again, but I still have this issue: "
            "https://play.rust-lang.org/?gist=9e08b6f8 i am pretty sure it's not a rust limitation",
        ),
        (
            194,
            "stephaneyfx",
            "Yatekii: When you have `&'b mut &'a mut T` and you dereference, "
            "you only get `&'b mut T`, not `&'a mut T`",
        ),
        (
            300,
            "stephaneyfx",
            "Yatekii: Iter borrows Arena mutably and there can only be one "
            "thing borrowing another thing mutably.",
        ),
        (356, "Yatekii", "stephaneyfx: so you say iter would need the arena moved to it?"),
        (439, "Yatekii", "(that would suck, bigtime :D)"),
        (457, "Yatekii", "I mean how does Vec<T> do that? it has iter_mut() too, doesn't it?"),
        (
            551,
            "stephaneyfx",
            "Yatekii: I'm not saying the arena should be moved. I merely tried "
            "to explain the error and what rules were broken (mutable aliasing).",
        ),
        (
            588,
            "proc",
            "I need a cache that has an i32->String mapping and drops all entries "
            "older than X hours",
        ),
        (598, "proc", "(I don't need to know when an entry gets dropped)"),
    ]
)


def test_addressed_replies_answers_and_continuations() -> None:
    got = parents(RUST)
    assert got["p0"] == "p0"  # a new question starts a conversation
    assert got["p1"] == "p0"  # "Yatekii: ..." answers Yatekii's question
    assert got["p2"] == "p1"  # the same person going on to the same addressee
    assert got["p3"] in ("p1", "p2")  # "stephaneyfx: ..." answers stephaneyfx
    assert got["p4"] == "p3"  # same author, moments later
    assert got["p7"] == "p7"  # proc opens a topic of his own
    assert got["p8"] == "p7"


def test_conversations_are_the_linked_posts() -> None:
    conversations = group_conversations(annotate(RUST))
    assert [[p.id for p in c.posts] for c in conversations] == [
        ["p0", "p1", "p2", "p3", "p4", "p5", "p6"],
        ["p7", "p8"],
    ]
    assert conversations[0].participants == ["Yatekii", "stephaneyfx"]


def test_explicit_threads_are_kept_as_they_are() -> None:
    posts = [
        AgentPost("root", "alice", BASE_MS, "Should we move the release to Friday?"),
        AgentPost("x", "bob", BASE_MS + 1000, "bob: unrelated, the build is green"),
        AgentPost("r1", "carol", BASE_MS + 2000, "Friday works for QA", root_id="root"),
        AgentPost("r2", "dave", BASE_MS + 3000, "fine by me", root_id="old-root"),
    ]
    got = {p.id: p for p in annotate(posts)}
    assert got["r1"].reply_to == "root" and got["r1"].conversation_id == "root"
    # A reply whose thread began before the window stays in that thread.
    assert got["r2"].conversation_id == "old-root"
    assert {link.rule for link in link_posts(posts) if link.post_id in ("r1", "r2")} == {"thread"}


def test_bots_answer_their_trigger_and_are_marked() -> None:
    # ubuntu-meeting.1, 2009-10-20 14:09
    posts = log(
        [
            (0, "ogra", "bug 445358"),
            (
                2,
                "ubottu",
                'Launchpad bug 445358 in cdrdao "cdrdao fails to build on armv7l" '
                "[High,Fix released] https://launchpad.net/bugs/445358",
            ),
            (30, "MootBot", "Commands Available: [TOPIC], [IDEA], [ACTION], [AGREED], [LINK]"),
            (40, "lool", "!ping"),
        ]
    )
    got = {p.id: p for p in annotate(posts)}
    assert got["p1"].is_bot and got["p1"].reply_to == "p0"
    assert got["p2"].is_bot and not got["p0"].is_bot
    assert got["p3"].is_noise and not got["p0"].is_noise


@pytest.mark.parametrize(
    ("name", "bot"),
    [
        ("MootBot", True),
        ("ubottu", True),
        ("wikibugs", True),
        ("CIA-6", True),
        ("gerrit-wm", True),
        ("recap-bot", True),
        ("stephaneyfx", False),
        ("bottle", False),
    ],
)
def test_bot_names(name: str, bot: bool) -> None:
    assert is_bot_name(name) is bot


def test_a_configured_list_replaces_the_defaults() -> None:
    posts = [AgentPost("a", "eval", BASE_MS, "eval: 1 + 1"), AgentPost("b", "ops-feed", 0, "x")]
    marked = {p.id: p.is_bot for p in annotate(posts, bot_names=("ops-feed",))}
    assert marked == {"a": False, "b": True}


def test_input_order_does_not_matter() -> None:
    shuffled = list(reversed(RUST))
    assert parents(shuffled) == parents(RUST)


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not there")
def test_beats_both_baselines_on_the_annotated_logs() -> None:
    for pattern, floor in (("new-domains/*.ascii.txt", 0.75), ("ubuntu-test/*.raw.txt", 0.67)):
        logs = [load_annotated(p) for p in sorted(DATA.glob(pattern))]
        ours = score_links(logs, recapd_links)
        best_baseline = max(
            score_links(logs, fn).accuracy for fn in (previous_baseline, addressed_baseline)
        )
        assert ours.accuracy >= floor
        assert ours.accuracy >= best_baseline + 0.10
        assert ours.cluster_f1 > 0.4


def test_a_thread_root_keeps_its_replies_in_one_conversation() -> None:
    posts = log(
        [
            (0, "alice", "I pushed the new logging config to staging"),
            (30, "bob", "alice: why did the nightly backup job fail on the replica yesterday?"),
            (60, "alice", "disk was full on the replica, I cleaned it and reran the job"),
            (90, "bob", "thanks, that explains the alert we got"),
        ]
    )
    posts[2].root_id = posts[3].root_id = "p1"
    got = {p.id: p for p in annotate(posts)}
    # An explicit thread's root starts its conversation, which its replies share.
    assert got["p1"].reply_to == ""
    assert {got[i].conversation_id for i in ("p1", "p2", "p3")} == {"p1"}


def test_names_ending_in_bot_are_people_unless_configured() -> None:
    assert not is_bot_name("talbot") and not is_bot_name("cabot")
    assert is_bot_name("deploy-bot") and is_bot_name("dependabot[bot]") and is_bot_name("rustbot")


def test_a_path_is_an_answer_not_a_command() -> None:
    posts = log(
        [
            (0, "bob", "where does nginx write its error log on the new image?"),
            (20, "alice", "/var/log/nginx/error.log"),
            (40, "carol", "!ping"),
        ]
    )
    got = {p.id: p for p in annotate(posts)}
    assert not got["p1"].is_noise and got["p2"].is_noise


def test_a_dense_window_is_linked_in_linear_time() -> None:
    posts = [
        AgentPost(f"d{i}", ("ann", "ben")[i % 2], BASE_MS + i * 300, f"ben: point {i}?")
        for i in range(5000)
    ]
    started = time.process_time()
    annotate(posts)
    # Quadratic scanning took 4.6 s of CPU here; linear is a fraction of a second.
    assert time.process_time() - started < 2.5


def test_a_line_repeated_by_others_joins_the_first_copy() -> None:
    # mediawiki.1, 2019-03-02 06:35-06:41: a spam wave from fresh nicks.
    spam = "read about the new exciting pedo-friendly linux distribution https://exherbo.com/"
    posts = log(
        [
            (0, "finalbeta", "thanks for the link tgr"),
            (60, "mwe113", spam),
            (171, "yetiszaf", spam),
            (308, "x1016", spam),
            (330, "Guest31094", spam),
        ]
    )
    got = parents(posts)
    assert got["p2"] == got["p3"] == got["p4"] == "p1"
    # A short line said twice ("ok", "thanks") is no copy: people say it on their own.
    acks = parents(
        log([(0, "a", "ok thanks"), (5, "b", "how do I reset it?"), (9, "c", "ok thanks")])
    )
    assert acks["p2"] != "p0"


def test_a_person_follows_the_person_before_not_the_bots_between() -> None:
    # mediawiki.0, 2013-01-27 20:32
    posts = log(
        [
            (0, "Eric_Lee", "hu.."),
            (
                6,
                "Vulpix",
                "it's a bit complex, and requires a lot of inspecting computed styles "
                "with browser's developer tools :P",
            ),
            (
                9,
                "wikibugs",
                "(mod) Upload by URL fails without giving any error - "
                "https://bugzilla.wikimedia.org/39507 +comment",
            ),
            (17, "Dantman", "inline style > selector specifity > order"),
        ]
    )
    assert parents(posts)["p3"] == "p1"


def test_a_long_line_after_a_silence_opens_a_topic() -> None:
    # stripe.2, 2019-09-18 05:47-05:59: mattwc comes back with a story of his own.
    posts = log(
        [
            (
                0,
                "mattwc",
                "theres lots of reasons why a server could return a 400 bad request error",
            ),
            (
                600,
                "wsw",
                "Prashanth:  the code looks good to me. you could simplify the payment_method "
                "attachment by using one API call",
            ),
            (624, "Prashanth", "Sure."),
            (
                667,
                "wsw",
                "Prashanth:  can you provide a payment_method id or even better some ids when you "
                "see the error. I could check the log.",
            ),
            (
                680,
                "mattwc",
                "This was fun: `You cannot supply a PaymentMethod ID as the `source` parameter. "
                "Please use the `payment_method` parameter instead.`",
            ),
        ]
    )
    assert parents(posts)["p4"] == "p4"


def test_a_greeting_is_returned() -> None:
    # mediawiki.2, 2007-10-21: "hi" -- "hello"
    posts = log([(0, "austinyb_", "hi"), (59, "Werdna", "hello"), (200, "alxndr", "hey all")])
    got = parents(posts)
    assert got["p1"] == "p0"
    assert got["p2"] == "p2"  # over two minutes later: a greeting of its own


def test_someone_new_answers_an_opener_unless_they_ask_about_something_else() -> None:
    # rust.1, 2018-12-27 09:43: a newcomer's answer to a question nobody had taken up.
    answered = log(
        [
            (
                0,
                "smurfendrek123",
                "Hello, the rendered rfc here: https://github.com/rust-lang/rfcs/pull/1506 leads "
                "to a dead link, should I comment about that on the github issue?",
            ),
            (30, "jeikobu", "Yes, ask them to update the link"),
        ]
    )
    assert parents(answered)["p1"] == "p0"
    # stripe.0, 2019-09-05 15:09: a question of one's own, sharing only the channel's word.
    stripe = "Stripe's"
    channel = [
        (i * 20, f"user{i}", f"is {stripe} checkout page down for anyone {i}?") for i in range(4)
    ]
    asked = log(
        [
            *channel,
            (
                100,
                "frilo",
                "I'm curious if there is any plans to allow individuals connected to a custom "
                f"connect account to access portions of {stripe} lovely dashboard.",
            ),
            (
                109,
                "monove",
                "Has anyone reported any issues for your Beta Stripe Terminal connection?",
            ),
        ]
    )
    assert parents(asked)["p5"] == "p5"
    # Two people alone: a question that takes up the opener's words follows it.
    dialogue = log(
        [
            (0, "Person1", "I'm taking a date to a restaurant tonight."),
            (30, "Person2", "What kind of restaurant would your date like, sir?"),
        ]
    )
    assert parents(dialogue)["p1"] == "p0"
