"""The offline merge is shared by readers the parts do not name, and equals merge_results for
every reader (named or not)."""

from __future__ import annotations

import random

import pytest

from recapd.agents import offline_merge
from recapd.agents.base import AgentResult, MergeRequest
from recapd.agents.extractive import merge_results
from recapd.agents.offline_merge import OfflineMerges
from recapd.model.recap import ActionItem, Highlight

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank"]
WORDS = [
    "release",
    "blocked",
    "flaky",
    "payments",
    "test",
    "sandbox",
    "api",
    "times",
    "out",
    "logs",
    "mock",
    "nightly",
    "run",
    "config",
    "deploy",
    "friday",
    "owner",
    "question",
    "answer",
    "budget",
    "review",
    "docs",
    "staging",
    "rollback",
]


def random_partials(rng: random.Random, parts: int) -> list[AgentResult]:
    def text() -> str:
        words = rng.sample(WORDS, rng.randint(4, 9))
        if rng.random() < 0.3:
            words.insert(rng.randint(0, len(words)), f"@{rng.choice(NAMES[:3])}")
        return " ".join(words).capitalize()

    def ids() -> list[str]:
        return [f"p{rng.randint(0, 400):03d}" for _ in range(rng.randint(1, 3))]

    out = []
    for _ in range(parts):
        out.append(
            AgentResult(
                highlights=[Highlight(text(), ids()) for _ in range(rng.randint(1, 8))],
                action_items=[
                    ActionItem(text(), rng.choice(["", *NAMES[:3]]), ids(), rng.random() < 0.2)
                    for _ in range(rng.randint(0, 4))
                ],
                open_questions=[Highlight(text() + "?", ids()) for _ in range(rng.randint(0, 2))],
                mentions=[Highlight(f"@{rng.choice(NAMES[:3])} {text()}", ids())],
            )
        )
    return out


def request(partials: list[AgentResult], reader: str) -> MergeRequest:
    return MergeRequest("chan", "release", partials, f"id-{reader}", reader)


def as_dicts(r: AgentResult) -> tuple[object, ...]:
    return (
        [h.to_dict() for h in r.highlights],
        [a.to_dict() for a in r.action_items],
        [q.to_dict() for q in r.open_questions],
    )


@pytest.mark.parametrize("seed", range(25))
def test_every_reader_gets_what_merge_results_gives(seed: int) -> None:
    rng = random.Random(seed)
    partials = random_partials(rng, rng.randint(1, 10))
    merges = OfflineMerges()
    for reader in NAMES:
        expected = merge_results(request(partials, reader))
        assert as_dicts(merges.merge(request(partials, reader))) == as_dicts(expected), reader


def test_readers_not_named_share_one_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    partials = random_partials(random.Random(7), 8)
    calls: list[str] = []

    def counting(req: MergeRequest) -> AgentResult:
        calls.append(req.reader_username)
        return merge_results(req)

    monkeypatch.setattr(offline_merge, "merge_results", counting)
    merges = OfflineMerges()
    first = merges.merge(request(partials, "erin"))
    second = merges.merge(request(partials, "frank"))
    assert calls == [""]  # one merge for nobody in particular, shared
    assert as_dicts(first) == as_dicts(second)
    first.highlights.clear()  # a caller changing its copy changes nobody else's
    assert merges.merge(request(partials, "erin")).highlights
    # A named reader gets a merge of their own, which puts what concerns them first.
    mine = merges.merge(request(partials, "alice"))
    assert calls == ["", "alice"]
    assert as_dicts(mine) == as_dicts(merge_results(request(partials, "alice")))
    assert mine.usage.total_tokens == 0
